#if canImport(Glibc)
import Glibc
#endif

/// SIGTERM and SIGINT, turned into a readable pipe the server's `poll` watches (the
/// self-pipe trick: the handler only `write`s, which is async-signal-safe).
enum StopSignals {
    /// Write end for the handler; set once, before the handlers are installed.
    nonisolated(unsafe) private static var writeEnd: Int32 = -1

    /// Installs the handlers and returns the read end; each signal arrives as one byte
    /// holding its number. SIGPIPE is ignored (a vanished client is handled by `send`).
    static func install() -> Int32 {
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { preconditionFailure("pipe() failed: \(String(cString: strerror(errno)))") }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        UnixSocket.setNonBlocking(ends[1])
        writeEnd = ends[1]
        for signalNumber in [SIGTERM, SIGINT] {
            signal(signalNumber) { number in
                var byte = UInt8(truncatingIfNeeded: number)
                _ = write(StopSignals.writeEnd, &byte, 1)
            }
        }
        signal(SIGPIPE, SIG_IGN)
        return ends[0]
    }
}

#if canImport(Glibc)
import Glibc
#endif
import VigilCore

/// The few POSIX calls both ends of the watchdog protocol need on a unix stream socket.
/// Plain syscalls on purpose: the watchdog runs one thread and no event loop, so
/// nothing between the kernel and its deadline can stall it.
enum UnixSocket {
    static func errorText(_ code: Int32 = errno) -> String { String(cString: strerror(code)) }

    /// A connected (or, with `listen`, listening) socket's descriptor, close-on-exec.
    static func make() throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw WatchdogError(.socketFailed, "socket(AF_UNIX): \(errorText())") }
        return fd
    }

    static func withAddress<T>(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> T) throws -> T {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard !bytes.isEmpty, bytes.count < capacity else {
            throw WatchdogError(.socketFailed, "socket path \(path) is empty or longer than \(capacity - 1) bytes: pass a shorter --socket")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }

    /// Connects to `path`; send and receive calls then give up after `timeout`.
    /// - Throws: `.socketMissing` (no such file), `.notListening` (nobody accepts),
    ///   `.timedOut`, `.socketFailed`.
    static func connect(path: String, timeout: Duration) throws -> Int32 {
        let fd = try make()
        setTimeouts(fd, timeout)
        let rc = try withAddress(path) { Glibc.connect(fd, $0, $1) }
        guard rc == 0 else {
            let code = errno
            close(fd)
            switch code {
            case ENOENT:
                throw WatchdogError(.socketMissing, "no watchdog socket at \(path): is vigil-watchdog running for this state directory?")
            case ECONNREFUSED:
                throw WatchdogError(.notListening, "nothing listens on \(path): vigil-watchdog has died; restart it")
            case EAGAIN, EWOULDBLOCK, EINPROGRESS:
                throw WatchdogError(.timedOut, "connecting to \(path) took longer than \(timeout): the watchdog is not accepting")
            default:
                throw WatchdogError(.socketFailed, "connect(\(path)): \(errorText(code))")
            }
        }
        return fd
    }

    /// SO_SNDTIMEO and SO_RCVTIMEO (connect honours the send timeout on unix sockets).
    static func setTimeouts(_ fd: Int32, _ timeout: Duration) {
        let nanos = max(timeout.wholeNanoseconds, 1_000)
        var value = timeval(tv_sec: Int(nanos / 1_000_000_000), tv_usec: Int(nanos % 1_000_000_000 / 1_000))
        for option in [SO_SNDTIMEO, SO_RCVTIMEO] {
            setsockopt(fd, SOL_SOCKET, option, &value, socklen_t(MemoryLayout<timeval>.size))
        }
    }

    static func setNonBlocking(_ fd: Int32) {
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
    }

    /// Writes all of `bytes` (MSG_NOSIGNAL: a closed peer is an error, not a SIGPIPE).
    /// - Returns: nil on success, else the errno that stopped it.
    static func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Int32? {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                return errno
            }
            offset += n
        }
        return nil
    }
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Spawning and inspecting processes through posix_spawn and /proc. Linux only.
enum ProcessTools {
    /// glibc's `POSIX_SPAWN_SETSID` (only declared under `_GNU_SOURCE`).
    private static let spawnSetSID: Int32 = 0x80

    /// Starts `executable` with `arguments` (argv[0] is the executable), stdin from
    /// /dev/null, stdout and stderr appended to `outputPath`, every other descriptor
    /// closed, default signal dispositions and an empty signal mask. With `newSession`
    /// the child gets its own session and process group, so nothing aimed at ours
    /// (a terminal's ^C, a group kill) reaches it.
    static func spawn(executable: String, arguments: [String], outputPath: String, newSession: Bool) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o640)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // closefrom_np is not visible from Swift; close what is open now instead
        // (glibc ignores EBADF for a descriptor closed in the meantime).
        for fd in openDescriptors() where fd > 2 {
            posix_spawn_file_actions_addclose(&actions, fd)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        var flags = Int32(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)
        if newSession { flags |= spawnSetSID }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        guard rc == 0 else {
            throw QEMUError(.launchFailed, "cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    private static func openDescriptors() -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return names.compactMap { Int32($0) }
    }

    /// How a child ended, from `waitpid`'s status word.
    static func decodeWaitStatus(_ status: Int32) -> QEMUProcess.ExitStatus {
        let signal = status & 0x7f
        return signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
    }

    /// Reaps `pid` if it is our child and has ended; nil while it runs.
    /// `.unknown` if it is not (or no longer) our child.
    static func reap(_ pid: pid_t) -> QEMUProcess.ExitStatus? {
        var status: Int32 = 0
        let r = waitpid(pid, &status, WNOHANG)
        if r == pid { return decodeWaitStatus(status) }
        if r == 0 { return nil }
        return .unknown
    }

    /// The fields of /proc/PID/stat we use.
    struct Stat: Equatable {
        var state: Character
        var parent: pid_t
        var session: pid_t
        var niceness: Int
        /// Clock ticks after boot; with the pid it names one process for good.
        var startTime: UInt64

        /// Zombie or dead: the program has ended, only its entry remains.
        var hasEnded: Bool { state == "Z" || state == "X" }
    }

    static func stat(_ pid: pid_t) -> Stat? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm) " come fields 3… ; comm may hold spaces and parentheses.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let state = fields[0].first,
              let parent = pid_t(fields[1]), let session = pid_t(fields[3]),
              let nice = Int(fields[16]), let start = UInt64(fields[19])
        else { return nil }
        return Stat(state: state, parent: parent, session: session, niceness: nice, startTime: start)
    }

    /// argv of a running process, from /proc/PID/cmdline.
    static func commandLine(_ pid: pid_t) -> [String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline"), !data.isEmpty else { return nil }
        var parts = data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        if parts.last == "" { parts.removeLast() }
        return parts
    }

    /// The last `limit` bytes of a file, as text (for QEMU's stderr in an error).
    static func tail(of path: String, limit: Int = 4096) -> String {
        guard let data = FileManager.default.contents(atPath: path) else { return "" }
        return String(decoding: data.suffix(limit), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// First executable named `name` on `PATH` (plus the sbin directories).
    static func which(_ name: String, path: String? = ProcessInfo.processInfo.environment["PATH"]) -> String? {
        // Strings, not Substrings: `split(…) + [literals]` otherwise builds [[Character]].
        let dirs = (path ?? "/usr/bin:/bin").split(separator: ":").map(String.init) + ["/usr/local/sbin", "/usr/sbin", "/sbin"]
        for dir in dirs {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    /// Runs a short host command (`ip …`) to completion without blocking a thread of
    /// the cooperative pool; returns its exit status and combined output.
    static func run(_ executable: String, _ arguments: [String]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { p in continuation.resume(returning: p.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: QEMUError(.commandFailed, "cannot run \(executable): \(error)"))
            }
        }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        return (status, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}

import Foundation

/// Output of a finished command.
public struct CommandResult: Sendable, Codable, Equatable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
    public var succeeded: Bool { status == 0 }
}

/// Runs short-lived commands (ip, sysctl writes, probes) and captures their output.
/// Blocking: the lab's calls are short, and a caller that needs a bound uses `timeout`.
/// A command's output is read until every process holding its pipes has closed them, so a
/// command that leaves a background child must send that child's output elsewhere.
enum CommandRunner {
    /// Full path of `name` on `PATH` (plus the sbin directories), or `name` itself if it contains a slash.
    static func which(_ name: String) -> String? {
        if name.contains("/") { return FileManager.default.isExecutableFile(atPath: name) ? name : nil }
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in (path + ":/usr/sbin:/sbin:/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static func resolve(_ name: String) throws -> String {
        guard let path = which(name) else {
            throw LabError(.missingBinary, "'\(name)' not found on PATH: install it (etcd: apt-get install etcd-server etcd-client; ip: iproute2)")
        }
        return path
    }

    /// Runs `args[0]` (looked up on PATH) with the rest as arguments; never throws for a non-zero exit.
    ///
    /// posix_spawn with every descriptor above 2 closed in the child, and waitpid on that pid:
    /// Foundation's `Process` notices an exit only when every descendant has closed a socket it
    /// hands down, so a daemon started through it (or a grandchild that lingers) stalls the caller.
    static func run(_ args: [String], input: String? = nil) throws -> CommandResult {
        let exe = try resolve(args[0])
        let stdin = try makePipe(), stdout = try makePipe(), stderr = try makePipe()
        let pid = try spawnProcess(exe, args, stdin: stdin.read, stdout: stdout.write, stderr: stderr.write)
        close(stdin.read); close(stdout.write); close(stderr.write)
        if let input {
            let bytes = Array(input.utf8)
            var offset = 0
            while offset < bytes.count {
                let n = bytes[offset...].withUnsafeBytes { write(stdin.write, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                offset += n
            }
        }
        close(stdin.write)
        let (out, err) = drain(stdout.read, stderr.read)
        return CommandResult(status: waitFor(pid), stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
    }

    /// Runs a command that starts a daemon (`setsid -f …`): stdio on /dev/null, so the daemon holds
    /// none of our pipes; throws `commandFailed` on a non-zero exit.
    static func spawn(_ args: [String]) throws {
        let null = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard null >= 0 else { throw LabError(.commandFailed, "cannot open /dev/null") }
        defer { close(null) }
        let pid = try spawnProcess(try resolve(args[0]), args, stdin: null, stdout: null, stderr: null)
        let status = waitFor(pid)
        guard status == 0 else {
            throw LabError(.commandFailed, "command failed (exit \(status)): \(args.joined(separator: " "))")
        }
    }

    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else {
            throw LabError(.commandFailed, "pipe: \(String(cString: strerror(errno)))")
        }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return (fds[0], fds[1])
    }

    private static func spawnProcess(_ exe: String, _ args: [String], stdin: Int32, stdout: Int32, stderr: Int32) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, stdin, 0)
        posix_spawn_file_actions_adddup2(&actions, stdout, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr, 2)
        if let closeFrom { _ = closeFrom(&actions, 3) }
        // Children start with no blocked signals and default handlers: a spawning thread of the
        // concurrency pool blocks most signals, and `timeout` or a daemon would inherit that.
        var attr = posix_spawnattr_t()
        posix_spawnattr_init(&attr)
        defer { posix_spawnattr_destroy(&attr) }
        var noSignals = sigset_t(), allSignals = sigset_t()
        sigemptyset(&noSignals)
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attr, &noSignals)
        posix_spawnattr_setsigdefault(&attr, &allSignals)
        posix_spawnattr_setflags(&attr, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var argv: [UnsafeMutablePointer<CChar>?] = ([exe] + args.dropFirst()).map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, exe, &actions, &attr, &argv, environ)
        guard rc == 0 else {
            throw LabError(.commandFailed, "cannot run \(exe): \(String(cString: strerror(rc)))")
        }
        return pid
    }

    /// glibc ≥ 2.34's `posix_spawn_file_actions_addclosefrom_np` (not in the Swift overlay: looked up
    /// at run time). Closes inherited descriptors that lack close-on-exec, e.g. other threads' pipes.
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let closeFrom: CloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map {
        unsafeBitCast($0, to: CloseFrom.self)
    }

    /// Reads both pipes to EOF (poll, so neither can fill up and block the child), then closes them.
    private static func drain(_ a: Int32, _ b: Int32) -> ([UInt8], [UInt8]) {
        var data: [[UInt8]] = [[], []]
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0), pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 65536)
        while fds.contains(where: { $0.fd >= 0 }) {
            if poll(&fds, nfds_t(fds.count), -1) < 0 {
                if errno == EINTR { continue }
                break
            }
            for i in fds.indices where fds[i].fd >= 0 && fds[i].revents != 0 {
                let n = buffer.withUnsafeMutableBytes { read(fds[i].fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    data[i] += buffer[0..<n]
                } else if n == 0 || errno != EINTR {
                    close(fds[i].fd)
                    fds[i].fd = -1
                }
            }
        }
        return (data[0], data[1])
    }

    /// Exit status (128 + signal for a signalled child, as shells report it).
    private static func waitFor(_ pid: pid_t) -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }

    /// Runs and throws `commandFailed` with the command line and its stderr on a non-zero exit.
    @discardableResult
    static func check(_ args: [String], input: String? = nil) throws -> String {
        let r = try run(args, input: input)
        guard r.succeeded else {
            var what = args.joined(separator: " ")
            if let input { what += " <<EOF\n\(input)EOF" }
            throw LabError(.commandFailed, "command failed (exit \(r.status)): \(what)\n\(r.stderr.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return r.stdout
    }
}

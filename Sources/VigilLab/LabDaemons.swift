import Foundation

/// Starting, finding and signalling the lab's long-running processes (etcd members, agents, watchdogs).
///
/// A process runs detached: `setsid -f` forks it into its own session, so it outlives the CLI
/// invocation (and the test) that started it and init reaps it; a tiny bash wrapper writes its
/// pid to `<host dir>/<process>.pid`, closes inherited descriptors, points stdout/stderr at
/// `<host dir>/<process>.log`, then execs `env VIGIL_LAB_OWNER=<lab dir> ip netns exec <ns>
/// nice -n -10 <binary> …`, so the pid in the file is the binary's own (each step execs, none forks).
enum LabDaemons {
    static func pidFile(_ record: LabRecord, _ host: LabHost, _ process: LabProcess) -> String {
        record.hostDirectory(host) + "/\(process.rawValue).pid"
    }

    static func logFile(_ record: LabRecord, _ host: LabHost, _ process: LabProcess) -> String {
        record.hostDirectory(host) + "/\(process.rawValue).log"
    }

    static func etcdArguments(_ record: LabRecord, _ host: LabHost) -> [String] {
        let plan = record.plan
        let cluster = record.spec.etcdMembers.map { "\($0.name)=\(plan.etcdPeerURL($0))" }.joined(separator: ",")
        return [
            record.etcdBinary,
            "--name", host.name,
            "--data-dir", record.hostDirectory(host) + "/etcd",
            "--listen-client-urls", plan.etcdClientURL(host),
            "--advertise-client-urls", plan.etcdClientURL(host),
            "--listen-peer-urls", plan.etcdPeerURL(host),
            "--initial-advertise-peer-urls", plan.etcdPeerURL(host),
            "--initial-cluster", cluster,
            "--initial-cluster-token", record.etcdClusterToken,
            "--initial-cluster-state", "new",
            "--heartbeat-interval", String(record.spec.etcdHeartbeat.milliseconds),
            "--election-timeout", String(record.spec.etcdElection.milliseconds),
            // A member that briefly loses the leader (a cluster network lost until the
            // heartbeats steer its route) must not force an election: pre-vote asks first.
            "--pre-vote",
            "--logger", "zap", "--log-outputs", "stderr",
        ]
    }

    static func vigildArguments(_ record: LabRecord, _ host: LabHost) throws -> [String] {
        guard let vigild = record.vigildBinary else {
            throw LabError(.noSuchTarget, "lab '\(record.spec.name)' was started without agents (no vigild binary)")
        }
        return [vigild, "--config", record.hostDirectory(host) + "/vigild.yaml"]
    }

    /// Closes every descriptor above 2 that the wrapper inherited (pipes of concurrent commands
    /// in the starting process must not stay open in a daemon), writes the pidfile, execs.
    static let wrapper = """
        p=$0; l=$1; shift
        for f in /proc/$$/fd/*; do n=${f##*/}; if [ "$n" -gt 2 ] 2>/dev/null; then eval "exec $n>&-"; fi; done 2>/dev/null
        echo $$ > "$p.tmp" && mv "$p.tmp" "$p"
        exec "$@" >>"$l" 2>&1 </dev/null
        """

    /// Starts `process` on `host` detached and returns its pid.
    @discardableResult
    static func start(_ record: LabRecord, _ host: LabHost, _ process: LabProcess) throws -> Int32 {
        if let pid = pid(record, host, process) {
            throw LabError(.alreadyExists, "\(process) on \(host) is already running (pid \(pid))")
        }
        let binary = switch process {
        case .etcd: etcdArguments(record, host)
        case .vigild: try vigildArguments(record, host)
        case .watchdog: try watchdogArguments(record, host)
        }
        // The owner mark survives every exec, so `pid` recognises the process even when the binary
        // execs something else (a wrapper script), and never mistakes a reused pid for ours.
        var command = [try CommandRunner.resolve("env"), "\(ownerVariable)=\(record.directory)"]
        if record.spec.mode == .namespaces {
            command += [try CommandRunner.resolve("ip"), "netns", "exec", record.plan.namespace(host)]
        }
        // Priority over QEMU guests later; only root may lower niceness.
        if geteuid() == 0 { command += [try CommandRunner.resolve("nice"), "-n", "-10"] }
        command += binary
        let pidPath = pidFile(record, host, process)
        try? FileManager.default.removeItem(atPath: pidPath)
        try CommandRunner.spawn(["setsid", "-f", "bash", "-c", wrapper, pidPath, logFile(record, host, process)] + command)
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline {
            if let pid = readPid(pidPath) { return pid }
            Thread.sleep(forTimeInterval: 0.01)
        }
        throw LabError(.commandFailed, "\(process) on \(host) did not start: no pidfile \(pidPath) after 5 s")
    }

    static func readPid(_ path: String) -> Int32? {
        guard let bytes = PlainFile.contents(path) else { return nil }
        return Int32(String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// The pid from the pidfile if that process is alive (not a zombie) and still one of this
    /// lab's (its command line names the lab directory, which guards against pid reuse).
    static func pid(_ record: LabRecord, _ host: LabHost, _ process: LabProcess) -> Int32? {
        guard let pid = readPid(pidFile(record, host, process)), isAlive(pid, owner: record.directory) else { return nil }
        return pid
    }

    /// Environment variable naming the lab directory in every process the lab starts.
    static let ownerVariable = "VIGIL_LAB_OWNER"

    /// Alive (not a zombie) and, with `owner`, started by that lab: its environment carries the
    /// owner mark, or (a process that cleared its environment) its command line names the directory.
    static func isAlive(_ pid: Int32, owner directory: String? = nil) -> Bool {
        guard pid > 0, let state = state(pid), state != "Z", state != "X" else { return false }
        guard let directory else { return true }
        let mark = Array("\(ownerVariable)=\(directory)".utf8)
        if let environ = PlainFile.contents("/proc/\(pid)/environ"), environ.split(separator: 0).contains(where: { $0.elementsEqual(mark) }) {
            return true
        }
        guard let cmdline = PlainFile.contents("/proc/\(pid)/cmdline") else { return false }
        return String(decoding: cmdline, as: UTF8.self).contains(directory + "/")
    }

    /// Process state letter from /proc (`R`, `S`, `T` for stopped, …), nil if gone.
    static func state(_ pid: Int32) -> Character? {
        guard let bytes = PlainFile.contents("/proc/\(pid)/stat") else { return nil }
        let stat = String(decoding: bytes, as: UTF8.self)
        guard let close = stat.lastIndex(of: ")") else { return nil }
        return stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
    }

    /// Waits up to 2 s until the process state (nil: gone) satisfies `done`.
    static func waitForState(_ pid: Int32, _ done: (Character?) -> Bool) {
        let deadline = ContinuousClock.now + .seconds(2)
        while ContinuousClock.now < deadline, !done(state(pid)) {
            Thread.sleep(forTimeInterval: 0.005)
        }
    }

    /// SIGKILLs `pids` and waits up to 5 s until none is alive.
    static func killAndWait(_ pids: [Int32]) {
        for pid in pids where pid > 0 { kill(pid, SIGKILL) }
        let deadline = ContinuousClock.now + .seconds(5)
        while ContinuousClock.now < deadline, pids.contains(where: { isAlive($0) }) {
            Thread.sleep(forTimeInterval: 0.01)
        }
    }

    /// Pids of every process inside a namespace (`ip netns pids`).
    static func namespacePids(_ namespace: String) -> [Int32] {
        guard let r = try? CommandRunner.run(["ip", "netns", "pids", namespace]), r.succeeded else { return [] }
        return r.stdout.split(separator: "\n").compactMap { Int32($0.trimmingCharacters(in: .whitespaces)) }
    }

    /// Last `count` lines of a log file, for error messages.
    static func tail(_ path: String, lines count: Int = 15) -> String {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return "(no log at \(path))" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(count).joined(separator: "\n")
    }
}

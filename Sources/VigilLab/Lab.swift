import Foundation

/// A running lab: test hosts on this machine (docs/lab-and-config.md). The state lives in
/// `<lab dir>/lab.json`; every fault call re-reads and rewrites it, so separate CLI
/// invocations and tests share one view.
public struct Lab: Sendable {
    /// The lab as loaded (faults may have changed since; see `current()`).
    public let record: LabRecord

    init(record: LabRecord) { self.record = record }

    public var name: String { record.spec.name }
    public var spec: LabSpec { record.spec }
    public var plan: LabAddressPlan { record.plan }
    public var directory: String { record.directory }
    public var hosts: [LabHost] { record.spec.hosts }
    public var clientConfigPath: String { directory + "/client.yaml" }
    /// The cluster storage directory every agent is given (`storageDir`).
    public var storageDirectory: String { directory + "/" + LabConfigFiles.storageDirectoryName }
    /// etcd client URLs of every member (witness included).
    public var etcdEndpoints: [String] { record.spec.etcdMembers.map(plan.etcdClientURL) }
    /// Every host's agent API URL.
    public var apiEndpoints: [String] { hosts.map(plan.apiURL) }

    public func clusterAddress(_ host: LabHost) -> String { plan.clusterAddress(host) }
    /// The host's network namespace; nil in loopback mode.
    public func namespace(_ host: LabHost) -> String? { spec.mode == .namespaces ? plan.namespace(host) : nil }
    public func hostDirectory(_ host: LabHost) -> String { record.hostDirectory(host) }
    public func logFile(host: LabHost, process: LabProcess) -> String { LabDaemons.logFile(record, host, process) }
    public func configPath(host: LabHost) -> String { hostDirectory(host) + "/vigild.yaml" }

    /// lab.json as it is now on disk.
    public func current() throws -> LabRecord { try LabRecord.load(directory: directory) }

    // MARK: Up

    /// Builds the lab, starts etcd (and agents when `spec.vigildPath` is set), and waits until
    /// etcd has quorum and every agent's `/healthz` answers. Refuses an existing lab; cleans up
    /// everything it made if it fails halfway.
    public static func up(_ spec: LabSpec) throws -> Lab {
        try spec.validate()
        if spec.mode == .namespaces, !Lab.namespacesAvailable {
            throw LabError(.needsNetns,
                "namespace labs need root and a working `ip netns` (this process has uid \(geteuid())): run as root, or use loopback mode (`vigil lab up --loopback`: hosts on 127.0.0.x, no link faults)")
        }
        let directory = spec.baseDirectory + "/" + spec.name
        let etcd = try CommandRunner.resolve(spec.etcdPath)
        let vigild = try spec.vigildPath.map { path in
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw LabError(.missingBinary, "vigild not found at \(path): build it (`swift build --product vigild`) or pass --vigild PATH, or --no-agents")
            }
            return path
        }
        let record = LabRecord(
            spec: spec, etcdBinary: etcd, vigildBinary: vigild,
            token: LabConfigFiles.randomHex(bytes: 16), clusterKey: LabConfigFiles.randomHex(bytes: 32),
            etcdClusterToken: "\(spec.name)-\(LabConfigFiles.randomHex(bytes: 4))",
            createdAt: Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)))
        try LabDaemons.checkWatchdogBinary(record)
        let lab = Lab(record: record)
        // Checking and claiming (lab.json written) under one lock, so two concurrent `up`s
        // cannot both take the same name or index.
        try withBaseDirectoryLock(spec.baseDirectory) {
            try refuseExisting(spec, directory: directory)
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try record.save()
        }
        do {
            // lab.json is there: from here on, `down` finds everything this lab makes.
            for m in spec.machines {
                try FileManager.default.createDirectory(atPath: record.hostDirectory(m), withIntermediateDirectories: true)
            }
            try FileManager.default.createDirectory(atPath: lab.storageDirectory, withIntermediateDirectories: true)
            if spec.mode == .namespaces { try LabTopology.build(record) }
            try LabConfigFiles.writeAll(record: record)
            for m in spec.etcdMembers { try LabDaemons.start(record, m, .etcd) }
            try lab.waitForEtcdQuorum(timeout: spec.readinessTimeout)
            if vigild != nil {
                try lab.startWatchdogs(timeout: spec.readinessTimeout)
                for h in spec.hosts { try LabDaemons.start(record, h, .vigild) }
                try lab.waitForAgents(timeout: spec.readinessTimeout)
            }
        } catch {
            _ = try? Lab.down(name: spec.name, baseDirectory: spec.baseDirectory)
            throw error
        }
        return lab
    }

    /// Root and `ip netns` usable.
    public static var namespacesAvailable: Bool {
        geteuid() == 0 && (try? CommandRunner.run(["ip", "netns", "list"]).succeeded) == true
    }

    static func refuseExisting(_ spec: LabSpec, directory: String) throws {
        let plan = LabAddressPlan(lab: spec.name, index: spec.index, mode: spec.mode)
        let leftovers = Lab.namespacesAvailable ? try LabTopology.namespaces().filter(plan.ownsNamespace) : []
        if FileManager.default.fileExists(atPath: directory) || !leftovers.isEmpty {
            throw LabError(.alreadyExists,
                "lab '\(spec.name)' already exists (\(leftovers.isEmpty ? directory : leftovers.sorted().joined(separator: " "))): run `vigil lab down --name \(spec.name)` first")
        }
        for other in Lab.list(baseDirectory: spec.baseDirectory) where other.spec.index == spec.index && other.spec.mode == spec.mode {
            throw LabError(.alreadyExists,
                "lab index \(spec.index) is taken by lab '\(other.spec.name)': pick another --index, or run `vigil lab down --name \(other.spec.name)`")
        }
        if spec.mode == .namespaces { try LabTopology.checkNoCollision(plan) }
    }

    /// Runs `body` holding an exclusive `flock` on `<baseDirectory>/.lock`.
    static func withBaseDirectoryLock<T>(_ baseDirectory: String, _ body: () throws -> T) throws -> T {
        try FileManager.default.createDirectory(atPath: baseDirectory, withIntermediateDirectories: true)
        let fd = open(baseDirectory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw LabError(.commandFailed, "cannot open \(baseDirectory)/.lock: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 && errno == EINTR {}
        return try body()
    }

    /// Labs with a readable lab.json under `baseDirectory`.
    public static func list(baseDirectory: String = LabSpec.defaultBaseDirectory) -> [LabRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: baseDirectory)) ?? []
        return names.sorted().compactMap { try? LabRecord.load(directory: baseDirectory + "/" + $0) }
    }

    public static func load(name: String, baseDirectory: String = LabSpec.defaultBaseDirectory) throws -> Lab {
        Lab(record: try LabRecord.load(directory: baseDirectory + "/" + name))
    }

    // MARK: Readiness

    /// Waits until every etcd member answers `/health` with `"health":"true"` (it has a leader).
    public func waitForEtcdQuorum(timeout: Duration) throws {
        try waitUntilEtcdHealthy(spec.etcdMembers, timeout: timeout)
    }

    /// Waits until each of `members` answers `/health` with `"health":"true"`.
    public func waitUntilEtcdHealthy(_ members: [LabHost], timeout: Duration) throws {
        try waitUntil(timeout: timeout, what: "etcd quorum", process: .etcd, targets: members, ready: isEtcdHealthy)
    }

    /// The member answers `/health` from the root namespace with `"health":"true"` within 1 s.
    public func isEtcdHealthy(_ member: LabHost) -> Bool {
        guard let r = HTTPProbe.get(host: plan.clusterAddress(member), port: LabAddressPlan.etcdClientPort, path: "/health") else { return false }
        return r.status == 200 && r.body.contains("\"health\":\"true\"")
    }

    /// Waits until every agent's `/healthz` answers 200.
    public func waitForAgents(timeout: Duration) throws {
        try waitUntil(timeout: timeout, what: "agent /healthz", process: .vigild, targets: hosts) { h in
            HTTPProbe.get(host: plan.clusterAddress(h), port: LabAddressPlan.apiPort, path: "/healthz")?.status == 200
        }
    }

    func waitUntil(timeout: Duration, what: String, process: LabProcess, targets: [LabHost], ready: (LabHost) -> Bool) throws {
        let deadline = ContinuousClock.now + timeout
        var pending = targets
        while true {
            pending = pending.filter { !ready($0) }
            if pending.isEmpty { return }
            // Dead means not found twice, 50 ms apart (a process caught mid-exec can look absent).
            var dead = pending.filter { LabDaemons.pid(record, $0, process) == nil }
            if !dead.isEmpty {
                Thread.sleep(forTimeInterval: 0.05)
                dead = dead.filter { LabDaemons.pid(record, $0, process) == nil && !ready($0) }
            }
            if !dead.isEmpty || ContinuousClock.now >= deadline {
                let reason = dead.isEmpty ? "not ready after \(timeout)" : "exited"
                let details = (dead.isEmpty ? pending : dead).map { h in
                    let log = LabDaemons.logFile(record, h, process)
                    return "\(process) on \(h) \(reason); its log \(log) ends:\n\(LabDaemons.tail(log))"
                }
                throw LabError(.notReady, "lab '\(name)': waiting for \(what) failed\n" + details.joined(separator: "\n---\n"))
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }
}

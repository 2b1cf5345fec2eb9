import Foundation
import VigilCore
import Yams

/// vigild's configuration (docs/lab-and-config.md). Loaded from YAML, then flags
/// override; every problem names the field.
public struct AgentConfig: Sendable, Equatable {
    public var cluster: ClusterName
    public var node: NodeName
    public var token: String
    public var clusterKey: String
    public var clusterAddress: String
    public var stateDir: String
    public var etcdEndpoints: [String]
    public var leaseTTL: Duration
    public var apiPort: Int
    public var heartbeatPort: Int
    public var heartbeatInterval: Duration
    public var heartbeatMissThreshold: Int
    public var networks: [NetworkAttachment]
    public var capacity: Capacity
    /// The cluster storage directory (VM disks), the same path on every node.
    public var storageDir: String
    /// Default guest kernel and initramfs for VMs (guest/out of the repo in the lab).
    public var guestKernel: String?
    public var guestInitrd: String?
    public var qemuBinary: String
    /// `auto` probes KVM; `kvm` or `tcg` force one.
    public var accel: String
    /// The failover policy the leader applies (`ha:`). Cluster-wide in effect: the
    /// leader's values apply, so keep them the same on every node.
    public var ha = ClusterController.Settings()
    /// `watchdog.socket`: where this host's vigil-watchdog listens (default `<stateDir>/watchdog.sock`).
    public var watchdogSocket: String = ""
    /// `watchdog.required` (default true): without a watchdog answering, start no VMs.
    public var watchdogRequired = true

    /// Command-line overrides, applied after the file.
    public struct Overrides: Sendable {
        public var node: String?
        public var apiPort: Int?
        public var leaseTTL: Double?
        public var stateDir: String?
        public init(node: String? = nil, apiPort: Int? = nil, leaseTTL: Double? = nil, stateDir: String? = nil) {
            self.node = node; self.apiPort = apiPort; self.leaseTTL = leaseTTL; self.stateDir = stateDir
        }
    }

    public static func load(path: String, overrides: Overrides = Overrides()) throws -> AgentConfig {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ConfigError(field: "--config", problem: "cannot read '\(path)'")
        }
        return try parse(yaml: text, overrides: overrides)
    }

    public static func parse(yaml text: String, overrides: Overrides = Overrides()) throws -> AgentConfig {
        let root: Any?
        do { root = try Yams.load(yaml: text) } catch { throw ConfigError(field: "(file)", problem: "not valid YAML: \(error)") }
        guard var map = ConfigMap(root, path: "") else { throw ConfigError(field: "(file)", problem: "expected a mapping at the top level") }
        if let n = overrides.node { map.values["node"] = n }
        if let s = overrides.stateDir { map.values["stateDir"] = s }
        let c = try decode(map, overrides: overrides)
        return c
    }

    private static func decode(_ m: ConfigMap, overrides: Overrides) throws -> AgentConfig {
        try m.allowOnly(["cluster", "node", "token", "clusterKey", "clusterAddress", "stateDir", "etcd", "api", "heartbeat", "networks", "capacity", "storageDir", "guest", "qemu", "ha", "watchdog"])
        let cluster = try m.name("cluster") { try ClusterName($0) }
        let node = try m.name("node") { try NodeName($0) }
        let token = try m.string("token")
        guard token.count >= 16 else { throw ConfigError(field: "token", problem: "must be at least 16 characters") }
        let key = try m.string("clusterKey")
        guard key.count >= 32, key.count % 2 == 0, key.allSatisfy(\.isHexDigit) else {
            throw ConfigError(field: "clusterKey", problem: "must be an even number (at least 32) of hex digits")
        }
        let address = try m.ipv4("clusterAddress")
        let stateDir = try m.string("stateDir")
        guard stateDir.hasPrefix("/") else { throw ConfigError(field: "stateDir", problem: "must be an absolute path") }

        let etcd = try m.map("etcd")
        try etcd.allowOnly(["endpoints", "leaseTTL"])
        let endpoints = try etcd.strings("endpoints")
        guard !endpoints.isEmpty else { throw ConfigError(field: "etcd.endpoints", problem: "needs at least one endpoint") }
        for (i, e) in endpoints.enumerated() {
            guard let u = URL(string: e), u.scheme == "http", u.host != nil, u.port != nil else {
                throw ConfigError(field: "etcd.endpoints[\(i)]", problem: "'\(e)' is not http://HOST:PORT")
            }
        }
        let ttl = try overrides.leaseTTL ?? (etcd.optionalDouble("leaseTTL") ?? 2)
        guard ttl >= 1, ttl <= 60, ttl == ttl.rounded() else {
            throw ConfigError(field: "etcd.leaseTTL", problem: "must be a whole number of seconds from 1 to 60 (etcd grants whole seconds), got \(ttl)")
        }

        let api = try m.optionalMap("api")
        try api?.allowOnly(["port"])
        let apiPort = try overrides.apiPort ?? (api?.optionalInt("port") ?? 7480)
        guard (1...65535).contains(apiPort) else { throw ConfigError(field: "api.port", problem: "must be 1…65535, got \(apiPort)") }

        let hb = try m.optionalMap("heartbeat")
        try hb?.allowOnly(["port", "interval", "missThreshold"])
        let hbPort = try hb?.optionalInt("port") ?? 7481
        guard (1...65535).contains(hbPort) else { throw ConfigError(field: "heartbeat.port", problem: "must be 1…65535") }
        let interval = try hb?.optionalDouble("interval") ?? 0.25
        guard interval >= 0.05, interval <= 5 else { throw ConfigError(field: "heartbeat.interval", problem: "must be 0.05…5 seconds") }
        let misses = try hb?.optionalInt("missThreshold") ?? 4
        guard (2...100).contains(misses) else { throw ConfigError(field: "heartbeat.missThreshold", problem: "must be 2…100") }

        let networks = try m.list("networks").enumerated().map { i, nm -> NetworkAttachment in
            let f = "networks[\(i)]"
            try nm.allowOnly(["name", "role", "address", "prefix", "bridge"])
            let name = try nm.string("name")
            guard NameRule.problem(with: name) == nil else { throw ConfigError(field: "\(f).name", problem: NameRule.problem(with: name)!) }
            let roleRaw = try nm.string("role")
            guard let role = NetworkRole(rawValue: roleRaw) else {
                throw ConfigError(field: "\(f).role", problem: "'\(roleRaw)' is not one of \(NetworkRole.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let prefix = try nm.optionalInt("prefix") ?? 24
            guard (1...32).contains(prefix) else { throw ConfigError(field: "\(f).prefix", problem: "must be 1…32") }
            return NetworkAttachment(name: name, role: role, address: try nm.ipv4("address"), prefix: prefix, bridge: try nm.optionalString("bridge"))
        }
        if Set(networks.map(\.name)).count != networks.count { throw ConfigError(field: "networks", problem: "network names must be unique") }
        guard networks.contains(where: { $0.role == .cluster }) else { throw ConfigError(field: "networks", problem: "needs at least one network with role cluster") }

        let capMap = try m.optionalMap("capacity")
        try capMap?.allowOnly(["cpus", "memoryMiB"])
        let cpus = try capMap?.optionalInt("cpus") ?? ProcessInfo.processInfo.activeProcessorCount
        let mem = try capMap?.optionalInt("memoryMiB") ?? Int(ProcessInfo.processInfo.physicalMemory >> 20)
        guard cpus >= 1, cpus <= 4096 else { throw ConfigError(field: "capacity.cpus", problem: "must be 1…4096") }
        guard mem >= 64 else { throw ConfigError(field: "capacity.memoryMiB", problem: "must be at least 64") }

        let storageDir = try m.optionalString("storageDir") ?? "/var/lib/vigil/storage"
        guard storageDir.hasPrefix("/") else { throw ConfigError(field: "storageDir", problem: "must be an absolute path") }
        let guest = try m.optionalMap("guest")
        try guest?.allowOnly(["kernel", "initrd"])
        let qemu = try m.optionalMap("qemu")
        try qemu?.allowOnly(["binary", "accel"])
        let accel = try qemu?.optionalString("accel") ?? "auto"
        guard ["auto", "kvm", "tcg"].contains(accel) else { throw ConfigError(field: "qemu.accel", problem: "must be auto, kvm or tcg, got '\(accel)'") }

        let haMap = try m.optionalMap("ha")
        try haMap?.allowOnly(["maxFailovers", "failoverPeriod", "failbackDelay"])
        var ha = ClusterController.Settings()
        if let n = try haMap?.optionalInt("maxFailovers") {
            guard (1...1000).contains(n) else { throw ConfigError(field: "ha.maxFailovers", problem: "must be 1…1000, got \(n)") }
            ha.maxFailovers = n
        }
        if let p = try haMap?.optionalDouble("failoverPeriod") {
            guard p >= 1, p <= 30 * 86400 else { throw ConfigError(field: "ha.failoverPeriod", problem: "must be 1 s … 30 days (in seconds), got \(p)") }
            ha.failoverPeriod = .milliseconds(Int64(p * 1000))
        }
        if let d = try haMap?.optionalDouble("failbackDelay") {
            guard d >= 0, d <= 86400 else { throw ConfigError(field: "ha.failbackDelay", problem: "must be 0 … 86400 seconds, got \(d)") }
            ha.failbackDelay = .milliseconds(Int64(d * 1000))
        }
        var config = AgentConfig(cluster: cluster, node: node, token: token, clusterKey: key, clusterAddress: address,
                           stateDir: stateDir, etcdEndpoints: endpoints, leaseTTL: .seconds(ttl), apiPort: apiPort,
                           heartbeatPort: hbPort, heartbeatInterval: .milliseconds(Int(interval * 1000)),
                           heartbeatMissThreshold: misses, networks: networks, capacity: Capacity(cpus: cpus, memoryMiB: mem),
                           storageDir: storageDir, guestKernel: try guest?.optionalString("kernel"), guestInitrd: try guest?.optionalString("initrd"),
                           qemuBinary: try qemu?.optionalString("binary") ?? "qemu-system-x86_64", accel: accel)
        config.ha = ha
        let wd = try m.optionalMap("watchdog")
        try wd?.allowOnly(["socket", "required"])
        config.watchdogSocket = try wd?.optionalString("socket") ?? (stateDir + "/watchdog.sock")
        guard config.watchdogSocket.hasPrefix("/") else { throw ConfigError(field: "watchdog.socket", problem: "must be an absolute path") }
        config.watchdogRequired = try wd?.optionalBool("required") ?? true
        return config
    }

    public var keys: KeySpace { KeySpace(cluster: cluster) }

    /// This node's registration as written to `nodes/<node>`.
    public var nodeRecord: NodeRecord {
        NodeRecord(name: node, clusterAddress: clusterAddress, apiPort: apiPort, networks: networks, capacity: capacity, accel: accelDescription)
    }
    /// Filled in at start from the KVM probe (`kvm`, or `tcg: reason`).
    public var accelDescription: String?
}

/// A bad configuration value, naming the field.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    public var field: String
    public var problem: String
    public var description: String { "config field '\(field)': \(problem)" }
}

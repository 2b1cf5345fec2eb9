import Foundation

/// One test host of a lab: `n1` … `n9`, or the etcd witness of a 2-host lab (index 0).
public struct LabHost: Hashable, Comparable, Codable, Sendable, ExpressibleByIntegerLiteral, CustomStringConvertible {
    public let index: Int

    public init(_ index: Int) { self.index = index }
    public init(integerLiteral value: Int) { self.index = value }

    /// The witness etcd member of a 2-host lab: its own namespace, cluster networks only, no agent.
    public static let witness = LabHost(0)

    public var isWitness: Bool { index == 0 }
    /// `n<i>` for hosts, `w` for the witness (also its directory name in the lab directory).
    public var name: String { isWitness ? "w" : "n\(index)" }
    public var description: String { name }

    /// Parses `n3`, `3`, `w` or `witness`.
    public init?(parsing text: String) {
        let t = text.lowercased()
        if t == "w" || t == "witness" { self = .witness; return }
        let digits = t.hasPrefix("n") ? String(t.dropFirst()) : t
        guard let i = Int(digits), i >= 1 else { return nil }
        self.index = i
    }

    public static func < (a: LabHost, b: LabHost) -> Bool { a.index < b.index }
}

/// The networks every lab host is attached to (see docs/lab-and-config.md, "Lab address plan").
public enum LabNetwork: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case cluster1, cluster2, client, storage1, storage2

    /// Third octet offset within the lab's /21 (`10.77.(L*8 + offset).0/24`).
    public var subnetOffset: Int {
        switch self {
        case .cluster1: 1
        case .cluster2: 2
        case .client: 3
        case .storage1: 4
        case .storage2: 5
        }
    }

    /// Name of the bridge in the switch namespace, and suffix of the switch-side veth `n<i>-<bridge>`.
    public var bridge: String {
        switch self {
        case .cluster1: "c1"
        case .cluster2: "c2"
        case .client: "cl"
        case .storage1: "s1"
        case .storage2: "s2"
        }
    }

    /// Role as written in vigild.yaml.
    public var role: String {
        switch self {
        case .cluster1, .cluster2: "cluster"
        case .client: "client"
        case .storage1, .storage2: "storage"
        }
    }

    public var isCluster: Bool { role == "cluster" }
    public var description: String { rawValue }

    /// Parses `cluster1` or the bridge short name `c1`.
    public init?(parsing text: String) {
        if let n = LabNetwork(rawValue: text) { self = n; return }
        guard let n = LabNetwork.allCases.first(where: { $0.bridge == text }) else { return nil }
        self = n
    }
}

/// A lab process that the fault helpers can signal or restart.
public enum LabProcess: String, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case vigild, etcd, watchdog
    public var description: String { rawValue }
}

/// How a lab's hosts are isolated.
public enum LabMode: String, Codable, Sendable {
    /// One network namespace per host, bridges in a switch namespace (needs root).
    case namespaces
    /// Every host on its own 127.0.0.x address of this machine: no isolation, no link faults.
    case loopback
}

/// What `Lab.up` builds.
public struct LabSpec: Codable, Sendable, Equatable {
    /// Lab name: prefix of its namespaces, its directory, and the cluster name in the configs.
    public var name: String
    /// Lab index `L` (0…24): selects the subnets `10.77.(L*8+k).0/24` and loopback addresses `127.0.0.(10L+i)`.
    public var index: Int
    /// Number of hosts (1…9).
    public var nodes: Int
    public var mode: LabMode
    /// Agent lease TTL written to vigild.yaml.
    public var leaseTTL: Duration
    public var etcdHeartbeat: Duration
    public var etcdElection: Duration
    /// Path (or name on `PATH`) of the etcd binary.
    public var etcdPath: String
    /// Path of the vigild binary; nil starts no agents.
    public var vigildPath: String?
    /// Parent of the lab directory (`<baseDirectory>/<name>`).
    public var baseDirectory: String
    /// How long `up` waits for etcd quorum and for each agent's `/healthz`.
    public var readinessTimeout: Duration
    /// Capacity each agent advertises.
    public var cpus: Int
    public var memoryMiB: Int
    /// The agents' failover policy limit (`ha.maxFailovers`); nil keeps vigild's default.
    public var maxFailovers: Int?

    public init(
        name: String = "demo", index: Int = 0, nodes: Int = 3, mode: LabMode = .namespaces,
        leaseTTL: Duration = .seconds(2), etcdHeartbeat: Duration = .milliseconds(50),
        etcdElection: Duration = .milliseconds(400), etcdPath: String = "etcd", vigildPath: String? = nil,
        baseDirectory: String = LabSpec.defaultBaseDirectory, readinessTimeout: Duration = .seconds(30),
        cpus: Int = 2, memoryMiB: Int = 4096, maxFailovers: Int? = nil
    ) {
        self.maxFailovers = maxFailovers
        self.name = name
        self.index = index
        self.nodes = nodes
        self.mode = mode
        self.leaseTTL = leaseTTL
        self.etcdHeartbeat = etcdHeartbeat
        self.etcdElection = etcdElection
        self.etcdPath = etcdPath
        self.vigildPath = vigildPath
        self.baseDirectory = baseDirectory
        self.readinessTimeout = readinessTimeout
        self.cpus = cpus
        self.memoryMiB = memoryMiB
    }

    public static let maxNodes = 9
    public static let maxIndex = 24

    /// `/var/lib/vigil-lab` for root; `$VIGIL_LAB_DIR` overrides; otherwise `~/.local/state/vigil-lab`.
    public static var defaultBaseDirectory: String {
        if let dir = ProcessInfo.processInfo.environment["VIGIL_LAB_DIR"], !dir.isEmpty { return dir }
        if geteuid() == 0 { return "/var/lib/vigil-lab" }
        return NSHomeDirectory() + "/.local/state/vigil-lab"
    }

    /// `[a-z][a-z0-9-]{0,30}` (the node-name rule of the contract), and short enough for namespace names.
    public static func isValidName(_ name: String) -> Bool {
        let chars = Array(name.utf8)
        guard let first = chars.first, (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(first), chars.count <= 31 else { return false }
        return chars.allSatisfy { c in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(c) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) || c == UInt8(ascii: "-")
        }
    }

    /// Throws a `LabError.invalidSpec` naming the bad field and the allowed range.
    public func validate() throws {
        guard Self.isValidName(name) else {
            throw LabError(.invalidSpec, "lab name '\(name)' is invalid: use [a-z][a-z0-9-]{0,30} (lower case, starts with a letter)")
        }
        guard (1...Self.maxNodes).contains(nodes) else {
            throw LabError(.invalidSpec, "--nodes \(nodes) is out of range: a lab has 1…\(Self.maxNodes) hosts")
        }
        guard (0...Self.maxIndex).contains(index) else {
            throw LabError(.invalidSpec, "--index \(index) is out of range: lab indexes are 0…\(Self.maxIndex)")
        }
        let ttl = leaseTTL.seconds
        guard ttl >= 1, ttl <= 60, ttl == ttl.rounded() else {
            throw LabError(.invalidSpec, "--lease-ttl \(ttl) is invalid: etcd grants whole seconds, use 1…60")
        }
        guard etcdHeartbeat >= .milliseconds(1), etcdElection >= etcdHeartbeat * 5 else {
            throw LabError(.invalidSpec, "etcd timings are invalid: heartbeat at least 1 ms, election timeout at least 5 heartbeats")
        }
    }

    /// Hosts `n1` … `nN` (without the witness).
    public var hosts: [LabHost] { (1...nodes).map { LabHost($0) } }

    /// Hosts that run an etcd member: 1 for a single host, `n1 n2` plus the witness for 2 hosts,
    /// `n1`–`n3` for 3–4 hosts, `n1`–`n5` for 5 or more.
    public var etcdMembers: [LabHost] {
        switch nodes {
        case 1: [1]
        case 2: [1, 2, .witness]
        case 3, 4: [1, 2, 3]
        default: [1, 2, 3, 4, 5]
        }
    }

    public var hasWitness: Bool { etcdMembers.contains(.witness) }

    /// Every namespace-owning machine of the lab: hosts, then the witness if any.
    public var machines: [LabHost] { hosts + (hasWitness ? [.witness] : []) }
}

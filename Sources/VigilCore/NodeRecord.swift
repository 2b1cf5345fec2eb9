/// What a network is for. A node is attached to several; ownership never
/// depends on any single one (NetFT, ARCHITECTURE.md).
public enum NetworkRole: String, Codable, Sendable, CaseIterable {
    case cluster, client, migration, storage
}

/// One of a node's network attachments, as registered in `nodes/<node>`.
public struct NetworkAttachment: Codable, Equatable, Sendable {
    public var name: String
    public var role: NetworkRole
    public var address: String
    public var prefix: Int
    public var bridge: String?
    public init(name: String, role: NetworkRole, address: String, prefix: Int, bridge: String? = nil) {
        self.name = name; self.role = role; self.address = address; self.prefix = prefix; self.bridge = bridge
    }
}

public struct Capacity: Codable, Equatable, Sendable {
    public var cpus: Int
    public var memoryMiB: Int
    public init(cpus: Int, memoryMiB: Int) { self.cpus = cpus; self.memoryMiB = memoryMiB }
}

/// An operator-set administrative state (runtime liveness is `alive/<node>`).
public enum NodeAdminState: String, Codable, Sendable {
    case active, paused
}

/// `nodes/<node>`: a node's registration. Written by the node itself at start;
/// it stays when the node dies, so status can show it as down.
public struct NodeRecord: Codable, Equatable, Sendable {
    public var name: NodeName
    public var clusterAddress: String
    public var apiPort: Int
    public var networks: [NetworkAttachment]
    public var capacity: Capacity
    public var adminState: NodeAdminState
    public var version: String
    /// How this node runs guests: `kvm` or `tcg` (and why not KVM).
    public var accel: String?
    public init(name: NodeName, clusterAddress: String, apiPort: Int, networks: [NetworkAttachment],
                capacity: Capacity, adminState: NodeAdminState = .active, version: String = VigilVersion.current, accel: String? = nil) {
        self.name = name; self.clusterAddress = clusterAddress; self.apiPort = apiPort; self.networks = networks
        self.capacity = capacity; self.adminState = adminState; self.version = version; self.accel = accel
    }
}

/// `alive/<node>`: bound to the node's lease; present while the node holds quorum.
/// It also carries what the node sees of its own links, refreshed on change.
public struct AliveRecord: Codable, Equatable, Sendable {
    public var leaseID: Int64
    /// Network name → link up, as the node itself sees it.
    public var links: [String: Bool]
    /// Peer → network → whether this node hears the peer's heartbeats there.
    public var heartbeats: [String: [String: Bool]]?
    public init(leaseID: Int64, links: [String: Bool], heartbeats: [String: [String: Bool]]? = nil) {
        self.leaseID = leaseID; self.links = links; self.heartbeats = heartbeats
    }
}

/// `leader`: bound to the leader's lease.
public struct LeaderRecord: Codable, Equatable, Sendable {
    public var node: NodeName
    public var leaseID: Int64
    public init(node: NodeName, leaseID: Int64) { self.node = node; self.leaseID = leaseID }
}

public enum VigilVersion {
    public static let current = "0.1.0"
}

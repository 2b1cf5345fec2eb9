/// What the API returns for `/v1/status` and `/v1/nodes`, and what the CLI prints.
/// Shared by both sides so they cannot drift.
public struct ClusterStatus: Codable, Equatable, Sendable {
    public var cluster: String
    /// The node whose API answered.
    public var answeredBy: NodeName
    /// Whether the store answered a linearizable read (a majority of etcd members agree).
    public var quorum: Bool
    /// Why there is no quorum, when there is none.
    public var problem: String?
    public var leader: NodeName?
    public var etcdMembers: [EtcdMemberStatus]
    public var nodes: [NodeStatus]
    public init(cluster: String, answeredBy: NodeName, quorum: Bool, problem: String? = nil, leader: NodeName? = nil,
                etcdMembers: [EtcdMemberStatus] = [], nodes: [NodeStatus] = []) {
        self.cluster = cluster; self.answeredBy = answeredBy; self.quorum = quorum; self.problem = problem
        self.leader = leader; self.etcdMembers = etcdMembers; self.nodes = nodes
    }
}

public struct EtcdMemberStatus: Codable, Equatable, Sendable {
    public var endpoint: String
    public var healthy: Bool
    public var isLeader: Bool
    public init(endpoint: String, healthy: Bool, isLeader: Bool) { self.endpoint = endpoint; self.healthy = healthy; self.isLeader = isLeader }
}

public enum NodeRunState: String, Codable, Sendable {
    /// Alive (holds a lease) and accepting work.
    case up
    /// Alive, but paused by the operator (no new placements).
    case paused
    /// Registered, but its alive key is gone.
    case down
}

public struct NetworkStatus: Codable, Equatable, Sendable {
    public var name: String
    public var role: NetworkRole
    public var address: String
    /// As the node sees its own link; nil when the node is down (unknown).
    public var up: Bool?
    public init(name: String, role: NetworkRole, address: String, up: Bool?) {
        self.name = name; self.role = role; self.address = address; self.up = up
    }
}

public struct NodeStatus: Codable, Equatable, Sendable {
    public var name: NodeName
    public var state: NodeRunState
    public var isLeader: Bool
    public var clusterAddress: String
    public var apiPort: Int
    public var capacity: Capacity
    public var networks: [NetworkStatus]
    public var version: String
    public var accel: String?
    /// Peer → network → whether this node hears that peer's heartbeats there.
    public var heartbeats: [String: [String: Bool]]?
    public init(name: NodeName, state: NodeRunState, isLeader: Bool, clusterAddress: String, apiPort: Int,
                capacity: Capacity, networks: [NetworkStatus], version: String, accel: String? = nil,
                heartbeats: [String: [String: Bool]]? = nil) {
        self.name = name; self.state = state; self.isLeader = isLeader; self.clusterAddress = clusterAddress
        self.apiPort = apiPort; self.capacity = capacity; self.networks = networks; self.version = version; self.accel = accel
        self.heartbeats = heartbeats
    }

    /// Combine a registration with its alive record (nil: down) and the leader's name.
    public init(record r: NodeRecord, alive: AliveRecord?, leader: NodeName?) {
        let state: NodeRunState = alive == nil ? .down : (r.adminState == .paused ? .paused : .up)
        self.init(name: r.name, state: state, isLeader: alive != nil && leader == r.name, clusterAddress: r.clusterAddress,
                  apiPort: r.apiPort, capacity: r.capacity,
                  networks: r.networks.map { NetworkStatus(name: $0.name, role: $0.role, address: $0.address, up: alive?.links[$0.name]) },
                  version: r.version, accel: r.accel, heartbeats: alive?.heartbeats)
    }
}

/// What one agent knows about itself, regardless of quorum (`/v1/local`).
public struct LocalStatus: Codable, Equatable, Sendable {
    public var node: NodeName
    public var hasLease: Bool
    public var isLeader: Bool
    public var leaseID: Int64?
    /// Milliseconds since the last keep-alive etcd acknowledged was sent.
    public var sinceLastRenewalMs: Int64?
    /// This host's fence: "armed, N ms left", "fencing", "missing: why".
    public var watchdog: String?
    public init(node: NodeName, hasLease: Bool, isLeader: Bool, leaseID: Int64?, sinceLastRenewalMs: Int64?, watchdog: String? = nil) {
        self.node = node; self.hasLease = hasLease; self.isLeader = isLeader; self.leaseID = leaseID
        self.sinceLastRenewalMs = sinceLastRenewalMs; self.watchdog = watchdog
    }
}

/// A page of the event log.
public struct EventPage: Codable, Equatable, Sendable {
    public var events: [StoredEvent]
    /// Pass as `after` to get what follows.
    public var next: EventID?
    public init(events: [StoredEvent], next: EventID?) { self.events = events; self.next = next }
}

/// The stable shape of every API error: `{"error": {"code": "...", "message": "..."}}`.
public struct APIErrorBody: Codable, Equatable, Sendable {
    public struct Detail: Codable, Equatable, Sendable {
        public var code: String
        public var message: String
    }
    public var error: Detail
    public init(code: String, message: String) { error = Detail(code: code, message: message) }
}

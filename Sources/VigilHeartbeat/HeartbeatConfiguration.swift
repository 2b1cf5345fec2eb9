import VigilCore

/// What the heartbeat service needs from vigild.yaml.
public struct HeartbeatConfiguration: Sendable {
    public var cluster: ClusterName
    public var node: NodeName
    public var key: HeartbeatKey
    /// This node's stable cluster address (the `src` of steered routes).
    public var clusterAddress: String
    /// This node's networks; the heartbeat uses those with role `cluster`, preferred first.
    public var networks: [NetworkAttachment]
    public var port: Int
    public var interval: Duration
    public var missThreshold: Int
    /// Consecutive heartbeats before a down link counts as up again.
    public var recoveryCount: Int
    /// How long a better network must stay up before a route moves back onto it.
    public var preferredHold: Duration

    public init(cluster: ClusterName, node: NodeName, key: HeartbeatKey, clusterAddress: String,
                networks: [NetworkAttachment], port: Int = 7481, interval: Duration = .milliseconds(250),
                missThreshold: Int = 4, recoveryCount: Int = 3, preferredHold: Duration = .seconds(2)) {
        self.cluster = cluster; self.node = node; self.key = key; self.clusterAddress = clusterAddress
        self.networks = networks; self.port = port; self.interval = interval; self.missThreshold = missThreshold
        self.recoveryCount = recoveryCount; self.preferredHold = preferredHold
    }

    public var clusterNetworks: [NetworkAttachment] { networks.filter { $0.role == .cluster } }

    public var stateMachine: HeartbeatStateMachine.Configuration {
        .init(networks: clusterNetworks.map(\.name), interval: interval, missThreshold: missThreshold,
              recoveryCount: recoveryCount, preferredHold: preferredHold)
    }
}

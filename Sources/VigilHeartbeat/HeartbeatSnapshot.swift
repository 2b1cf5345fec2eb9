import VigilCore

/// What the heartbeat mesh sees now, for `vigil status` and the API. Plain values.
public struct HeartbeatSnapshot: Sendable, Equatable {
    /// One peer on one network.
    public struct Link: Sendable, Equatable {
        public var network: String
        public var up: Bool
        /// How long ago the last authenticated heartbeat arrived; nil if never.
        public var lastSeenAgo: Duration?
        /// Heartbeats accepted, and ignored as replays/duplicates/reordered.
        public var accepted: UInt64
        public var ignored: UInt64
        /// Times this link went from up to down.
        public var wentDown: UInt64
    }

    public struct Peer: Sendable, Equatable {
        public var name: NodeName
        /// Network the route to the peer's cluster address was last steered onto (nil: not yet).
        public var route: String?
        public var routeChanges: UInt64
        /// In config order.
        public var links: [Link]
    }

    /// Counters of one of our own cluster networks (its socket).
    public struct Network: Sendable, Equatable {
        public var name: String
        public var address: String
        public var bound: Bool
        public var sent: UInt64 = 0
        public var sendFailures: UInt64 = 0
        public var received: UInt64 = 0
        /// Datagrams dropped because the HMAC did not verify (wrong key or tampered).
        public var authenticationFailures: UInt64 = 0
        /// Other rejects: not a heartbeat, bad version, malformed, another cluster, unknown sender.
        public var rejected: UInt64 = 0
        /// Times the socket was closed under us (send errors) and bound again.
        public var socketRestarts: UInt64 = 0
    }

    public var node: NodeName
    public var peers: [Peer]
    public var networks: [Network]
    public var routeFailures: UInt64

    /// Link state of `peer` on `network`, if that peer shares that network.
    public func link(_ peer: NodeName, _ network: String) -> Link? {
        peers.first { $0.name == peer }?.links.first { $0.network == network }
    }

    public func route(_ peer: NodeName) -> String? { peers.first { $0.name == peer }?.route }

    public func network(_ name: String) -> Network? { networks.first { $0.name == name } }
}

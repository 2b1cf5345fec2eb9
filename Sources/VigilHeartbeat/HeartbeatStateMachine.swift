import VigilCore

/// The heartbeat mesh's decisions, with no I/O and no clock: which heartbeats to send
/// when, which per-peer per-network links are up, and which network each peer's route
/// should use (NetFT). Time comes in with the events, as a monotonic offset from any origin.
///
/// Rules:
/// - Every `interval` (at `tick`s at or past the send deadline) one `send` per peer per
///   shared network, all with the round's sequence number.
/// - A link goes down when `missThreshold` intervals pass without an accepted message
///   (down exactly at `lastSeen + missThreshold * interval`). It comes up after
///   `recoveryCount` messages with consecutive sequence numbers (hysteresis).
/// - A message whose sequence is not above the highest accepted one on that link is
///   ignored (replay, duplicate, reordering) and counted.
/// - Route per peer: the first up network in config order. Away from a down route at
///   once; back to a better network that has been down only when it has been up again
///   for `preferredHold`, so a flapping preferred network moves the route at most once per
///   hold period. A better network coming up for the first time is taken at once (start-up).
///   When every link to a peer is down the route stays where it is.
///
/// Effects come out in the order to run them: `linkChanged` before the `steerRoute` it
/// causes; `send`s last.
public struct HeartbeatStateMachine: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Own cluster networks, preferred first (config order).
        public var networks: [String]
        public var interval: Duration
        public var missThreshold: Int
        public var recoveryCount: Int
        public var preferredHold: Duration
        public init(networks: [String], interval: Duration = .milliseconds(250), missThreshold: Int = 4,
                    recoveryCount: Int = 3, preferredHold: Duration = .seconds(2)) {
            precondition(!networks.isEmpty && missThreshold >= 1 && recoveryCount >= 1 && interval > .zero,
                         "heartbeat configuration needs networks, a positive interval and thresholds >= 1")
            self.networks = networks; self.interval = interval; self.missThreshold = missThreshold
            self.recoveryCount = recoveryCount; self.preferredHold = preferredHold
        }
        public var missTimeout: Duration { interval * missThreshold }
    }

    public enum Event: Sendable, Equatable {
        /// The current peers and, per peer, the cluster networks it is attached to (by name).
        /// Replaces the previous set; state of peers no longer present is dropped.
        case peers([NodeName: Set<String>])
        /// An authenticated heartbeat from `peer`, which it sent on `network`.
        case received(peer: NodeName, network: String, sequence: HeartbeatSequence, now: Duration)
        case tick(now: Duration)
    }

    public enum Effect: Sendable, Equatable {
        case send(to: NodeName, on: String, sequence: UInt64)
        case linkChanged(peer: NodeName, network: String, up: Bool)
        case steerRoute(peer: NodeName, via: String)
    }

    /// What one link looks like now (for status and the API).
    public struct Link: Sendable, Equatable {
        public var up = false
        /// When the last accepted message arrived.
        public var lastSeen: Duration?
        /// Since when it is up (nil while down).
        public var upSince: Duration?
        public var highest: HeartbeatSequence?
        /// Consecutive messages counted towards coming up (while down).
        public var streak = 0
        public var accepted: UInt64 = 0
        public var ignored: UInt64 = 0
        public var wentDown: UInt64 = 0
    }

    public struct Peer: Sendable, Equatable {
        /// Keyed by network name; only networks both sides are attached to.
        public var links: [String: Link]
        /// The network the route was last steered onto; nil until the first steer.
        public var route: String?
        public var routeChanges: UInt64 = 0
    }

    public let configuration: Configuration
    public private(set) var peers: [NodeName: Peer] = [:]
    public private(set) var round: UInt64 = 0
    private var nextSend: Duration?

    public init(configuration: Configuration) { self.configuration = configuration }

    /// The earliest time at which a `tick` can produce effects (next send or next link
    /// deadline); a shell sleeps until then.
    public var nextDeadline: Duration? {
        var deadline = nextSend
        for peer in peers.values {
            for link in peer.links.values where link.up {
                if let seen = link.lastSeen {
                    let d = seen + configuration.missTimeout
                    deadline = deadline.map { min($0, d) } ?? d
                }
            }
            if let hold = nextHoldDeadline(peer) { deadline = deadline.map { min($0, hold) } ?? hold }
        }
        return deadline
    }

    public mutating func handle(_ event: Event) -> [Effect] {
        switch event {
        case .peers(let membership):
            setPeers(membership)
            return []
        case let .received(peer, network, sequence, now):
            return receive(peer: peer, network: network, sequence: sequence, now: now)
        case .tick(let now):
            return tick(now: now)
        }
    }

    // MARK: - Events

    private mutating func setPeers(_ membership: [NodeName: Set<String>]) {
        var next: [NodeName: Peer] = [:]
        for (name, theirs) in membership {
            let shared = configuration.networks.filter(theirs.contains)
            var peer = peers[name] ?? Peer(links: [:])
            peer.links = Dictionary(uniqueKeysWithValues: shared.map { ($0, peer.links[$0] ?? Link()) })
            if let r = peer.route, peer.links[r] == nil { peer.route = nil }
            next[name] = peer
        }
        peers = next
    }

    private mutating func receive(peer name: NodeName, network: String, sequence: HeartbeatSequence, now: Duration) -> [Effect] {
        guard var peer = peers[name], var link = peer.links[network] else { return [] }
        if let highest = link.highest, sequence <= highest {
            link.ignored += 1
            peer.links[network] = link
            peers[name] = peer
            return []
        }
        let consecutive = link.highest.map { $0.isFollowed(by: sequence) } ?? false
        link.highest = sequence
        link.lastSeen = now
        link.accepted += 1
        var effects: [Effect] = []
        if !link.up {
            link.streak = consecutive ? link.streak + 1 : 1
            if link.streak >= configuration.recoveryCount {
                link.up = true
                link.upSince = now
                link.streak = 0
                effects.append(.linkChanged(peer: name, network: network, up: true))
            }
        }
        peer.links[network] = link
        effects += chooseRoute(&peer, name: name, now: now)
        peers[name] = peer
        return effects
    }

    private mutating func tick(now: Duration) -> [Effect] {
        var effects: [Effect] = []
        for name in peers.keys.sorted() {
            var peer = peers[name]!
            for network in configuration.networks {
                guard var link = peer.links[network], link.up, let seen = link.lastSeen,
                      now >= seen + configuration.missTimeout else { continue }
                link.up = false
                link.upSince = nil
                link.streak = 0
                link.wentDown += 1
                peer.links[network] = link
                effects.append(.linkChanged(peer: name, network: network, up: false))
            }
            effects += chooseRoute(&peer, name: name, now: now)
            peers[name] = peer
        }
        if now >= nextSend ?? now {
            round += 1
            for name in peers.keys.sorted() {
                for network in configuration.networks where peers[name]!.links[network] != nil {
                    effects.append(.send(to: name, on: network, sequence: round))
                }
            }
            // Keep the cadence; after a stall start again from now rather than bursting.
            let next = (nextSend ?? now) + configuration.interval
            nextSend = next > now ? next : now + configuration.interval
        }
        return effects
    }

    // MARK: - Route choice

    /// Up, and either never down before (first contact is no flap) or up for the hold period.
    private func isStable(_ link: Link, now: Duration) -> Bool {
        guard link.up, let since = link.upSince else { return false }
        return link.wentDown == 0 || now >= since + configuration.preferredHold
    }

    private func chooseRoute(_ peer: inout Peer, name: NodeName, now: Duration) -> [Effect] {
        let up = configuration.networks.filter { peer.links[$0]?.up == true }
        guard let best = up.first else { return [] }
        let target: String
        if let current = peer.route, peer.links[current]?.up == true {
            // Current route works: move only to a better network that has been up long enough.
            let rank = configuration.networks.firstIndex(of: current)!
            guard let better = up.first(where: {
                configuration.networks.firstIndex(of: $0)! < rank && isStable(peer.links[$0]!, now: now)
            }) else { return [] }
            target = better
        } else {
            // No route yet, or it is down: the best stable network, else the best up one.
            target = up.first(where: { isStable(peer.links[$0]!, now: now) }) ?? best
        }
        guard target != peer.route else { return [] }
        peer.route = target
        peer.routeChanges += 1
        return [.steerRoute(peer: name, via: target)]
    }

    /// When a better-ranked network than the current route becomes stable.
    private func nextHoldDeadline(_ peer: Peer) -> Duration? {
        guard let current = peer.route, let rank = configuration.networks.firstIndex(of: current) else { return nil }
        return configuration.networks.prefix(rank).compactMap { peer.links[$0] }
            .filter { $0.wentDown > 0 }.compactMap(\.upSince)
            .map { $0 + configuration.preferredHold }.min()
    }
}

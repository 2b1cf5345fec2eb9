/// The leader's controller: a pure state machine. The shell feeds it what it
/// observes in the store (membership snapshots, ticks of an injected clock) and
/// carries out the effects it returns, in order. No I/O, no clock, no randomness.
///
/// This first version tracks membership and keeps the event log bounded; placement
/// and failover grow here.
public struct ClusterController: Sendable {
    public enum Event: Equatable, Sendable {
        /// This node won the election. `registered` and `alive` are the store as read
        /// right after winning; `lastKnownAlive` is what the previous leader last saw
        /// (the `membership` key), so losses that happened between leaders are recorded too.
        case becameLeader(registered: [NodeName: NodeRecord], alive: Set<NodeName>, lastKnownAlive: Set<NodeName>? = nil, now: Duration,
                          wallMillis: Int64 = 0)
        /// A new snapshot of `nodes/`.
        case nodesChanged([NodeName: NodeRecord])
        /// A new snapshot of `alive/`.
        case aliveChanged(Set<NodeName>)
        /// A new snapshot of `vms/`.
        case vmsChanged([VMName: VMRecord])
        /// Time passed: `now` on the shell's monotonic clock; `wallMillis` (Unix ms) only
        /// stamps failovers, so the failover policy holds across leaders.
        case tick(now: Duration, wallMillis: Int64 = 0)
    }

    public enum Effect: Equatable, Sendable {
        /// Append to the event log.
        case record(ClusterEvent)
        /// Delete all but the newest `keep` events.
        case trimEvents(keep: Int)
        /// Remember who is alive (the `membership` key), for the next leader.
        case writeMembership(Set<NodeName>)
        /// Compare-and-swap `vms/<vm>/placement`: write only if its mod revision is still
        /// `expectedRevision` (0: absent); when it is written, record `event` (if any).
        case writePlacement(VMName, Placement, expectedRevision: Int64, event: ClusterEvent?)
    }

    public struct Settings: Equatable, Sendable {
        public var eventLogLimit: Int = 1000
        public var trimEvery: Duration = .seconds(10)
        /// Failover policy (WSFC's "maximum failures in the specified period"): a VM that
        /// failed over this many times within `failoverPeriod` is marked failed instead.
        public var maxFailovers = 3
        public var failoverPeriod: Duration = .seconds(6 * 3600)
        /// A VM with failback returns to its home node once that node has been up this long.
        public var failbackDelay: Duration = .seconds(30)
        public init() {}
    }

    public let me: NodeName
    public let settings: Settings
    public private(set) var registered: [NodeName: NodeRecord] = [:]
    public private(set) var alive: Set<NodeName> = []
    public private(set) var vms: [VMName: VMRecord] = [:]
    private var lastTrim: Duration?
    /// The latest monotonic and wall time the shell reported.
    var now: Duration = .zero
    var wallMillis: Int64 = 0
    /// When each alive node was last seen joining (monotonic); for failback's delay.
    var joinedAt: [NodeName: Duration] = [:]
    /// VMs already reported as waiting for their lost node (HA off), so it is said once.
    var waitingNoted: Set<VMName> = []

    public init(me: NodeName, settings: Settings = Settings()) {
        self.me = me; self.settings = settings
    }

    /// Nodes registered but not alive.
    public var down: Set<NodeName> { Set(registered.keys).subtracting(alive) }

    public mutating func handle(_ event: Event) -> [Effect] {
        switch event {
        case let .becameLeader(registered, alive, lastKnownAlive, now, wall):
            self.now = now; wallMillis = wall
            for n in alive { joinedAt[n] = now }
            self.registered = registered
            self.alive = lastKnownAlive ?? alive
            lastTrim = now
            let changes = membershipChanged(to: alive)
            let up = alive.sorted().map(\.rawValue).joined(separator: ", ")
            let downList = down.sorted().map(\.rawValue).joined(separator: ", ")
            var msg = "\(me) leads the cluster; alive: [\(up)]"
            if !downList.isEmpty { msg += "; down: [\(downList)]" }
            return [.record(ClusterEvent(kind: .leaderElected, severity: .info, reporter: me, node: me, message: msg))]
                + changes + (changes.isEmpty ? [.writeMembership(alive)] : []) + reconcileVMs()

        case let .nodesChanged(nodes):
            registered = nodes
            return reconcileVMs()

        case let .vmsChanged(snapshot):
            vms = snapshot
            return reconcileVMs()

        case let .aliveChanged(now):
            return membershipChanged(to: now) + reconcileVMs()

        case let .tick(now, wall):
            self.now = now
            if wall != 0 { wallMillis = wall }
            // Failback waits on time alone, so a tick may be what lets it happen.
            let waitsForFailback = vms.values.contains { $0.spec.failback == true && $0.placement?.home != nil }
            let moves = waitsForFailback ? reconcileVMs() : []
            guard let last = lastTrim else { lastTrim = now; return moves }
            if now - last >= settings.trimEvery {
                lastTrim = now
                return moves + [.trimEvents(keep: settings.eventLogLimit)]
            }
            return moves
        }
    }

    /// Joined and lost events for a new alive set, and the write that remembers it.
    mutating func membershipChanged(to now: Set<NodeName>) -> [Effect] {
        let joined = now.subtracting(alive).sorted()
        let lost = alive.subtracting(now).sorted()
        alive = now
        if joined.isEmpty && lost.isEmpty { return [] }
        var effects: [Effect] = []
        for n in joined {
            joinedAt[n] = self.now
            effects.append(.record(ClusterEvent(kind: .nodeJoined, severity: .info, reporter: me, node: n,
                                                message: "node \(n) joined: its alive key appeared")))
        }
        for n in lost {
            effects.append(.record(ClusterEvent(kind: .nodeLost, severity: .warning, reporter: me, node: n,
                                                message: "node \(n) lost: its alive key is gone (lease expired or revoked)")))
        }
        return effects + [.writeMembership(now)]
    }
}

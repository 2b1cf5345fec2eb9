/// The leader's side of live migration, as a pure state machine: which requested
/// migrations start (one per VM, at most `maxPerNode` at once on any node, as source
/// or destination), and which stuck ones fail because a node they need is gone or a
/// phase took too long. The hosts drive the protocol itself (`MigrationRecord`).
///
/// It remembers nothing that matters across leaders: a new leader reads the records,
/// restarts the phase clocks at the moment it first sees them, and carries on — a
/// running migration completes, one whose node died is cleaned up.
public struct MigrationController: Sendable {
    public enum Event: Equatable, Sendable {
        /// The store as one snapshot: nodes, alive set, VMs, and every migration record with its mod revision.
        case snapshot(nodes: [NodeName: NodeRecord], alive: Set<NodeName>, vms: [VMName: VMRecord],
                      migrations: [VMName: MigrationRecord], revisions: [VMName: Int64], now: Duration)
    }

    public enum Effect: Equatable, Sendable {
        /// Compare-and-swap `vms/<vm>/migration` on `expectedRevision`; when written, record `event` (if any).
        case writeMigration(MigrationRecord, expectedRevision: Int64, event: ClusterEvent?)
    }

    public struct Settings: Equatable, Sendable {
        /// Migrations at once per node (as source or destination).
        public var maxPerNode = 2
        /// `preparing` → `ready`: the destination starts its QEMU.
        public var prepareTimeout: Duration = .seconds(60)
        /// `ready` → `copying`: the source starts sending.
        public var readyTimeout: Duration = .seconds(30)
        /// `copying` beyond the policy's time limit: the source should have cancelled by then.
        public var copyGrace: Duration = .seconds(30)
        /// `cancelling` → `cancelled`: the source confirms.
        public var cancelTimeout: Duration = .seconds(30)
        public init() {}
    }

    public let me: NodeName
    public let settings: Settings
    /// When this leader first saw each (migration id, phase).
    private var seen: [String: Duration] = [:]

    public init(me: NodeName, settings: Settings = Settings()) { self.me = me; self.settings = settings }

    public mutating func handle(_ event: Event) -> [Effect] {
        switch event {
        case let .snapshot(nodes, alive, vms, migrations, revisions, now):
            return decide(cluster: MigrationPlanner.Cluster(nodes: nodes, alive: alive, vms: vms, migrations: migrations),
                          revisions: revisions, now: now)
        }
    }

    mutating func decide(cluster c: MigrationPlanner.Cluster, revisions: [VMName: Int64], now: Duration) -> [Effect] {
        var c = c
        var effects: [Effect] = []
        var live: Set<String> = []
        var load: [NodeName: Int] = [:]
        for m in c.migrations.values where m.phase.isActive {
            load[m.source, default: 0] += 1; load[m.destination, default: 0] += 1
        }
        let order = c.migrations.values.filter { !$0.phase.isFinal }.sorted { ($0.requestedAtMillis, $0.vm) < ($1.requestedAtMillis, $1.vm) }
        for m in order {
            let key = m.id + "/" + m.phase.rawValue
            live.insert(key)
            let since = now - (seen[key] ?? now)
            if seen[key] == nil { seen[key] = now }
            let rev = revisions[m.vm] ?? 0
            func fail(_ why: String) {
                guard let f = m.moved(to: .failed, reason: why) else { return }
                effects.append(.writeMigration(f, expectedRevision: rev, event: event(.migrationFailed, .warning, m, "migration of \(m.vm) from \(m.source) to \(m.destination) failed: \(why); \(m.vm) stays on \(m.source)")))
                c.migrations[m.vm] = f
            }
            guard let vm = c.vms[m.vm] else { fail("the VM was deleted"); continue }
            if vm.spec.power == .stopped, [.requested, .preparing, .ready, .copying].contains(m.phase) {
                if let x = m.moved(to: .cancelling, reason: "\(m.vm) is being stopped") {
                    effects.append(.writeMigration(x, expectedRevision: rev, event: nil))
                }
                continue
            }
            let sourceUp = c.alive.contains(m.source), destUp = c.alive.contains(m.destination)
            switch m.phase {
            case .requested:
                guard load[m.source, default: 0] < settings.maxPerNode, load[m.destination, default: 0] < settings.maxPerNode else { continue }
                switch MigrationPlanner.decide(m.vm, to: m.destination, in: c, ignoring: m.vm) {
                case .migrate:
                    guard var next = m.moved(to: .preparing) else { continue }
                    next.placementRevision = vm.placementRevision
                    next.sourceEpoch = vm.placement?.epoch ?? m.sourceEpoch
                    effects.append(.writeMigration(next, expectedRevision: rev, event: event(.migrationStarted, .info, m,
                        "migrating \(m.vm) from \(m.source) to \(m.destination) (\(m.origin)): preparing the destination")))
                    c.migrations[m.vm] = next
                    load[m.source, default: 0] += 1; load[m.destination, default: 0] += 1
                case let .refused(why):
                    fail(why)
                }
            case .preparing:
                if !destUp { fail("destination \(m.destination) is down") }
                else if !sourceUp { fail("source \(m.source) is down") }
                else if since >= settings.prepareTimeout { fail("the destination did not get ready within \(settings.prepareTimeout)") }
            case .ready:
                if !destUp { fail("destination \(m.destination) is down") }
                else if !sourceUp { fail("source \(m.source) is down") }
                else if since >= settings.readyTimeout { fail("the source did not start sending within \(settings.readyTimeout)") }
            case .copying:
                if !destUp { fail("destination \(m.destination) went down while copying") }
                else if !sourceUp { fail("source \(m.source) went down while copying") }
                else if since >= .seconds(m.policy.timeLimitSeconds) + settings.copyGrace {
                    fail("no end reported by the source \(since) after copying began")
                }
            case .switchingOver:
                // The placement CAS decides between source and destination; only when both are gone is it over.
                if !destUp && !sourceUp { fail("source and destination are both down during the switch-over") }
            case .cancelling:
                if !sourceUp || since >= settings.cancelTimeout {
                    if let x = m.moved(to: .cancelled, reason: m.reason ?? (sourceUp ? "cancel not confirmed in time" : "source \(m.source) is down")) {
                        effects.append(.writeMigration(x, expectedRevision: rev, event: event(.migrationCancelled, .info, m,
                            "migration of \(m.vm) to \(m.destination) cancelled: \(x.reason ?? "")")))
                    }
                }
            case .done, .cancelled, .failed:
                break
            }
        }
        seen = seen.filter { live.contains($0.key) }
        return effects
    }

    func event(_ kind: EventKind, _ severity: Severity, _ m: MigrationRecord, _ message: String) -> ClusterEvent {
        ClusterEvent(kind: kind, severity: severity, reporter: me, node: m.source, vm: m.vm.rawValue, message: message)
    }
}

import Foundation
import VigilCore
import VigilStore

/// The API's side of live migration and drain: checks a request against the cluster
/// (`MigrationPlanner`) and writes it as a `requested` migration record, or refuses with
/// the reason and writes nothing. The leader starts it; the hosts carry it out.
public struct MigrationManager: AgentPart {
    public let context: AgentContext
    public init(context: AgentContext) { self.context = context }
    var store: MigrationStore { MigrationStore(etcd: etcd, keys: keys) }
    typealias Refusal = VMManager.Refusal

    struct Snapshot {
        var cluster: MigrationPlanner.Cluster
        var revisions: [VMName: Int64]
        var nodeRevisions: [NodeName: Int64]
    }

    func snapshot() async throws -> Snapshot {
        let r = try await etcd.txn([], then: [.getPrefix(keys.nodesPrefix), .getPrefix(keys.alivePrefix), .getPrefix(keys.vmsPrefix)])
        var nodes: [NodeName: NodeRecord] = [:], nodeRevs: [NodeName: Int64] = [:]
        for kv in r.ranges[0] { if let n = try? kv.decode(NodeRecord.self) { nodes[n.name] = n; nodeRevs[n.name] = kv.modRevision } }
        let alive = Set(r.ranges[1].compactMap { keys.name(of: $0.key, under: keys.alivePrefix) }.map(NodeName.init(unchecked:)))
        let (vms, migrations, revisions) = MigrationStore.decode(r.ranges[2], keys: keys)
        return Snapshot(cluster: .init(nodes: nodes, alive: alive, vms: vms, migrations: migrations), revisions: revisions, nodeRevisions: nodeRevs)
    }

    static func refusal(_ why: String) -> Refusal {
        if why.hasPrefix("no VM named") { return .notFound(why) }
        if why.hasPrefix("unknown node") { return .invalid(why) }
        return .conflict(why)
    }

    /// Ask for a live migration of `raw` (to `req.to`, or where the planner chooses).
    public func request(_ raw: String, _ req: MigrateRequest, origin: String = "operator") async throws -> MigrationRecord {
        let vm: VMName
        do { vm = try VMName(raw) } catch { throw Refusal.invalid("\(error)") }
        var to: NodeName?
        if let t = req.to { do { to = try NodeName(t) } catch { throw Refusal.invalid("\(error)") } }
        let policy = req.policy()
        if let p = policy.problem() { throw Refusal.invalid(p) }
        let s = try await snapshot()
        return try await write(vm, to: to, policy: policy, origin: origin, in: s)
    }

    func write(_ vm: VMName, to: NodeName?, policy: MigrationPolicy, origin: String, in s: Snapshot) async throws -> MigrationRecord {
        switch MigrationPlanner.decide(vm, to: to, in: s.cluster) {
        case let .refused(why):
            throw Self.refusal(why)
        case let .migrate(from, dest):
            let now = MigrationStore.nowMillis()
            let epoch = s.cluster.vms[vm]?.placement?.epoch ?? 0
            let m = MigrationRecord(id: "\(vm)-\(now)", vm: vm, source: from, destination: dest, sourceEpoch: epoch, origin: origin,
                                    policy: policy, requestedAtMillis: now)
            let ok = try await etcd.txn([.modRevision(keys.vmMigration(vm), equals: s.revisions[vm] ?? 0), .present(keys.vmSpec(vm))],
                                        then: [try .putJSON(keys.vmMigration(vm), m)]).succeeded
            guard ok else { throw Refusal.conflict("\(vm) changed while asking for its migration; try again") }
            try? await events.record(ClusterEvent(kind: .migrationRequested, severity: .info, reporter: config.node, node: from, vm: vm.rawValue,
                                                  message: "live migration of \(vm) from \(from) to \(dest) requested (\(origin)\(to == nil ? ", destination chosen by the planner" : ""))"))
            return m
        }
    }

    /// The VM's current (or last) migration.
    public func show(_ raw: String) async throws -> MigrationRecord {
        let vm: VMName
        do { vm = try VMName(raw) } catch { throw Refusal.invalid("\(error)") }
        guard let (m, _) = try await store.read(vm) else { throw Refusal.notFound("\(vm) has never been migrated") }
        return m
    }

    /// Cancel the VM's migration: the VM stays on its source, the destination is cleaned up.
    public func cancel(_ raw: String) async throws -> MigrationRecord {
        let vm: VMName
        do { vm = try VMName(raw) } catch { throw Refusal.invalid("\(error)") }
        guard let (m, _) = try await store.read(vm) else { throw Refusal.notFound("\(vm) has no migration to cancel") }
        if m.phase.isFinal { throw Refusal.conflict("\(vm) has no migration in progress (the last one is \(m.phase.rawValue))") }
        if m.phase == .cancelling { return m }
        let out = try await store.update(vm) { r in
            guard r.id == m.id else { return nil }
            return r.phase == .requested ? r.moved(to: .cancelled, reason: "cancelled by the operator before it started")
                                         : r.moved(to: .cancelling, reason: "cancelled by the operator")
        }
        guard let out else {
            let now = try await store.read(vm)?.0
            throw Refusal.conflict("\(vm)'s migration is \(now?.phase.rawValue ?? "gone"); too late to cancel")
        }
        try? await events.record(ClusterEvent(kind: .migrationCancelled, severity: .info, reporter: config.node, node: m.source, vm: vm.rawValue,
                                              message: "cancel of \(vm)'s migration to \(m.destination) requested by the operator (was \(m.phase.rawValue))"))
        return out
    }

    /// Pause `raw` and live-migrate its running VMs away. Refused (nothing changed) when some
    /// would not fit elsewhere, unless `force`; then the plan says what stays.
    public func drain(_ raw: String, force: Bool) async throws -> DrainPlan {
        let node: NodeName
        do { node = try NodeName(raw) } catch { throw Refusal.invalid("\(error)") }
        let s = try await snapshot()
        guard var record = s.cluster.nodes[node] else {
            throw Refusal.invalid("unknown node '\(node)'; known: \(s.cluster.nodes.keys.sorted().map(\.rawValue).joined(separator: ", "))")
        }
        let plan = MigrationPlanner.drain(node, in: s.cluster)
        if !plan.stays.isEmpty && !force {
            throw Refusal.conflict("cannot drain \(node): \(plan.stays.count) of \(plan.stays.count + plan.moves.count) VMs would not fit elsewhere: "
                + plan.stays.map { "\($0.vm) (\($0.reason))" }.joined(separator: "; ") + ". Nothing changed; free room or use --force to move the rest and leave these on \(node)")
        }
        if record.adminState != .paused {
            record.adminState = .paused
            let ok = try await etcd.txn([.modRevision(keys.node(node), equals: s.nodeRevisions[node] ?? 0)],
                                        then: [try .putJSON(keys.node(node), record)]).succeeded
            guard ok else { throw Refusal.conflict("node \(node) changed while draining; try again") }
        }
        var current = try await snapshot()
        for move in plan.moves {
            if let m = current.cluster.migrations[move.vm], !m.phase.isFinal { continue }
            _ = try? await write(move.vm, to: move.to, policy: MigrationPolicy(), origin: "drain of \(node)", in: current)
            current = try await snapshot()
        }
        let stays = plan.stays.isEmpty ? "" : "; staying (--force): " + plan.stays.map { "\($0.vm) (\($0.reason))" }.joined(separator: "; ")
        try? await events.record(ClusterEvent(kind: .nodeDrain, severity: .info, reporter: config.node, node: node,
                                              message: "draining \(node): paused (no new VMs), migrating \(plan.moves.map { "\($0.vm)→\($0.to)" }.joined(separator: ", "))\(stays)"))
        return plan
    }

    /// Take new VMs on `raw` again.
    public func resume(_ raw: String) async throws -> NodeRecord {
        let node: NodeName
        do { node = try NodeName(raw) } catch { throw Refusal.invalid("\(error)") }
        for _ in 0..<5 {
            guard let kv = try await etcd.get(keys.node(node)), var record = try? kv.decode(NodeRecord.self) else {
                throw Refusal.invalid("unknown node '\(node)'")
            }
            if record.adminState == .active { return record }
            record.adminState = .active
            if try await etcd.txn([.modRevision(keys.node(node), equals: kv.modRevision)], then: [try .putJSON(keys.node(node), record)]).succeeded {
                try? await events.record(ClusterEvent(kind: .nodeResumed, severity: .info, reporter: config.node, node: node, message: "\(node) resumed: takes new VMs again"))
                return record
            }
        }
        throw Refusal.conflict("node \(node) kept changing; try again")
    }
}

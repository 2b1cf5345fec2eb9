import Logging
import ServiceLifecycle
import VigilCore
import VigilStore

/// The leader's migration orchestration: while this node leads, feeds `MigrationController`
/// one snapshot of the store per round and carries out its writes, each conditional on
/// still holding the leader key and on the record's mod revision. Runs beside the
/// cluster controller (its own service, so the two stay apart); a new leader starts
/// with a fresh controller that picks up whatever records it finds.
public struct MigrationLeaderService: Service, AgentPart {
    public let context: AgentContext
    let logger: Logger
    let every: Duration = .milliseconds(300)

    public init(context: AgentContext, logger: Logger) { self.context = context; self.logger = logger }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            await StoreWakeup.watching(self.etcd, prefix: self.keys.root, relevant: { !$0.hasPrefix(self.keys.eventsPrefix) }) { wakeup in
                await self.loop(wakeup)
            }
        }
    }

    private func loop(_ wakeup: StoreWakeup) async {
        let clock = ContinuousClock()
        let origin = clock.now
        var controller: MigrationController?
        var lease: Int64?
        while !Task.isCancelled {
            let leading = await state.isLeader
            let current = await state.leaseID
            if !leading || current == nil || current != lease { controller = nil }
            lease = current
            if leading, let lease {
                if controller == nil { controller = MigrationController(me: config.node) }
                do {
                    let r = try await etcd.txn([], then: [.getPrefix(keys.nodesPrefix), .getPrefix(keys.alivePrefix), .getPrefix(keys.vmsPrefix)])
                    var nodes: [NodeName: NodeRecord] = [:]
                    for kv in r.ranges[0] { if let n = try? kv.decode(NodeRecord.self) { nodes[n.name] = n } }
                    let alive = Set(r.ranges[1].compactMap { keys.name(of: $0.key, under: keys.alivePrefix) }.map(NodeName.init(unchecked:)))
                    let (vms, migrations, revisions) = MigrationStore.decode(r.ranges[2], keys: keys)
                    let effects = controller!.handle(.snapshot(nodes: nodes, alive: alive, vms: vms, migrations: migrations,
                                                               revisions: revisions, now: clock.now - origin))
                    try await execute(effects, lease: lease)
                } catch {
                    logger.debug("migration round failed", metadata: ["error": "\(error)"])
                }
            }
            await wakeup.wait(maxWait: every)
        }
    }

    func execute(_ effects: [MigrationController.Effect], lease: Int64) async throws {
        for effect in effects {
            switch effect {
            case let .writeMigration(m, expected, event):
                var m = m
                m.updatedAtMillis = MigrationStore.nowMillis()
                let leaderStill: [Compare] = [.lease(keys.leader, equals: lease)]
                let ok = try await etcd.txn(leaderStill + [.modRevision(keys.vmMigration(m.vm), equals: expected)],
                                            then: [try .putJSON(keys.vmMigration(m.vm), m)]).succeeded
                if ok, let event {
                    logger.log(level: event.severity.logLevel, "\(event.kind): \(event.message)", metadata: ["vigil.vm": "\(m.vm)"])
                    _ = try? await events.record(event, onlyIf: leaderStill)
                }
            }
        }
    }
}

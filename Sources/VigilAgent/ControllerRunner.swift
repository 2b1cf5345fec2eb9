import Foundation
import Logging
import VigilCore
import VigilStore

/// The shell around `ClusterController` on the leader: reads the store, feeds the
/// state machine, and carries out its effects in order. Every write it makes is
/// conditional on still holding the leader key under `lease`, so a deposed leader
/// cannot write.
struct ControllerRunner: AgentPart {
    let context: AgentContext
    let lease: Int64
    let logger: Logger
    /// The longest between two reads of the store when the watch sees nothing (a safety net).
    let readEvery: Duration = .milliseconds(500)

    var stillLeader: [Compare] { [.lease(keys.leader, equals: lease)] }

    func run() async {
        let events = keys.eventsPrefix
        await StoreWakeup.watching(etcd, prefix: keys.root, relevant: { !$0.hasPrefix(events) }) { wakeup in await self.loop(wakeup) }
    }

    private func loop(_ wakeup: StoreWakeup) async {
        let clock = ContinuousClock()
        let origin = clock.now
        var controller = ClusterController(me: config.node, settings: config.ha)
        var started = false
        var lastNodes: [NodeName: NodeRecord] = [:]
        var lastAlive: Set<NodeName> = []
        var lastVMs: [VMName: VMRecord] = [:]
        while !Task.isCancelled {
            do {
                let (nodes, alive, vms, lastKnown) = try await readSnapshot()
                var effects: [ClusterController.Effect] = []
                if !started {
                    effects += controller.handle(.vmsChanged(vms))
                    effects += controller.handle(.becameLeader(registered: nodes, alive: alive, lastKnownAlive: lastKnown, now: clock.now - origin,
                                                                       wallMillis: Self.wallMillis()))
                    started = true
                } else {
                    if nodes != lastNodes { effects += controller.handle(.nodesChanged(nodes)) }
                    if alive != lastAlive { effects += controller.handle(.aliveChanged(alive)) }
                    if vms != lastVMs { effects += controller.handle(.vmsChanged(vms)) }
                }
                lastNodes = nodes; lastAlive = alive; lastVMs = vms
                effects += controller.handle(.tick(now: clock.now - origin, wallMillis: Self.wallMillis()))
                try await execute(effects, decidedOn: controller)
            } catch let e as EtcdError where e.code == .compareFailed {
                logger.warning("lost the leader key; stepping down")
                return
            } catch {
                logger.warning("controller round failed", metadata: ["error": "\(error)"])
            }
            await wakeup.wait(maxWait: readEvery)
        }
    }

    /// Wall time stamps failovers only (the failover policy's period spans leaders).
    static func wallMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// `nodes/`, `alive/` and `vms/` read in one transaction, so they are one consistent snapshot.
    func readSnapshot() async throws -> ([NodeName: NodeRecord], Set<NodeName>, [VMName: VMRecord], Set<NodeName>?) {
        let r = try await etcd.txn([], then: [.getPrefix(keys.nodesPrefix), .getPrefix(keys.alivePrefix), .getPrefix(keys.vmsPrefix),
                                              .get(key: keys.membership)])
        var nodes: [NodeName: NodeRecord] = [:]
        for kv in r.ranges[0] {
            if let rec = try? kv.decode(NodeRecord.self) { nodes[rec.name] = rec }
        }
        let alive = Set(r.ranges[1].compactMap { keys.name(of: $0.key, under: keys.alivePrefix) }.map(NodeName.init(unchecked:)))
        let lastKnown = r.ranges[3].first.flatMap { try? $0.decode(Set<NodeName>.self) }
        return (nodes, alive, VMSnapshot.decode(r.ranges[2], keys: keys), lastKnown)
    }

    func record(_ event: ClusterEvent) async throws {
        logger.log(level: event.severity.logLevel, "\(event.kind): \(event.message)",
                   metadata: ["vigil.node": "\(event.node?.rawValue ?? "-")", "vigil.vm": "\(event.vm ?? "-")"])
        try await events.record(event, onlyIf: stillLeader)
    }

    /// `view`: the controller as it decided (its snapshot of `vms/` and `alive/`).
    func execute(_ effects: [ClusterController.Effect], decidedOn view: ClusterController) async throws {
        for effect in effects {
            switch effect {
            case let .record(event):
                try await record(event)
            case let .writeMembership(alive):
                try await etcd.compareAndSwap(stillLeader, then: [try .putJSON(keys.membership, alive.sorted())])
            case let .trimEvents(keep):
                try await events.trim(keep: keep)
            case let .writePlacement(vm, placement, expected, event):
                let key = keys.vmPlacement(vm)
                var compares = stillLeader + [.modRevision(key, equals: expected), .present(keys.vmSpec(vm))]
                if let down = TakeoverGuard.mustStillBeDown(from: view.vms[vm]?.placement, to: placement, alive: view.alive) {
                    compares.append(.absent(keys.alive(down)))
                }
                let r = try await etcd.txn(compares, then: [try .putJSON(key, placement)], orElse: [.get(key: keys.leader)])
                if !r.succeeded {
                    // The VM changed under us, or the node it was taken from is back (next round
                    // re-reads), or we no longer lead.
                    if r.ranges.first?.first?.lease != lease { throw EtcdError(.compareFailed, "leader key is no longer ours") }
                    logger.debug("placement changed concurrently; re-reading", metadata: ["vigil.vm": "\(vm)"])
                } else if let event {
                    try await record(event)
                }
            }
        }
    }
}

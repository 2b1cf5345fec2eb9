import Logging
import ServiceLifecycle
import VigilCore
import VigilStore

/// Campaigns for `leader` with this node's lease (create-if-absent, so at most one
/// holder), and while it holds it runs the controller. Leadership ends when the
/// lease is lost (the key goes with it) or on shutdown.
public struct LeaderElectionService: Service, AgentPart {
    public let context: AgentContext
    let logger: Logger
    /// How often a follower checks whether the leader key is gone.
    let pollEvery: Duration = .milliseconds(200)

    public init(context: AgentContext, logger: Logger) {
        self.context = context; self.logger = logger
    }


    public func run() async throws {
        try? await cancelWhenGracefulShutdown { await self.loop() }
        await state.setLeader(false)
    }

    private func loop() async {
        var lastSeenLeader: NodeName?
        while !Task.isCancelled {
            guard let lease = await state.leaseID else {
                try? await Task.sleep(for: pollEvery); continue
            }
            do {
                let me = LeaderRecord(node: config.node, leaseID: lease)
                let r = try await etcd.txn([.absent(keys.leader)], then: [try .putJSON(keys.leader, me, lease: lease)],
                                           orElse: [.get(key: keys.leader)])
                let holder = r.succeeded ? me : r.ranges.first?.first.flatMap { try? $0.decode(LeaderRecord.self) }
                if holder == me {
                    await lead(lease: lease)
                    lastSeenLeader = nil
                    continue
                }
                if let h = holder?.node, h != lastSeenLeader {
                    logger.info("following the leader", metadata: ["vigil.leader": "\(h)"])
                    lastSeenLeader = h
                }
            } catch {
                logger.debug("campaign failed", metadata: ["error": "\(error)"])
            }
            try? await Task.sleep(for: pollEvery)
        }
    }

    /// Run the controller while this node holds the leader key under `lease`.
    private func lead(lease: Int64) async {
        logger.info("elected leader", metadata: ["vigil.lease": "\(String(lease, radix: 16))"])
        await state.setLeader(true)
        let runner = ControllerRunner(context: context, lease: lease, logger: logger)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await runner.run() }
            group.addTask {
                // Step down as soon as the session loses the lease.
                while !Task.isCancelled, await state.leaseID == lease {
                    try? await Task.sleep(for: .milliseconds(50))
                }
            }
            await group.next()
            group.cancelAll()
        }
        await state.setLeader(false)
        logger.warning("no longer leader", metadata: ["vigil.lease": "\(String(lease, radix: 16))"])
        // If the lease still lives (e.g. the controller failed), let someone else lead.
        _ = try? await etcd.txn([.lease(keys.leader, equals: lease)], then: [.delete(key: keys.leader)])
    }
}

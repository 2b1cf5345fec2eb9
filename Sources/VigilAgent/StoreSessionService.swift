import Foundation
import Logging
import ServiceLifecycle
import VigilCore
import VigilStore

/// Holds this node's place in the cluster: a lease, `nodes/<node>` and `alive/<node>`
/// bound to the lease, renewed every TTL/6. When renewals stop being acknowledged for
/// a whole TTL the lease counts as lost (it may already be gone at etcd) and the node
/// starts over with a new one. On graceful shutdown it records that it leaves and
/// revokes the lease, so peers see it gone at once instead of after the TTL.
public struct StoreSessionService: Service, AgentPart {
    public let context: AgentContext
    let links: LinkMonitor
    /// What this node hears from its peers (the heartbeat mesh), published in `alive/<node>`.
    let heartbeats: @Sendable () -> [String: [String: Bool]]?
    let logger: Logger

    public init(context: AgentContext, logger: Logger, heartbeats: @escaping @Sendable () -> [String: [String: Bool]]? = { nil }) {
        self.context = context
        self.links = LinkMonitor(networks: context.config.networks); self.heartbeats = heartbeats; self.logger = logger
    }

    /// What `alive/<node>` says now: own links and heard peers.
    func aliveRecord(lease: Int64) -> AliveRecord {
        AliveRecord(leaseID: lease, links: links.read(), heartbeats: heartbeats())
    }

    var ttlSeconds: Int64 { config.leaseTTL.components.seconds }
    var renewEvery: Duration { config.leaseTTL / 6 }
    var fenceAfter: Duration { FencePolicy(leaseTTL: config.leaseTTL).fenceAfter }

    /// The lease this node last joined with, kept in the state directory so a restarted
    /// vigild can resume it (and keep its VMs) instead of waiting for it to expire.
    var leaseFile: String { config.stateDir + "/lease" }
    func savedLease() -> Int64? {
        (try? String(contentsOfFile: leaseFile, encoding: .utf8)).flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
    func saveLease(_ id: Int64) {
        try? FileManager.default.createDirectory(atPath: config.stateDir, withIntermediateDirectories: true)
        try? String(id).write(toFile: leaseFile, atomically: true, encoding: .utf8)
    }

    public func run() async throws {
        do {
            try await cancelWhenGracefulShutdown { try await self.loop() }
        } catch let e as DuplicateNodeError {
            logger.critical("refusing to run: \(e)")
            throw e
        } catch {}
        await leave()
    }

    /// Another agent holds this node's alive key and keeps renewing it.
    public struct DuplicateNodeError: Error, CustomStringConvertible {
        public var node: NodeName
        public var lease: Int64
        public var description: String {
            "node name '\(node)' is already alive in the cluster (lease \(String(lease, radix: 16)) kept renewed for longer than a TTL): another vigild runs with this name; give each node its own name"
        }
    }

    private func loop() async throws {
        var first = true
        var lostAt: ContinuousClock.Instant?
        var heldBy: (lease: Int64, since: ContinuousClock.Instant)?
        while !Task.isCancelled {
            let sent = ContinuousClock.now
            let lease: Int64
            let outcome = await establish()
            if case let .joined(l) = outcome { await state.acquired(lease: l, sentAt: sent) }
            // The fence guard waits for this: a resumed lease protects adopted VMs, anything else fences them.
            await state.sessionSettled()
            switch outcome {
            case let .joined(l):
                lease = l
                heldBy = nil
            case .unreachable:
                try? await Task.sleep(for: .milliseconds(300))
                continue
            case let .heldBy(other):
                // After a crash our own old lease may still hold the key for up to a TTL;
                // a key that outlives that is being renewed by someone else.
                if heldBy?.lease != other {
                    heldBy = (other, .now)
                    logger.warning("this node's alive key is held by another lease; waiting for it to expire",
                                   metadata: ["vigil.lease": "\(String(other, radix: 16))"])
                } else if let since = heldBy?.since, ContinuousClock.now - since > config.leaseTTL + .seconds(2) {
                    throw DuplicateNodeError(node: config.node, lease: other)
                }
                try? await Task.sleep(for: .milliseconds(300))
                continue
            }
            if first {
                logger.info("joined the cluster", metadata: ["vigil.lease": "\(String(lease, radix: 16))"])
                try? await events.record(ClusterEvent(kind: .nodeStarted, severity: .info, reporter: config.node, node: config.node,
                                                      message: "vigild \(VigilVersion.current) started on \(config.node) (lease TTL \(ttlSeconds) s)"))
            } else if let lostAt {
                let gap = ContinuousClock.now - lostAt
                logger.warning("regained quorum with a new lease", metadata: ["vigil.lease": "\(String(lease, radix: 16))"])
                try? await events.record(ClusterEvent(kind: .quorumRegained, severity: .warning, reporter: config.node, node: config.node,
                                                      message: "\(config.node) holds a lease again after \(gap) without one"))
            }
            first = false
            await keepAlive(lease, lastAcked: sent)
            if Task.isCancelled { return }  // shutting down: `leave` revokes the lease
            lostAt = .now
            await state.lost()
            try? await etcd.revokeLease(lease)  // best effort: it may linger at etcd otherwise
        }
    }

    enum Establish { case joined(Int64), unreachable, heldBy(Int64) }

    /// Grant a lease, register, and bind `alive/<node>` to it — only if no other lease holds it.
    private func establish() async -> Establish {
        do {
            let existing = try await etcd.get(keys.alive(config.node))
            if let existing, existing.lease != 0 {
                // Our own lease from before a restart: take it up again, so the VMs this
                // node runs stay put (if it is back before its fence deadline).
                if existing.lease == savedLease(), (try? await etcd.keepAlive(existing.lease, timeout: renewEvery * 2)) != nil {
                    logger.info("resumed the lease an earlier vigild held", metadata: ["vigil.lease": "\(String(existing.lease, radix: 16))"])
                    return .joined(existing.lease)
                }
                return .heldBy(existing.lease)
            }
            let lease = try await etcd.grantLease(ttl: ttlSeconds)
            var record = config.nodeRecord
            // An operator's pause survives restarts.
            if let old = try await etcd.get(keys.node(config.node)), let prev = try? old.decode(NodeRecord.self) {
                record.adminState = prev.adminState
            }
            let alive = aliveRecord(lease: lease.id)
            await state.setAlive(alive)
            let r = try await etcd.txn([.absent(keys.alive(config.node))], then: [
                try .putJSON(keys.node(config.node), record),
                try .putJSON(keys.alive(config.node), alive, lease: lease.id),
            ], orElse: [.get(key: keys.alive(config.node))])
            guard r.succeeded else {
                try? await etcd.revokeLease(lease.id)
                return .heldBy(r.ranges.first?.first?.lease ?? 0)
            }
            saveLease(lease.id)
            return .joined(lease.id)
        } catch {
            logger.warning("cannot join the cluster store; retrying", metadata: ["error": "\(error)"])
            return .unreachable
        }
    }

    /// Renew until the lease is lost or the task is cancelled.
    /// Renew until etcd says the lease is gone, or the task is cancelled.
    ///
    /// When no renewal has been acknowledged for a whole TTL the node stops counting on
    /// the lease (it steps down as leader and reports no lease), but it keeps renewing the
    /// same lease: a new etcd leader extends every lease when it takes over, so after an
    /// etcd election the lease is usually still there, and nothing needs to move.
    private func keepAlive(_ lease: Int64, lastAcked acked: ContinuousClock.Instant) async {
        var lastAcked = acked
        var suspended = false
        while !Task.isCancelled {
            do { try await Task.sleep(for: renewEvery) } catch { return }
            if !suspended { await refreshLinks(lease) }
            let sent = ContinuousClock.now
            // The fence deadline, not the TTL: past it this node's VMs are being killed,
            // and its lease may expire at etcd soon after.
            let left = lastAcked + fenceAfter - sent
            if left <= .zero && !suspended {
                suspended = true
                logger.error("lost quorum: no renewal acknowledged before the fence deadline; VMs are fenced; still trying to renew",
                             metadata: ["vigil.lease": "\(String(lease, radix: 16))"])
                await state.lost()
            }
            do {
                try await etcd.keepAlive(lease, timeout: suspended ? renewEvery * 3 : min(left, renewEvery * 2))
                lastAcked = sent
                if suspended {
                    suspended = false
                    logger.warning("quorum back: the same lease is still valid", metadata: ["vigil.lease": "\(String(lease, radix: 16))"])
                    await state.acquired(lease: lease, sentAt: sent)
                    try? await events.record(ClusterEvent(kind: .quorumRegained, severity: .warning, reporter: config.node, node: config.node,
                                                          message: "\(config.node) reached etcd again and still holds its lease"))
                } else {
                    await state.renewed(sentAt: sent)
                }
            } catch let e as EtcdError where e.code == .leaseNotFound {
                logger.error("lease is gone at etcd", metadata: ["vigil.lease": "\(String(lease, radix: 16))"])
                return
            } catch {
                if !suspended { logger.warning("lease renewal failed", metadata: ["error": "\(error)", "vigil.left": "\(left)"]) }
            }
        }
    }

    /// Rewrite `alive/<node>` when one of our links, or what we hear from a peer, changes.
    private func refreshLinks(_ lease: Int64) async {
        let current = aliveRecord(lease: lease)
        guard current != (await state.alive) else { return }
        logger.info("link state changed", metadata: ["vigil.links": "\(current.links)", "vigil.heartbeats": "\(current.heartbeats ?? [:])"])
        do {
            try await etcd.compareAndSwap([.lease(keys.alive(config.node), equals: lease)],
                                          then: [try .putJSON(keys.alive(config.node), current, lease: lease)])
            await state.setAlive(current)
        } catch {
            logger.debug("could not publish link state yet", metadata: ["error": "\(error)"])
        }
    }

    /// On graceful shutdown. Without VMs the node leaves at once (revokes its lease).
    /// With VMs running it must not: revoking would let the leader restart them elsewhere
    /// while they still run here. It hands leadership over, renews once more, and leaves
    /// the lease to a restarted vigild (which resumes it and adopts the VMs) or to
    /// expiry, by which time the VMs are fenced.
    private func leave() async {
        guard let lease = await state.leaseID else { return }
        let vms = await state.localVMs
        if vms == 0 {
            logger.info("leaving the cluster: revoking the lease")
            try? await events.record(ClusterEvent(kind: .nodeLeaving, severity: .info, reporter: config.node, node: config.node,
                                                  message: "\(config.node) is shutting down and leaves the cluster"))
            try? await etcd.revokeLease(lease)
            await state.lost()
            // Nothing left to fence; a later vigild arms it again with its own lease.
            _ = try? await context.watchdog.disarm()
            return
        }
        let sent = ContinuousClock.now
        if (try? await etcd.keepAlive(lease, timeout: renewEvery)) != nil { await state.renewed(sentAt: sent) }
        try? await etcd.compareAndSwap([.lease(keys.leader, equals: lease)], then: [.delete(key: keys.leader)])
        let budget = await state.fenceDeadline.map { $0 - ContinuousClock.now } ?? .zero
        logger.warning("shutting down with VMs running: keeping the lease for a restarted vigild",
                       metadata: ["vigil.vms": "\(vms)", "vigil.fenceIn": "\(budget)"])
        try? await events.record(ClusterEvent(kind: .nodeLeaving, severity: .warning, reporter: config.node, node: config.node,
                                              message: "vigild on \(config.node) stops with \(vms) VMs running; unless it is back within \(budget) they are fenced and restarted elsewhere"))
        await state.lost()
    }
}

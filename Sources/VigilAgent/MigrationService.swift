import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import VigilCore
import VigilQEMU
import VigilStore

/// This node's part in live migrations (`vms/<vm>/migration`), as destination or source.
///
/// Destination (phase `preparing`): starts the VM's QEMU paused (`-S`) with `-incoming` on
/// its migration address, says `ready`; when its QEMU has all the state, writes the
/// **ownership switch** — one transaction that moves `vms/<vm>/placement` to this node with
/// the next epoch (compared on the placement's mod revision the leader recorded), marks the
/// migration `done` and reports the runtime — and only then resumes the guest (`cont`).
///
/// Source (phase `ready`): sets Vigil's parameters, runs QMP `migrate`, follows
/// `query-migrate`, writes progress, applies convergence control, cancels on request or at
/// the time limit. When its QEMU says `completed` it waits for the switch; if the
/// destination cannot take over, it takes the placement back with the same kind of CAS
/// (fencing the destination out) and resumes its own guest. The source QEMU is killed by the
/// host runtime once the placement names the destination.
public struct MigrationService: Service, AgentPart {
    public let context: AgentContext
    let runtime: HostRuntimeService
    let logger: Logger
    let every: Duration = .milliseconds(200)
    /// How long the source waits for the destination's switch before taking the VM back.
    let switchWait: Duration = .seconds(10)
    var store: MigrationStore { MigrationStore(etcd: etcd, keys: keys) }

    public init(context: AgentContext, runtime: HostRuntimeService, logger: Logger) {
        self.context = context; self.runtime = runtime; self.logger = logger
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            await StoreWakeup.watching(self.etcd, prefix: self.keys.vmsPrefix, relevant: { $0.hasSuffix("/migration") }) { wakeup in
                await self.loop(wakeup)
            }
        }
    }

    private func loop(_ wakeup: StoreWakeup) async {
        let running = RunningJobs()
        await withDiscardingTaskGroup { group in
            while !Task.isCancelled {
                if await state.leaseID != nil, let kvs = try? await etcd.getPrefix(keys.vmsPrefix).kvs {
                    let (vms, migrations, _) = MigrationStore.decode(kvs, keys: keys)
                    for m in migrations.values.sorted(by: { $0.vm < $1.vm }) where !m.phase.isFinal {
                        let me = config.node
                        var job: (@Sendable () async -> Void)?
                        var tag = m.id
                        if m.destination == me && m.phase == .preparing, let spec = vms[m.vm]?.spec {
                            tag += "/destination"; job = { await self.destination(m, spec: spec) }
                        } else if m.source == me && m.phase == .ready {
                            tag += "/source"; job = { await self.source(m) }
                        } else if m.source == me && m.phase == .cancelling {
                            tag += "/source"; job = { await self.confirmCancel(m) }
                        }
                        guard let work = job, running.start(tag) else { continue }
                        let done = tag
                        group.addTask {
                            await work()
                            running.finish(done)
                        }
                    }
                }
                await wakeup.wait(maxWait: every)
            }
        }
    }

    func record(_ kind: EventKind, _ severity: Severity, _ m: MigrationRecord, _ message: String) async {
        logger.log(level: severity.logLevel, "\(kind): \(message)", metadata: ["vigil.vm": "\(m.vm)"])
        _ = try? await events.record(ClusterEvent(kind: kind, severity: severity, reporter: config.node, node: config.node, vm: m.vm.rawValue, message: message))
    }

    /// Move the record (still migration `m.id`) to `phase`; nil when it was elsewhere already.
    @discardableResult
    func move(_ m: MigrationRecord, to phase: MigrationPhase, reason: String? = nil, _ change: (inout MigrationRecord) -> Void = { _ in }) async -> MigrationRecord? {
        try? await store.update(m.vm) { r in
            guard r.id == m.id, var n = r.moved(to: phase, reason: reason) else { return nil }
            change(&n)
            return n
        }
    }

    /// A cancel that reached the source before it started sending: nothing to undo here.
    func confirmCancel(_ m: MigrationRecord) async {
        if runtime.incoming.pending.contains(m.vm) && m.destination == config.node { return }
        if await move(m, to: .cancelled) != nil {
            await record(.migrationCancelled, .info, m, "migration of \(m.vm) to \(m.destination) cancelled before copying began: \(m.reason ?? "on request"); \(m.vm) stays on \(m.source)")
        }
    }

    // MARK: destination

    func destination(_ m: MigrationRecord, spec: VMSpec) async {
        let vm = m.vm
        let epoch = m.sourceEpoch + 1
        runtime.incoming.begin(vm)
        var process: QEMUProcess?
        func cleanUp(failing why: String?) async {
            if let p = process { _ = try? await p.kill(.sigkill, timeout: .seconds(5)); await p.qmp.close() }
            try? await TapDevice(forVM: vm.rawValue).delete()
            runtime.incoming.abandon(vm)
            if let why, let f = await move(m, to: .failed, reason: why) {
                await record(.migrationFailed, .warning, f, "migration of \(vm) from \(m.source) to \(m.destination) failed: \(why); \(vm) stays on \(m.source)")
            }
        }
        do {
            let choice = MigrationNetwork.choose(networks: config.networks, clusterAddress: config.clusterAddress,
                                                 links: await state.alive?.links ?? [:])
            let uri = "tcp:\(choice.address):\(try Self.freePort(on: choice.address))"
            let p = try await runtime.launch(spec, epoch: epoch, incoming: uri)
            process = p
            try await p.qmp.migrateSetCapabilities(Self.capabilities(m.policy).merging(["events": true]) { $1 })
            if m.policy.multifdChannels > 0 { try await p.qmp.migrateSetParameters(MigrationParameters(multifdChannels: m.policy.multifdChannels)) }
            guard await move(m, to: .ready, { $0.incoming = uri; $0.network = "\(choice.network) (\(choice.why))" }) != nil else {
                await cleanUp(failing: nil); return
            }
            logger.info("migration destination ready", metadata: ["vigil.vm": "\(vm)", "vigil.incoming": "\(uri)"])
            // Wait until the incoming state is complete (QEMU's MIGRATION event, or paused after
            // `inmigrate` at a slower poll), or the migration ends otherwise.
            var seen = MigrationRecord?.none
            switch await awaitIncoming(m, p, record: &seen) {
            case .complete: break
            case .aborted: await cleanUp(failing: nil); return
            case .exited:
                // The source knows better why (a cancel makes this QEMU exit): give it a moment to say so.
                var active = await stillActive(m)
                for _ in 0..<20 where active { try? await Task.sleep(for: .milliseconds(100)); active = await stillActive(m) }
                await cleanUp(failing: active ? "the destination QEMU exited during the migration (\(Self.tail(runtime.vmDir(vm) + "/qemu.log")))" : nil)
                return
            }
            // The ownership switch.
            let t0 = ContinuousClock.now
            let detectedAt = Date()
            runtime.incoming.switching(vm, p, epoch: epoch)
            // The record as last read will do: the switch compares the placement, and the source rewrites its figures after.
            var latest = seen
            if latest?.moved(to: .done) == nil { latest = try await store.read(vm)?.0 }
            // Resuming the guest here is starting it: only with a lease whose fence deadline is ahead and an armed watchdog.
            guard await state.mayStartVMs(watchdogRequired: config.watchdogRequired) else {
                await cleanUp(failing: "\(config.node) has no armed fence (lease or watchdog) at the switch-over"); return
            }
            guard let lease = await state.leaseID, let current = latest, current.id == m.id, var done = current.moved(to: .done) else {
                await cleanUp(failing: "the migration record changed before the switch-over"); return
            }
            done.updatedAtMillis = MigrationStore.nowMillis()
            let placement = Placement(node: config.node, epoch: epoch, phase: .placed)
            let runtimeReport = VMRuntime(node: config.node, epoch: epoch, state: .running, pid: p.pid, accel: runtime.accel.rawValue, restarts: 0)
            let r = try await etcd.txn([.modRevision(keys.vmPlacement(vm), equals: m.placementRevision)],
                                       then: [try .putJSON(keys.vmPlacement(vm), placement), try .putJSON(keys.vmMigration(vm), done),
                                              try .putJSON(keys.vmRuntime(vm), runtimeReport, lease: lease)])
            guard r.succeeded else {
                // The source took the VM back (or the placement changed otherwise): this copy must never run.
                await cleanUp(failing: "the placement of \(vm) changed before the switch-over (the source kept it)"); return
            }
            let t1 = ContinuousClock.now
            async let resumed = p.qmp.firstEvent("RESUME", since: Date(timeIntervalSinceNow: -1), timeout: .seconds(2))
            try await p.qmp.cont()
            let switchMs = (ContinuousClock.now - t0).milliseconds
            logger.info("ownership switched and guest resumed", metadata: ["vigil.vm": "\(vm)", "vigil.detected_at_us": "\(Int64(detectedAt.timeIntervalSince1970 * 1_000_000))", "vigil.txn_ms": "\((t1 - t0).milliseconds)", "vigil.cont_ms": "\((ContinuousClock.now - t1).milliseconds)"])
            let resumedAt = await resumed.map { Int64($0.timeIntervalSince1970 * 1_000_000) }
            try? await store.update(vm) { r in
                guard r.id == m.id else { return nil }
                var n = r; n.switchoverMs = switchMs; n.resumedAtMicros = resumedAt; return n
            }
            await record(.migrationDone, .info, m, "\(vm) live-migrated from \(m.source) to \(config.node): ownership switched (epoch \(epoch)), guest resumed \(switchMs) ms after its state arrived")
        } catch {
            logger.warning("migration destination failed", metadata: ["vigil.vm": "\(vm)", "error": "\(error)"])
            await cleanUp(failing: "destination \(config.node): \(error)")
        }
    }

    enum IncomingOutcome: Sendable { case complete, aborted, exited }

    /// Races QEMU's `MIGRATION completed` event against a 20 ms poll of the run state (and
    /// of the record, every 200 ms, for a cancel or failure). `record` is the last record read.
    func awaitIncoming(_ m: MigrationRecord, _ p: QEMUProcess, record: inout MigrationRecord?) async -> IncomingOutcome {
        let last = LastRecord()
        let outcome = await withTaskGroup(of: IncomingOutcome?.self) { group in
            group.addTask {
                await p.qmp.firstEvent("MIGRATION", since: .distantPast, timeout: .seconds(3600)) { $0["status"]?.stringValue == "completed" } != nil ? .complete : nil
            }
            group.addTask {
                var lastLook = ContinuousClock.now - .seconds(1)
                while !Task.isCancelled {
                    if !p.isAlive { return .exited }
                    if let s = try? await p.qmp.queryStatus(), s.runState == .paused || s.running { return .complete }
                    if ContinuousClock.now - lastLook >= .milliseconds(200) {
                        lastLook = .now
                        let cur = try? await self.store.read(m.vm)
                        last.set(cur?.0)
                        if cur == nil || cur!.0.id != m.id || [.cancelled, .failed].contains(cur!.0.phase) { return .aborted }
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return nil
            }
            var result: IncomingOutcome = .aborted
            for await r in group {
                if let r { result = r; break }
            }
            group.cancelAll()
            return result
        }
        record = last.get()
        return outcome
    }

    func stillActive(_ m: MigrationRecord) async -> Bool {
        guard let (r, _) = try? await store.read(m.vm) else { return false }
        return r.id == m.id && !r.phase.isFinal && r.phase != .cancelling
    }


    static func tail(_ path: String) -> String {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return String(text.suffix(300)).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A TCP port free on `address` now (QEMU binds it a moment later).
    static func freePort(on address: String) throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw MigrationError("socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        guard inet_pton(AF_INET, address, &addr.sin_addr) == 1 else { throw MigrationError("not an IPv4 address: \(address)") }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0 else { throw MigrationError("cannot bind \(address): \(String(cString: strerror(errno)))") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

final class LastRecord: Sendable {
    private let value = Mutex<MigrationRecord?>(nil)
    func set(_ r: MigrationRecord?) { value.withLock { $0 = r } }
    func get() -> MigrationRecord? { value.withLock { $0 } }
}

/// The migration jobs this node runs, by migration id and role.
final class RunningJobs: Sendable {
    private let jobs = Mutex<Set<String>>([])
    func start(_ tag: String) -> Bool { jobs.withLock { $0.insert(tag).inserted } }
    func finish(_ tag: String) { jobs.withLock { _ = $0.remove(tag) } }
}

struct MigrationError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

extension Duration {
    var milliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}

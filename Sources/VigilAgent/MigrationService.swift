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

    // MARK: source

    static func capabilities(_ p: MigrationPolicy) -> [String: Bool] {
        ["auto-converge": p.convergence, "multifd": p.multifdChannels > 0]
    }

    /// Parameters for the source: Vigil's bandwidth (cap lifted unless the policy caps it),
    /// downtime limit, and with convergence control an armed but idle auto-converge (1 %)
    /// that `ConvergenceController` opens up when the migration falls behind.
    static func parameters(_ p: MigrationPolicy) -> [String: QMPValue] {
        var a: [String: QMPValue] = ["max-bandwidth": .int(p.maxBandwidth ?? Self.unlimited), "downtime-limit": .int(Int64(p.downtimeLimitMs))]
        if p.multifdChannels > 0 { a["multifd-channels"] = .int(Int64(p.multifdChannels)) }
        if p.convergence { a["cpu-throttle-initial"] = 1; a["cpu-throttle-increment"] = 1; a["max-cpu-throttle"] = 1 }
        return a
    }
    /// "No cap": 1 TiB/s.
    static let unlimited: Int64 = 1 << 40

    static func progress(_ raw: QMPValue) -> MigrationProgress {
        let info = MigrationInfo(raw)
        let page = raw["ram"]?["page-size"]?.int64Value ?? 4096
        return MigrationProgress(passes: info.dirtySyncCount ?? 0, totalBytes: info.totalBytes ?? 0, transferredBytes: info.transferredBytes ?? 0,
                                 remainingBytes: info.remainingBytes ?? 0, dirtyRate: (info.dirtyPagesRate ?? 0) * page,
                                 bandwidth: Int64((info.mbps ?? 0) * 1_000_000 / 8), expectedDowntimeMs: info.expectedDowntime?.milliseconds,
                                 downtimeMs: info.downtime?.milliseconds, elapsedMs: info.totalTime?.milliseconds ?? 0,
                                 throttlePercent: raw["cpu-throttle-percentage"]?.int64Value.map { Int($0) })
    }

    func source(_ m: MigrationRecord) async {
        guard let p = await runtime.table.process(m.vm), p.isAlive else {
            if let f = await move(m, to: .failed, reason: "no QEMU of \(m.vm) runs on \(config.node)") {
                await record(.migrationFailed, .warning, f, "migration of \(m.vm) failed: \(f.reason ?? "")")
            }
            return
        }
        runtime.incoming.beginOutgoing(m.vm)
        await sendAndSwitch(m, p)
        runtime.incoming.endOutgoing(m.vm)
        // Moved away: end the source QEMU (QMP quit; the runtime then sees the exit it asked for).
        if let pl = try? await etcd.get(keys.vmPlacement(m.vm))?.decode(Placement.self), pl.node != config.node, p.isAlive {
            try? await p.qmp.quit()
            if (try? await p.kill(.sigkill, timeout: .seconds(3))) == nil { logger.warning("source QEMU did not end", metadata: ["vigil.vm": "\(m.vm)"]) }
        }
    }

    func sendAndSwitch(_ m: MigrationRecord, _ p: QEMUProcess) async {
        let vm = m.vm
        guard p.isAlive else {
            if let f = await move(m, to: .failed, reason: "no QEMU of \(vm) runs on \(config.node)") {
                await record(.migrationFailed, .warning, f, "migration of \(vm) failed: \(f.reason ?? "")")
            }
            return
        }
        guard let uri = m.incoming else { await move(m, to: .failed, reason: "the destination gave no address"); return }
        do {
            try await p.qmp.migrateSetCapabilities(Self.capabilities(m.policy))
            try await p.qmp.execute("migrate-set-parameters", arguments: Self.parameters(m.policy))
        } catch {
            if let f = await move(m, to: .failed, reason: "source \(config.node) could not set migration parameters: \(error)") {
                await record(.migrationFailed, .warning, f, "migration of \(vm) failed: \(f.reason ?? "")")
            }
            return
        }
        guard await move(m, to: .copying) != nil else {
            if let (cur, _) = try? await store.read(vm), cur.id == m.id, cur.phase == .cancelling { await confirmCancel(cur) }
            return
        }
        let migrateStart = Date()
        async let stopped = p.qmp.firstEvent("STOP", since: migrateStart, timeout: .seconds(m.policy.timeLimitSeconds + 30))
        do { try await p.qmp.migrate(uri: uri) } catch {
            if let f = await move(m, to: .failed, reason: "QMP migrate to \(uri) failed: \(error)") {
                await record(.migrationFailed, .warning, f, "migration of \(vm) failed: \(f.reason ?? "")")
            }
            return
        }
        await record(.migrationStarted, .info, m, "\(vm): copying memory from \(m.source) to \(m.destination) over \(uri)")
        var convergence = ConvergenceController(policy: m.policy)
        var cancelReason: String?
        var lastWrite = ContinuousClock.now - .seconds(1)
        var last = MigrationProgress()
        while true {
            let raw: QMPValue
            do { raw = try await p.qmp.execute("query-migrate") } catch {
                await move(m, to: .failed, reason: "lost QMP of the source QEMU: \(error)"); return
            }
            let status = MigrationStatus(rawValue: raw["status"]?.stringValue ?? "none")
            last = Self.progress(raw)
            if status == .completed { break }
            if status == .failed || status == .cancelled {
                let why = cancelReason ?? raw["error-desc"]?.stringValue ?? "QEMU reported \(status.rawValue)"
                let snapshot = last
                if cancelReason != nil || status == .cancelled {
                    let cancelled = try? await store.update(vm) { r in
                        guard r.id == m.id else { return nil }
                        var n = r.phase == .cancelling ? r : r.moved(to: .cancelling)
                        n = n?.moved(to: .cancelled, reason: r.phase == .cancelling ? (r.reason ?? why) : why)
                        n?.progress = snapshot
                        return n
                    }
                    if let c = cancelled {
                        await record(.migrationCancelled, .info, c, "migration of \(vm) to \(m.destination) cancelled: \(c.reason ?? why); \(vm) keeps running on \(m.source)")
                    }
                } else if let f = await move(m, to: .failed, reason: why, { $0.progress = snapshot }) {
                    await record(.migrationFailed, .warning, f, "migration of \(vm) to \(m.destination) failed: \(why); \(vm) keeps running on \(m.source)")
                }
                return
            }
            var newSteps: [String] = []
            if cancelReason == nil {
                for step in convergence.observe(last) {
                    newSteps.append(step.message)
                    await record(.migrationConvergence, .info, m, "\(vm): \(step.message)")
                    switch step.action {
                    case let .throttle(increment, max):
                        try? await p.qmp.execute("migrate-set-parameters", arguments: ["cpu-throttle-increment": .int(Int64(increment)), "max-cpu-throttle": .int(Int64(max))])
                    case let .setDowntimeLimit(ms):
                        try? await p.qmp.execute("migrate-set-parameters", arguments: ["downtime-limit": .int(Int64(ms))])
                    case let .cancel(reason):
                        cancelReason = reason
                        // Say so first: the destination QEMU exits when the source cancels, and must not read that as a failure.
                        await move(m, to: .cancelling, reason: reason)
                        try? await p.qmp.migrateCancel()
                    }
                }
            }
            if !newSteps.isEmpty || ContinuousClock.now - lastWrite >= .milliseconds(500) {
                lastWrite = .now
                let snapshot = last
                let written = try? await store.update(vm) { r in
                    guard r.id == m.id, r.phase == .copying || r.phase == .cancelling else { return nil }
                    var n = r; n.progress = snapshot; n.steps += newSteps; return n
                }
                if written == nil || written?.phase == .cancelling, cancelReason == nil {
                    // Cancelled by the operator or the leader (or the record is gone): stop sending.
                    let cur = try? await store.read(vm)
                    cancelReason = cur.map { $0.0.reason ?? "cancelled (\($0.0.phase.rawValue))" } ?? "the migration record disappeared"
                    try? await p.qmp.migrateCancel()
                }
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
        let stoppedAt = await stopped.map { Int64($0.timeIntervalSince1970 * 1_000_000) }
        await switchOver(m, process: p, final: last, stoppedAt: stoppedAt)
    }

    /// The source's QEMU sent everything and stopped: wait for the destination's switch, or take the VM back.
    func switchOver(_ m: MigrationRecord, process p: QEMUProcess, final: MigrationProgress, stoppedAt: Int64?) async {
        let vm = m.vm
        let written = try? await store.update(vm) { r in
            guard r.id == m.id else { return nil }
            var n = r.phase == .copying ? (r.moved(to: .switchingOver) ?? r) : r
            n.progress = final
            n.stoppedAtMicros = stoppedAt
            return n.phase == .switchingOver || n.phase == .done ? n : nil
        }
        logger.info("migration sent; waiting for the ownership switch", metadata: ["vigil.vm": "\(vm)", "vigil.phase": "\(written?.phase.rawValue ?? "?")"])
        let deadline = ContinuousClock.now + switchWait
        while true {
            if let kv = try? await etcd.get(keys.vmPlacement(vm)), let pl = try? kv.decode(Placement.self) {
                if pl.node == m.destination && pl.epoch > m.sourceEpoch {
                    // Switched. QEMU's own figures (downtime) come from the source, which still answers QMP.
                    if let raw = try? await p.qmp.execute("query-migrate") {
                        let final = Self.progress(raw)
                        try? await store.update(vm) { r in guard r.id == m.id else { return nil }; var n = r; n.progress = final; n.stoppedAtMicros = stoppedAt; return n }
                    }
                    return
                }
                if kv.modRevision != m.placementRevision {
                    // Someone else changed the placement: if it is still ours, our guest must run.
                    if pl.node == config.node { try? await p.qmp.cont() }
                    return
                }
                let destAlive = (try? await etcd.get(keys.alive(m.destination))) != nil
                if (!destAlive || ContinuousClock.now >= deadline), await state.mayStartVMs(watchdogRequired: config.watchdogRequired) {
                    let why = destAlive ? "the destination did not switch within \(switchWait)" : "destination \(m.destination) went down before the switch-over"
                    var failed = (try? await store.read(vm))?.0 ?? m
                    failed.phase = .failed; failed.reason = why + "; resumed on \(config.node)"; failed.updatedAtMillis = MigrationStore.nowMillis()
                    let back = Placement(node: config.node, epoch: m.sourceEpoch + 1, phase: .placed)
                    let r = try? await etcd.txn([.modRevision(keys.vmPlacement(vm), equals: m.placementRevision)],
                                                then: [try .putJSON(keys.vmPlacement(vm), back), try .putJSON(keys.vmMigration(vm), failed)])
                    if r?.succeeded == true {
                        try? await p.qmp.cont()
                        await record(.migrationFailed, .warning, m, "migration of \(vm) to \(m.destination) failed at the switch-over: \(why); \(config.node) kept ownership (epoch \(m.sourceEpoch + 1)) and resumed the guest")
                        return
                    }
                    continue
                }
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
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

import Foundation
import Logging
import VigilCore
import VigilQEMU
import VigilStore

/// The source's side of a live migration: QEMU's migration settings from the policy,
/// `migrate` and following it (progress, convergence control, cancel), and waiting for
/// the destination's ownership switch — or taking the VM back when it does not come.
extension MigrationService {

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
}

import VigilCore
import VigilWatchdog

/// Self-fencing inside vigild, and keeping the watchdog armed.
///
/// - When the fence deadline passes with no renewal acknowledged, kill every local QEMU
///   at once, and keep killing while it stays passed (a QEMU launched in a race dies
///   too). On SIGCONT after a freeze this is the first thing that runs: it finds the
///   deadline passed and kills before the runtime's next round can act.
/// - Every new deadline goes to `vigil-watchdog`, which enforces the same deadline from
///   outside, so a frozen or dead vigild cannot leave a VM running. After the watchdog
///   fenced, it is re-armed only once this node again holds a lease with its deadline
///   ahead and none of the fenced QEMUs is left.
extension HostRuntimeService {
    func fenceGuard(_ table: ProcessTable) async {
        // A restarted vigild first gives its session the chance to resume the old lease;
        // until then it has no deadline of its own and must not kill what it adopted.
        await state.waitUntilSessionSettled()
        var petted: ContinuousClock.Instant?
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let deadline = await state.fenceDeadline
            if await !state.mayRunVMs(now: now) {
                await fenceLocally(table, deadline: deadline, now: now)
                try? await Task.sleep(for: .milliseconds(20))
                continue
            }
            if let d = deadline, d != petted, await petWatchdog(until: d, table: table) { petted = d }
            // Wake for the next renewal's deadline soon, and exactly at the deadline.
            try? await Task.sleep(for: min(deadline.map { $0 - now } ?? .milliseconds(50), .milliseconds(50)))
        }
    }

    private func fenceLocally(_ table: ProcessTable, deadline: ContinuousClock.Instant?, now: ContinuousClock.Instant) async {
        let killed = await table.fenceAll()
        let late = deadline.map { now - $0 } ?? .zero
        for (vm, took) in killed {
            logger.critical("FENCED: killed the VM's QEMU: no lease renewal acknowledged before the fence deadline",
                            metadata: ["vigil.vm": "\(vm)", "vigil.afterDeadline": "\(late)", "vigil.killTook": "\(took)"])
        }
    }

    /// Hand the deadline to the watchdog; true when it holds it.
    private func petWatchdog(until d: ContinuousClock.Instant, table: ProcessTable) async -> Bool {
        let holder = config.node.rawValue
        let target = MonotonicClock.instant(of: d)
        do {
            try await context.watchdog.pet(until: target, holder: holder)
            await state.watchdog(armedUntil: d, state: "armed")
            return true
        } catch let e as WatchdogError where e.code == .fencing {
            // It fenced (vigild was frozen or down past a deadline). Its kills and ours are
            // done once no QEMU is left here; then this lease's deadline is the new one.
            await state.watchdog(armedUntil: nil, state: "fencing")
            guard await table.count == 0 else { return false }
            do {
                try await context.watchdog.rearm(until: target, holder: holder)
                await state.watchdog(armedUntil: d, state: "armed")
                logger.warning("watchdog re-armed after a fence", metadata: ["vigil.watchdog": "\(e)"])
                return true
            } catch {
                logger.warning("watchdog re-arm refused; retrying", metadata: ["error": "\(error)"])
                return false
            }
        } catch {
            let was = await state.watchdogState
            await state.watchdog(armedUntil: nil, state: "missing: \(error)")
            if !was.hasPrefix("missing") {
                logger.error("vigil-watchdog does not answer: VMs here have no fence if vigild freezes\(config.watchdogRequired ? "; starting no VMs until it does" : "")",
                             metadata: ["error": "\(error)", "vigil.watchdog.socket": "\(config.watchdogSocket)"])
                try? await events.record(ClusterEvent(kind: .watchdogMissing, severity: .error, reporter: config.node, node: config.node,
                                                      message: "vigil-watchdog on \(config.node) does not answer (\(error))\(config.watchdogRequired ? ": no VM starts there until it does" : "")"))
            }
            return false
        }
    }
}

extension EventKind {
    public static let watchdogMissing = EventKind(rawValue: "node.watchdog-missing")
}

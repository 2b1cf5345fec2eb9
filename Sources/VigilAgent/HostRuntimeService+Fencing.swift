import VigilCore

/// Self-fencing inside vigild: when the fence deadline passes with no renewal
/// acknowledged, kill every local QEMU at once, and keep killing while it stays passed
/// (a QEMU launched in a race dies too). The separate `vigil-watchdog` does the same
/// from the outside, so a frozen vigild cannot leave a VM running; this guard is the
/// fast path while vigild is healthy, and it is what fences after a freeze: on SIGCONT
/// it finds the deadline passed and kills before the runtime's next round can act.
extension HostRuntimeService {
    func fenceGuard(_ table: ProcessTable) async {
        // A restarted vigild first gives its session the chance to resume the old lease;
        // until then it has no deadline of its own and must not kill what it adopted.
        await state.waitUntilSessionSettled()
        while !Task.isCancelled {
            let now = ContinuousClock.now
            let deadline = await state.fenceDeadline
            if await !state.mayRunVMs(now: now) {
                let killed = await table.fenceAll()
                if !killed.isEmpty {
                    let late = deadline.map { now - $0 } ?? .zero
                    for (vm, took) in killed {
                        logger.critical("FENCED: killed the VM's QEMU: no lease renewal acknowledged before the fence deadline",
                                        metadata: ["vigil.vm": "\(vm)", "vigil.afterDeadline": "\(late)", "vigil.killTook": "\(took)"])
                    }
                }
                try? await Task.sleep(for: .milliseconds(20))
            } else if let d = deadline {
                // Wake exactly at the deadline (renewals move it on; re-check then).
                try? await Task.sleep(for: min(d - now, .milliseconds(100)))
            } else {
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }
}

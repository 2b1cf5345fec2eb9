#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import VigilCore
import VigilQEMU

/// Finds this host's QEMUs the way vigild leaves them — `qemu-system-*` run with
/// `-name <vm> -pidfile <stateDir>/vms/<vm>/qemu.pid` — and SIGKILLs them. Other lab
/// hosts' QEMUs on the same machine have their pidfiles in other state directories.
///
/// A pidfile whose pid now names anything else (pid reuse, another VM) is never
/// killed: the fence must not take an innocent process down with the VMs.
struct QEMUFencer {
    let stateDirectory: String
    let logger: Logger
    /// Pidfiles already reported as naming no QEMU of their VM, so a scan every poll
    /// interval while fencing does not repeat the same line.
    private var reportedStrangers: Set<String> = []
    /// The QEMUs the last /proc scan found. At a deadline these are checked (one /proc
    /// read each) and killed first, before the scans — which read all of /proc and the
    /// state directory, and take milliseconds on a busy host — look for the rest.
    private(set) var lastFound: [FenceTarget] = []

    init(stateDirectory: String, logger: Logger) {
        self.stateDirectory = stateDirectory
        self.logger = logger
    }

    var vmsDirectory: String { stateDirectory + "/vms" }

    /// The QEMUs /proc shows with a `-pidfile` under `vmsDirectory`: no disk access, so a
    /// hung state disk cannot stall it (the watchdog runs this while armed, too).
    mutating func scanProc() -> [FenceTarget] {
        lastFound = QEMUProcess.running(withPidfilesIn: vmsDirectory).map {
            FenceTarget(vm: VMName(unchecked: $0.vm), pid: $0.process.pid, startTime: $0.process.startTime)
        }
        return lastFound
    }

    /// The QEMUs that `<vmsDirectory>/<vm>/qemu.pid` files name, checked through /proc to
    /// be QEMUs of those VMs: finds one started without vigild's `-pidfile` argument. Reads
    /// the state disk, so it runs last when fencing.
    mutating func scanPidfiles() -> [FenceTarget] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: vmsDirectory)) ?? []
        var found: [FenceTarget] = []
        for name in names.sorted() {
            let pidfile = "\(vmsDirectory)/\(name)/qemu.pid"
            do {
                let qemu = try QEMUProcess.identify(pidfile: pidfile, name: name)
                found.append(FenceTarget(vm: VMName(unchecked: name), pid: qemu.pid, startTime: qemu.startTime))
            } catch let error as QEMUError where error.code == .notThisVM {
                if reportedStrangers.insert("\(pidfile):\(error.pid ?? 0)").inserted {
                    logger.notice("pidfile names no QEMU of its VM: not killed", metadata: [
                        "vigil.vm": "\(name)", "vigil.pid": "\(error.pid ?? 0)", "vigil.reason": "\(error.message)",
                    ])
                }
            } catch {
                // No pidfile or the process is gone: nothing to fence.
            }
        }
        return found
    }

    /// Those of the last /proc scan's QEMUs that still run (same pid, same start time).
    func lastFoundStillRunning() -> [FenceTarget] {
        lastFound.filter { !QEMUProcess.hasEnded(QEMUProcess.Identity(pid: $0.pid, startTime: $0.startTime)) }
    }

    /// How one kill went. `goneAt` is nil when the process outlived the wait.
    struct Outcome {
        var target: FenceTarget
        /// nil: it had ended before the signal (nothing sent).
        var signalledAt: MonotonicInstant?
        var goneAt: MonotonicInstant?
    }

    /// SIGKILLs every target that is still the process the scan found, then waits up to
    /// `confirmWithin` until all are gone (ended or zombies, which hold no guest and no I/O).
    /// A QEMU stuck in uninterruptible I/O outlives the wait; the next scan signals it again.
    func kill(_ targets: [FenceTarget], confirmWithin: Duration) -> [Outcome] {
        var outcomes = targets.map { target -> Outcome in
            let identity = QEMUProcess.Identity(pid: target.pid, startTime: target.startTime)
            guard !QEMUProcess.hasEnded(identity) else {
                return Outcome(target: target, signalledAt: nil, goneAt: MonotonicClock.now())
            }
            Glibc.kill(target.pid, SIGKILL)
            return Outcome(target: target, signalledAt: MonotonicClock.now(), goneAt: nil)
        }
        let giveUp = MonotonicClock.now() + confirmWithin
        while true {
            for i in outcomes.indices where outcomes[i].goneAt == nil {
                let target = outcomes[i].target
                if QEMUProcess.hasEnded(QEMUProcess.Identity(pid: target.pid, startTime: target.startTime)) {
                    outcomes[i].goneAt = MonotonicClock.now()
                }
            }
            if outcomes.allSatisfy({ $0.goneAt != nil }) || MonotonicClock.now() >= giveUp { return outcomes }
            usleep(500)
        }
    }
}

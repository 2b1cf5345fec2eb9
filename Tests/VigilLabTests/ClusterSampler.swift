import Foundation
import Synchronization
import VigilCore
@testable import VigilLab

/// Samples every lab host's QEMU processes every few milliseconds, straight from /proc
/// (a process's host is its network namespace), and feeds an `InvariantChecker`.
final class ClusterSampler: Sendable {
    let lab: Lab
    let origin = ContinuousClock.now
    private let checker = Mutex(InvariantChecker())
    private let stopped = Mutex(false)
    private let latest = Mutex<[VMName: [NodeName]]>([:])
    /// Skip QEMUs started with `-incoming` (a live migration's paused destination runs no guest).
    let ignoreIncoming: Bool

    init(lab: Lab, ignoreIncoming: Bool = false) {
        self.lab = lab; self.ignoreIncoming = ignoreIncoming
    }

    var now: Duration { ContinuousClock.now - origin }

    /// VM → hosts with a live QEMU for it, right now.
    func running() -> [VMName: [NodeName]] {
        var out: [VMName: [NodeName]] = [:]
        for (vm, hosts) in lab.runningQEMUs(skipIncoming: ignoreIncoming) {
            out[VMName(unchecked: vm)] = hosts.map { NodeName(unchecked: $0.name) }
        }
        return out
    }

    /// Start sampling in the background until `stop()`.
    func start(every: Duration = .milliseconds(20)) -> Task<Void, Never> {
        Task.detached(priority: .high) { [self] in
            while !stopped.withLock({ $0 }) {
                let t = now
                let r = running()
                latest.withLock { $0 = r }
                checker.withLock { $0.sample(at: t, running: r) }
                try? await Task.sleep(for: every)
            }
        }
    }

    func stop() { stopped.withLock { $0 = true } }
    var current: [VMName: [NodeName]] { latest.withLock { $0 } }

    func guest(_ vm: VMName, flushed: Int64, startCounter: Int64, restarted: Bool) {
        let t = now
        checker.withLock { $0.guest(vm, at: t, flushed: flushed, startCounter: startCounter, restartedSinceLast: restarted) }
    }

    /// The checks over everything seen so far (sampling goes on); returns every violation.
    func finish(haVMs: [VMName], alive: Set<NodeName>, placements: [VMName: Placement]) -> [InvariantChecker.Violation] {
        let t = now, r = running()
        return checker.withLock { c in
            c.sample(at: t, running: r)
            c.checkFenceBeforeTakeover()
            c.checkNothingDropped(haVMs, at: t, running: r, alive: alive, placements: placements)
            return c.violations
        }
    }

    func stints(_ vm: VMName) -> [InvariantChecker.Stint] { checker.withLock { $0.stints[vm] ?? [] } }
}

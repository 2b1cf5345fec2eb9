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
    /// Network namespace inode → host name.
    let namespaces: [UInt64: NodeName]
    /// Skip QEMUs started with `-incoming` (a live migration's paused destination runs no guest).
    let ignoreIncoming: Bool

    init(lab: Lab, ignoreIncoming: Bool = false) {
        self.lab = lab; self.ignoreIncoming = ignoreIncoming
        var map: [UInt64: NodeName] = [:]
        for h in lab.hosts {
            guard let ns = lab.namespace(h) else { continue }
            var st = stat()
            if stat("/run/netns/" + ns, &st) == 0 { map[UInt64(st.st_ino)] = NodeName(unchecked: h.name) }
        }
        namespaces = map
    }

    var now: Duration { ContinuousClock.now - origin }

    /// VM → hosts with a live QEMU for it, right now.
    func running() -> [VMName: [NodeName]] {
        var out: [VMName: [NodeName]] = [:]
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return out }
        for e in entries {
            guard let pid = Int32(e), let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { continue }
            let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let exe = argv.first, exe.hasSuffix("qemu-system-x86_64"), let i = argv.firstIndex(of: "-name"), i + 1 < argv.count else { continue }
            if ignoreIncoming && argv.contains("-incoming") { continue }
            // A zombie (killed, not yet reaped) no longer runs the guest.
            if let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
               let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { continue }
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(pid)/ns/net"),
                  let ino = UInt64(link.dropFirst(5).dropLast()), let host = namespaces[ino] else { continue }
            out[VMName(unchecked: argv[i + 1]), default: []].append(host)
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

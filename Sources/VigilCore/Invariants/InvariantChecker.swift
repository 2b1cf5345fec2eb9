/// Checks ARCHITECTURE.md's invariants over what a test or the simulator observed.
/// Pure: observations in (with their times), violations out. The lab's sampler feeds it
/// the QEMU processes it finds on every host; the simulator feeds it its model.
public struct InvariantChecker: Sendable {
    public struct Violation: Equatable, Sendable, CustomStringConvertible {
        public var invariant: Int
        public var at: Duration
        public var message: String
        public var description: String { "invariant \(invariant) at \(at): \(message)" }
    }

    /// Where each VM's instance ran, as a list of (host, first seen, last seen).
    public struct Stint: Equatable, Sendable {
        public var node: NodeName
        public var from: Duration
        public var to: Duration
    }

    public private(set) var violations: [Violation] = []
    public private(set) var stints: [VMName: [Stint]] = [:]
    /// Per VM: the highest counter the guest reported as flushed, and when.
    private var flushed: [VMName: Int64] = [:]
    private var lastSample: Duration?

    public init() {}

    /// (1) One instance: at most one running QEMU per VM in every sample.
    public mutating func sample(at t: Duration, running: [VMName: [NodeName]]) {
        // Visit in any order (the simulator samples 500 VMs thousands of times), report in VM order.
        var twice: [VMName] = []
        for (vm, nodes) in running {
            if nodes.count > 1 { twice.append(vm) }
            for n in nodes {
                var list = stints[vm] ?? []
                if let i = list.lastIndex(where: { $0.node == n }), i == list.count - 1 || list[i].to == lastSample {
                    list[i].to = t
                } else {
                    list.append(Stint(node: n, from: t, to: t))
                }
                stints[vm] = list
            }
        }
        for vm in twice.sorted() {
            violations.append(Violation(invariant: 1, at: t, message: "\(vm) runs on \(running[vm]!.sorted().map(\.rawValue).joined(separator: " and ")) at once"))
        }
        lastSample = t
    }

    /// (1) Ownership: a VM's placement epoch never goes back, and a change of owner node
    /// comes with a higher epoch (the epoch is the fencing token).
    public mutating func placementChanged(_ vm: VMName, at t: Duration, from old: Placement?, to new: Placement) {
        guard let old else { return }
        if new.epoch < old.epoch {
            violations.append(Violation(invariant: 1, at: t, message: "\(vm)'s placement epoch went back from \(old.epoch) to \(new.epoch)"))
        } else if new.phase == .placed, new.node != old.node, new.epoch == old.epoch {
            violations.append(Violation(invariant: 1, at: t, message: "\(vm) moved from \(old.node?.rawValue ?? "-") to \(new.node?.rawValue ?? "-") without a new epoch (\(new.epoch))"))
        }
    }

    /// (2) Fence before takeover, at its root: when a node's lease expires at etcd — from
    /// that moment its VMs may be restarted elsewhere — no VM it ran under that lease may
    /// still be running. `stillRunning`: those VMs, with when each died (nil: still alive).
    public mutating func leaseExpired(node: NodeName, at t: Duration, stillRunning: [(VMName, diedAt: Duration?)]) {
        for (vm, died) in stillRunning.sorted(by: { $0.0 < $1.0 }) where died.map({ $0 > t }) ?? true {
            let when = died.map { "until \($0)" } ?? "on"
            violations.append(Violation(invariant: 2, at: t, message: "\(node)'s lease expired at etcd at \(t) while \(vm) still ran there (\(when)): it was not fenced by its deadline"))
        }
    }

    /// (3) No lost acknowledged write: a guest's start counter (where it resumed after a
    /// restart) is never below a counter it earlier reported flushed.
    public mutating func guest(_ vm: VMName, at t: Duration, flushed f: Int64, startCounter: Int64, restartedSinceLast: Bool) {
        if restartedSinceLast, let before = flushed[vm], startCounter < before {
            violations.append(Violation(invariant: 3, at: t, message: "\(vm) lost acknowledged writes: flushed \(before) before, restarted from \(startCounter)"))
        }
        flushed[vm] = max(flushed[vm] ?? 0, f)
    }

    /// (2) Fence before takeover: every move of a VM to another node started after the
    /// last sample that saw it on the old node.
    public mutating func checkFenceBeforeTakeover() {
        for (vm, list) in stints.sorted(by: { $0.key < $1.key }) {
            for (a, b) in zip(list, list.dropFirst()) where a.node != b.node && b.from <= a.to {
                violations.append(Violation(invariant: 2, at: b.from, message: "\(vm) started on \(b.node) at \(b.from) while still seen on \(a.node) until \(a.to)"))
            }
        }
    }

    /// (4) Nothing silently dropped: each of `vms` runs on a live node at the end, or is
    /// pending with a reason, or was marked failed by the failover policy with an event.
    /// `failedWithEvent`: VMs the failover policy gave up on, with a `vm.failed` event in
    /// the log; a `failed` placement counts as visible only for these.
    public mutating func checkNothingDropped(_ vms: [VMName], at t: Duration, running: [VMName: [NodeName]], alive: Set<NodeName>,
                                             placements: [VMName: Placement]) {
        checkNothingDropped(vms, at: t, running: running, alive: alive, placements: placements, failedWithEvent: [])
    }

    public mutating func checkNothingDropped(_ vms: [VMName], at t: Duration, running: [VMName: [NodeName]], alive: Set<NodeName>,
                                             placements: [VMName: Placement], failedWithEvent: Set<VMName>) {
        for vm in vms.sorted() {
            let live = (running[vm] ?? []).filter(alive.contains)
            if live.count == 1 { continue }
            if let p = placements[vm], p.phase == .pending, let r = p.reason, !r.isEmpty { continue }
            if let p = placements[vm], p.phase == .failed, p.reason != nil, failedWithEvent.contains(vm) { continue }
            violations.append(Violation(invariant: 4, at: t, message: "\(vm) neither runs on a live node (\(live)) nor is pending with a reason (placement: \(placements[vm].map { "\($0.phase) on \($0.node?.rawValue ?? "-")" } ?? "none"))"))
        }
    }
}

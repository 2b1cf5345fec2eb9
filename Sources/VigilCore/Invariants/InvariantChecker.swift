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
        for (vm, nodes) in running.sorted(by: { $0.key < $1.key }) {
            if nodes.count > 1 {
                violations.append(Violation(invariant: 1, at: t, message: "\(vm) runs on \(nodes.sorted().map(\.rawValue).joined(separator: " and ")) at once"))
            }
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
        lastSample = t
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
    /// pending with a reason.
    public mutating func checkNothingDropped(_ vms: [VMName], at t: Duration, running: [VMName: [NodeName]], alive: Set<NodeName>,
                                             placements: [VMName: Placement]) {
        for vm in vms.sorted() {
            let live = (running[vm] ?? []).filter(alive.contains)
            if live.count == 1 { continue }
            if let p = placements[vm], p.phase == .pending, let r = p.reason, !r.isEmpty { continue }
            violations.append(Violation(invariant: 4, at: t, message: "\(vm) neither runs on a live node (\(live)) nor is pending with a reason (placement: \(placements[vm].map { "\($0.phase) on \($0.node?.rawValue ?? "-")" } ?? "none"))"))
        }
    }
}

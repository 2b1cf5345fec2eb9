/// Failover and failback on the leader.
///
/// A VM placed on a node whose `alive` key is gone is restarted elsewhere. Taking it
/// over at once is safe because of fencing: the lost node killed its QEMUs by its fence
/// deadline, which falls strictly before its lease could expire at etcd (see
/// ARCHITECTURE.md, "Fence arithmetic"), and the alive key only disappears when the
/// lease expires (or the node revoked it after stopping its VMs).
///
/// Each takeover is a compare-and-swap on the placement that increments the epoch, so
/// a leader that dies midway leaves every VM either still on the lost node (the next
/// leader fails it over) or already moved: nothing to undo, nothing done twice.
extension ClusterController {
    /// The write (if any) that moves a VM placed on `vm.placement.node`: away from a
    /// lost node (failover), or back home (failback).
    mutating func failoverOrFailback(_ vm: VMRecord, nodes: [PlacementPlanner.NodeView],
                                     used: [NodeName: (cpus: Int, memoryMiB: Int, groups: Set<String>)]) -> Effect? {
        guard let p = vm.placement, let owner = p.node else { return nil }
        if alive.contains(owner) {
            waitingNoted.remove(vm.spec.name)
            return failback(vm, p, owner: owner, nodes: nodes, used: used)
        }
        return failover(vm, p, lost: owner, nodes: nodes, used: used)
    }

    private mutating func failover(_ vm: VMRecord, _ p: Placement, lost: NodeName, nodes: [PlacementPlanner.NodeView],
                                   used: [NodeName: (cpus: Int, memoryMiB: Int, groups: Set<String>)]) -> Effect? {
        let spec = vm.spec
        guard spec.haPriority != .off else {
            // Not an HA VM: it waits for its node (which fenced it) to come back.
            guard waitingNoted.insert(spec.name).inserted else { return nil }
            return .record(ClusterEvent(kind: .vmWaiting, severity: .warning, reporter: me, node: lost, vm: spec.name.rawValue,
                                        message: "\(spec.name) is not restarted elsewhere: its HA priority is off; it waits for \(lost) to return"))
        }
        let recent = recentFailovers(p)
        if recent.count >= settings.maxFailovers {
            let why = "failed over \(recent.count) times within \(Self.describe(settings.failoverPeriod)) (limit \(settings.maxFailovers)); not restarted again — start it by hand once the cause is fixed"
            return .writePlacement(spec.name, Placement(node: lost, epoch: p.epoch, phase: .failed, reason: why, home: p.home, failovers: recent),
                                   expectedRevision: vm.placementRevision,
                                   event: ClusterEvent(kind: .vmFailed, severity: .error, reporter: me, node: lost, vm: spec.name.rawValue,
                                                       message: "\(spec.name) marked failed: \(why)"))
        }
        let stamps = recent + [wallMillis]
        let home = p.home ?? lost
        switch PlacementPlanner.choose(spec, nodes: nodes, used: used) {
        case let .node(target):
            let new = Placement(node: target, epoch: p.epoch + 1, phase: .placed, home: home, failovers: stamps)
            return .writePlacement(spec.name, new, expectedRevision: vm.placementRevision,
                                   event: ClusterEvent(kind: .vmFailover, severity: .warning, reporter: me, node: target, vm: spec.name.rawValue,
                                                       message: "\(spec.name) fails over from \(lost) (lost) to \(target) (epoch \(new.epoch), HA priority \(spec.haPriority.rawValue), failover \(stamps.count) of \(settings.maxFailovers) in \(Self.describe(settings.failoverPeriod)))"))
        case let .nowhere(reason):
            let why = "its node \(lost) was lost and \(reason)"
            return .writePlacement(spec.name, Placement(node: lost, epoch: p.epoch, phase: .pending, reason: why, home: home, failovers: stamps),
                                   expectedRevision: vm.placementRevision,
                                   event: ClusterEvent(kind: .vmPending, severity: .warning, reporter: me, node: lost, vm: spec.name.rawValue,
                                                       message: "\(spec.name) pending: \(why); it is placed as soon as room appears"))
        }
    }

    /// Back to the home node once it has been up for the failback delay and has room.
    private func failback(_ vm: VMRecord, _ p: Placement, owner: NodeName, nodes: [PlacementPlanner.NodeView],
                          used: [NodeName: (cpus: Int, memoryMiB: Int, groups: Set<String>)]) -> Effect? {
        // Only once the owner reports it running at this epoch: a node that just rejoined
        // starts its VMs one by one from one read, and the home node starts as soon as
        // the owner's report stops saying it runs (HostReconciler) — an owner with a start
        // still on its way has said nothing yet.
        guard vm.spec.failback == true, let home = p.home, home != owner,
              let rt = vm.runtime, rt.node == owner, rt.epoch == p.epoch, rt.state == .running,
              let view = nodes.first(where: { $0.name == home }), view.eligible,
              let since = joinedAt[home], now - since >= settings.failbackDelay,
              case .node = PlacementPlanner.choose(vm.spec, nodes: [view], used: used)
        else { return nil }
        let new = Placement(node: home, epoch: p.epoch + 1, phase: .placed, home: nil, failovers: p.failovers)
        return .writePlacement(vm.spec.name, new, expectedRevision: vm.placementRevision,
                               event: ClusterEvent(kind: .vmFailback, severity: .info, reporter: me, node: home, vm: vm.spec.name.rawValue,
                                                   message: "\(vm.spec.name) fails back from \(owner) to its home \(home) (epoch \(new.epoch)), up for \(Self.describe(now - since)); restarted there"))
    }

    /// Failover stamps still inside the policy's period.
    func recentFailovers(_ p: Placement) -> [Int64] {
        let periodMs = settings.failoverPeriod.components.seconds * 1000
        return (p.failovers ?? []).filter { wallMillis - $0 < periodMs }
    }

    static func describe(_ d: Duration) -> String {
        let s = d.components.seconds
        if s >= 3600 && s % 3600 == 0 { return "\(s / 3600) h" }
        if s >= 60 && s % 60 == 0 { return "\(s / 60) min" }
        return "\(d)"
    }
}

extension EventKind {
    public static let vmFailover = EventKind(rawValue: "vm.failover")
    public static let vmFailback = EventKind(rawValue: "vm.failback")
    public static let vmFailed = EventKind(rawValue: "vm.failed")
    public static let vmWaiting = EventKind(rawValue: "vm.waiting")
    public static let vmFenced = EventKind(rawValue: "vm.fenced")
}

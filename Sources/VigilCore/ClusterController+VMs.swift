/// VM placement on the leader: start what should run, release what stopped.
extension ClusterController {
    var nodeViews: [PlacementPlanner.NodeView] {
        registered.values.map { r in
            PlacementPlanner.NodeView(name: r.name, capacity: r.capacity, eligible: alive.contains(r.name) && r.adminState == .active)
        }
    }

    /// Decide placement writes for the current snapshot. Highest HA priority first, so
    /// when room is short the important VMs get it.
    mutating func reconcileVMs() -> [Effect] {
        guard !registered.isEmpty else { return [] }
        var placements = vms.compactMapValues(\.placement)
        var used = PlacementPlanner.usage(of: vms.values.map(\.spec), placements: placements)
        let nodes = nodeViews
        var effects: [Effect] = []
        let order = vms.values.sorted { ($0.spec.haPriority, $0.spec.name) < ($1.spec.haPriority, $1.spec.name) }
        for vm in order {
            let spec = vm.spec, p = vm.placement
            let epoch = p?.epoch ?? 0
            switch (spec.power, p?.phase) {
            case (.running, nil), (.running, .stopped?), (.running, .pending?):
                switch PlacementPlanner.choose(spec, nodes: nodes, used: used, previous: p?.node) {
                case let .node(n):
                    let new = Placement(node: n, epoch: epoch + 1, phase: .placed,
                                        home: p?.home, failovers: p?.failovers)
                    placements[spec.name] = new
                    used = PlacementPlanner.usage(of: vms.values.map(\.spec), placements: placements)
                    effects.append(.writePlacement(spec.name, new, expectedRevision: vm.placementRevision,
                                                   event: ClusterEvent(kind: .vmPlaced, severity: .info, reporter: me, node: n, vm: spec.name.rawValue,
                                                                       message: "\(spec.name) placed on \(n) (epoch \(epoch + 1)): \(spec.cpus) CPUs, \(spec.memoryMiB) MiB")))
                case let .nowhere(reason):
                    if p?.phase != .pending || p?.reason != reason {
                        effects.append(.writePlacement(spec.name, Placement(node: p?.node, epoch: epoch, phase: .pending, reason: reason,
                                                                            home: p?.home, failovers: p?.failovers),
                                                       expectedRevision: vm.placementRevision,
                                                       event: ClusterEvent(kind: .vmPending, severity: .warning, reporter: me, vm: spec.name.rawValue,
                                                                           message: "\(spec.name) pending: \(reason)")))
                    }
                }
            case (.stopped, .placed?):
                // Release the place only once the owner says its QEMU is down (or the owner is gone).
                let ownerAlive = p?.node.map { alive.contains($0) } ?? false
                let stoppedThere = vm.runtime.map { $0.node == p?.node && ($0.state == .stopped) } ?? false
                if stoppedThere || !ownerAlive {
                    effects.append(.writePlacement(spec.name, Placement(node: p?.node, epoch: epoch, phase: .stopped),
                                                   expectedRevision: vm.placementRevision,
                                                   event: ClusterEvent(kind: .vmStopped, severity: .info, reporter: me, node: p?.node, vm: spec.name.rawValue,
                                                                       message: "\(spec.name) stopped\(ownerAlive ? "" : " (its node is down)")")))
                }
            case (.stopped, .pending?), (.stopped, nil), (.stopped, .failed?):
                effects.append(.writePlacement(spec.name, Placement(node: p?.node, epoch: epoch, phase: .stopped),
                                               expectedRevision: vm.placementRevision, event: nil))
            case (.running, .placed?):
                if let e = failoverOrFailback(vm, nodes: nodes, used: used) {
                    if case let .writePlacement(_, new, _, _) = e { placements[spec.name] = new }
                    used = PlacementPlanner.usage(of: vms.values.map(\.spec), placements: placements)
                    effects.append(e)
                }
            case (.running, .failed?), (.stopped, .stopped?):
                break
            }
        }
        return effects
    }
}

extension EventKind {
    public static let vmCreated = EventKind(rawValue: "vm.created")
    public static let vmDeleted = EventKind(rawValue: "vm.deleted")
    public static let vmPlaced = EventKind(rawValue: "vm.placed")
    public static let vmPending = EventKind(rawValue: "vm.pending")
    public static let vmStarted = EventKind(rawValue: "vm.started")
    public static let vmStopped = EventKind(rawValue: "vm.stopped")
    public static let vmCrashed = EventKind(rawValue: "vm.crashed")
    public static let vmRestarted = EventKind(rawValue: "vm.restarted")
    public static let vmAdopted = EventKind(rawValue: "vm.adopted")
}

/// Whether a VM may be live-migrated, and where to. Pure: a snapshot in, a decision out.
/// The API asks it before writing a request (so bad input changes nothing), and the
/// leader asks it again when it admits the request (the cluster may have changed).
public enum MigrationPlanner {
    /// What the planner looks at.
    public struct Cluster: Sendable {
        public var nodes: [NodeName: NodeRecord]
        public var alive: Set<NodeName>
        public var vms: [VMName: VMRecord]
        /// Migrations not final, by VM: their destinations hold the VM's room.
        public var migrations: [VMName: MigrationRecord]
        public init(nodes: [NodeName: NodeRecord], alive: Set<NodeName>, vms: [VMName: VMRecord], migrations: [VMName: MigrationRecord]) {
            self.nodes = nodes; self.alive = alive; self.vms = vms; self.migrations = migrations
        }
    }

    public enum Decision: Equatable, Sendable {
        case migrate(from: NodeName, to: NodeName)
        case refused(String)
    }

    /// Resources in use per node: placed VMs, plus the VMs migrating to it (held on both ends).
    public static func usage(_ c: Cluster) -> [NodeName: (cpus: Int, memoryMiB: Int, groups: Set<String>)] {
        var used = PlacementPlanner.usage(of: c.vms.values.map(\.spec), placements: c.vms.compactMapValues(\.placement))
        for (vm, m) in c.migrations where !m.phase.isFinal {
            guard let spec = c.vms[vm]?.spec else { continue }
            var u = used[m.destination] ?? (0, 0, [])
            u.cpus += spec.cpus; u.memoryMiB += spec.memoryMiB
            if let g = spec.antiAffinityGroup { u.groups.insert(g) }
            used[m.destination] = u
        }
        return used
    }

    /// May `vm` move now, and where to (`to`, or the planner's choice when nil)?
    /// `ignoring` is a migration the caller is deciding about (not counted against room).
    public static func decide(_ vm: VMName, to: NodeName?, in c: Cluster, ignoring: VMName? = nil) -> Decision {
        guard let r = c.vms[vm] else { return .refused("no VM named '\(vm)'") }
        if let m = c.migrations[vm], !m.phase.isFinal, vm != ignoring {
            return .refused("\(vm) is already migrating from \(m.source) to \(m.destination) (\(m.phase.rawValue)); cancel it first with 'vigil vm migrate \(vm) --cancel'")
        }
        guard r.spec.power == .running, let p = r.placement, p.phase == .placed, let source = p.node else {
            return .refused("\(vm) is not running (state \(VMInfo(spec: r.spec, placement: r.placement, runtime: r.runtime).state)); only a running VM can be live-migrated")
        }
        guard let rt = r.runtime, rt.node == source, rt.state == .running else {
            return .refused("\(vm) is not running on \(source) yet (runtime: \(r.runtime.map { "\($0.state.rawValue) on \($0.node)" } ?? "none")); try again when it runs")
        }
        guard c.alive.contains(source) else { return .refused("\(vm)'s node \(source) is down; HA failover handles it, not migration") }
        var others = c
        if let ignoring { others.migrations[ignoring] = nil }
        var used = usage(others)
        // The VM itself does not count where it runs now.
        let views = c.nodes.values.map { n in
            PlacementPlanner.NodeView(name: n.name, capacity: n.capacity, eligible: c.alive.contains(n.name) && n.adminState == .active && n.name != source)
        }
        if let to {
            guard let node = c.nodes[to] else {
                return .refused("unknown node '\(to)'; known: \(c.nodes.keys.sorted().map(\.rawValue).joined(separator: ", "))")
            }
            if to == source { return .refused("\(vm) already runs on \(to); choose another node") }
            if !c.alive.contains(to) { return .refused("node \(to) is down") }
            if node.adminState == .paused { return .refused("node \(to) is paused (no new VMs); 'vigil node resume \(to)' first") }
            let u = used[to] ?? (0, 0, [])
            let freeCPU = node.capacity.cpus - u.cpus, freeMem = node.capacity.memoryMiB - u.memoryMiB
            if let g = r.spec.antiAffinityGroup, u.groups.contains(g) {
                return .refused("node \(to) already runs a VM of anti-affinity group '\(g)'")
            }
            if freeCPU < r.spec.cpus || freeMem < r.spec.memoryMiB {
                return .refused("node \(to) has no room for \(vm): it needs \(r.spec.cpus) CPUs and \(r.spec.memoryMiB) MiB, \(to) has \(freeCPU) CPUs and \(freeMem) MiB free")
            }
            return .migrate(from: source, to: to)
        }
        // Anti-affinity: the VM's own group membership on the source does not block other nodes.
        used[source] = nil
        switch PlacementPlanner.choose(r.spec, nodes: views, used: used) {
        case let .node(n): return .migrate(from: source, to: n)
        case let .nowhere(reason): return .refused("no node can take \(vm): \(reason)")
        }
    }

    /// Where each running VM of `node` would go if it were drained, one after the other
    /// (each move holds room for the next decision); what cannot move says why.
    public static func drain(_ node: NodeName, in c: Cluster) -> DrainPlan {
        var c = c
        var moves: [DrainPlan.Move] = [], stays: [DrainPlan.Stay] = []
        // Largest first: they are the hardest to fit.
        let here = c.vms.values.filter { $0.placement?.node == node && $0.placement?.phase == .placed && $0.spec.power == .running }
            .sorted { ($0.spec.memoryMiB, $0.spec.cpus, $1.spec.name) > ($1.spec.memoryMiB, $1.spec.cpus, $0.spec.name) }
        for r in here {
            if let m = c.migrations[r.spec.name], !m.phase.isFinal, m.source == node {
                moves.append(.init(vm: r.spec.name, to: m.destination)); continue
            }
            switch decide(r.spec.name, to: nil, in: c) {
            case let .migrate(_, to):
                moves.append(.init(vm: r.spec.name, to: to))
                c.migrations[r.spec.name] = MigrationRecord(id: "plan", vm: r.spec.name, source: node, destination: to, sourceEpoch: 0, phase: .preparing)
            case let .refused(why):
                stays.append(.init(vm: r.spec.name, reason: why))
            }
        }
        return DrainPlan(node: node, moves: moves.sorted { $0.vm < $1.vm }, stays: stays.sorted { $0.vm < $1.vm })
    }
}

/// Decides where VMs run: fits CPUs and memory, spreads load, honours anti-affinity
/// groups and a preferred node. Pure: a snapshot in, decisions out.
public enum PlacementPlanner {
    /// A node as the planner sees it.
    public struct NodeView: Equatable, Sendable {
        public var name: NodeName
        public var capacity: Capacity
        /// Alive and not paused: may take new VMs.
        public var eligible: Bool
        public init(name: NodeName, capacity: Capacity, eligible: Bool) {
            self.name = name; self.capacity = capacity; self.eligible = eligible
        }
    }

    /// Where a VM should go, or why it cannot go anywhere.
    public enum Choice: Equatable, Sendable {
        case node(NodeName)
        case nowhere(reason: String)
    }

    /// Resources in use on each node by the VMs that hold a place there.
    public static func usage(of vms: [VMSpec], placements: [VMName: Placement]) -> [NodeName: (cpus: Int, memoryMiB: Int, groups: Set<String>)] {
        var used: [NodeName: (cpus: Int, memoryMiB: Int, groups: Set<String>)] = [:]
        for vm in vms {
            guard let p = placements[vm.name], p.phase == .placed, let n = p.node else { continue }
            var u = used[n] ?? (0, 0, [])
            u.cpus += vm.cpus
            u.memoryMiB += vm.memoryMiB
            if let g = vm.antiAffinityGroup { u.groups.insert(g) }
            used[n] = u
        }
        return used
    }

    /// Choose a node for `vm` given what is already used. Spreads by the memory share a
    /// node would have after taking the VM (then CPU share, then name, so it is deterministic).
    public static func choose(_ vm: VMSpec, nodes: [NodeView], used: [NodeName: (cpus: Int, memoryMiB: Int, groups: Set<String>)],
                              previous: NodeName? = nil) -> Choice {
        let eligible = nodes.filter(\.eligible)
        if eligible.isEmpty { return .nowhere(reason: "no node is up and accepting VMs") }
        var why: [String] = []
        var fits: [(NodeView, Double, Double)] = []
        for n in eligible.sorted(by: { $0.name < $1.name }) {
            let u = used[n.name] ?? (0, 0, [])
            let freeCPU = n.capacity.cpus - u.cpus, freeMem = n.capacity.memoryMiB - u.memoryMiB
            if let g = vm.antiAffinityGroup, u.groups.contains(g) {
                why.append("\(n.name): already runs a VM of anti-affinity group '\(g)'"); continue
            }
            if freeCPU < vm.cpus || freeMem < vm.memoryMiB {
                why.append("\(n.name): \(freeCPU) CPUs and \(freeMem) MiB free"); continue
            }
            let memShare = Double(u.memoryMiB + vm.memoryMiB) / Double(max(n.capacity.memoryMiB, 1))
            let cpuShare = Double(u.cpus + vm.cpus) / Double(max(n.capacity.cpus, 1))
            fits.append((n, memShare, cpuShare))
        }
        guard !fits.isEmpty else {
            return .nowhere(reason: "no node has room for \(vm.cpus) CPUs and \(vm.memoryMiB) MiB (\(why.joined(separator: "; ")))")
        }
        for wanted in [vm.preferredNode, previous].compactMap({ $0 }) where fits.contains(where: { $0.0.name == wanted }) {
            return .node(wanted)
        }
        let best = fits.min { a, b in (a.1, a.2) < (b.1, b.2) }!
        return .node(best.0.name)
    }
}

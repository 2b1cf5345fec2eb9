import Testing
@testable import VigilCore

struct PlacementTests {
    let n1 = NodeName(unchecked: "n1"), n2 = NodeName(unchecked: "n2"), n3 = NodeName(unchecked: "n3")

    func node(_ n: NodeName, cpus: Int = 4, mem: Int = 2048, eligible: Bool = true) -> PlacementPlanner.NodeView {
        .init(name: n, capacity: Capacity(cpus: cpus, memoryMiB: mem), eligible: eligible)
    }
    func vm(_ name: String, cpus: Int = 1, mem: Int = 256, group: String? = nil, node: NodeName? = nil,
            power: PowerState = .running, prio: HAPriority = .medium) -> VMSpec {
        VMSpec(name: VMName(unchecked: name), cpus: cpus, memoryMiB: mem, disks: [], haPriority: prio, antiAffinityGroup: group,
               preferredNode: node, power: power, mac: "52:54:00:00:00:01")
    }
    func record(_ s: VMSpec, _ p: Placement? = nil, rev: Int64 = 1, runtime: VMRuntime? = nil) -> VMRecord {
        VMRecord(spec: s, placement: p, placementRevision: rev, runtime: runtime)
    }
    func controller(alive: Set<NodeName>, caps: [NodeName: Capacity]) -> ClusterController {
        var c = ClusterController(me: n1)
        let registered = Dictionary(uniqueKeysWithValues: caps.map { ($0.key, NodeRecord(name: $0.key, clusterAddress: "x", apiPort: 1, networks: [], capacity: $0.value)) })
        _ = c.handle(.becameLeader(registered: registered, alive: alive, now: .zero))
        return c
    }
    func placements(_ effects: [ClusterController.Effect]) -> [String: Placement] {
        var out: [String: Placement] = [:]
        for case let .writePlacement(vm, p, _, _) in effects { out[vm.rawValue] = p }
        return out
    }

    @Test func spreadsByMemoryShare() {
        let used: [NodeName: (cpus: Int, memoryMiB: Int, groups: Set<String>)] = [n1: (1, 1024, []), n2: (1, 256, [])]
        #expect(PlacementPlanner.choose(vm("a"), nodes: [node(n1), node(n2), node(n3)], used: used) == .node(n3))
        #expect(PlacementPlanner.choose(vm("a"), nodes: [node(n1), node(n2)], used: used) == .node(n2))
    }

    @Test func honoursCapacityAntiAffinityAndPreference() {
        let used: [NodeName: (cpus: Int, memoryMiB: Int, groups: Set<String>)] = [n1: (0, 0, ["web"]), n2: (4, 0, [])]
        // n1 has the group, n2 has no CPUs left: n3.
        #expect(PlacementPlanner.choose(vm("a", group: "web"), nodes: [node(n1), node(n2), node(n3)], used: used) == .node(n3))
        // Preferred node wins when it fits, even if busier.
        #expect(PlacementPlanner.choose(vm("b", node: n1), nodes: [node(n1), node(n3)], used: [n1: (2, 1000, [])]) == .node(n1))
        // Ineligible (down or paused) nodes never get VMs.
        #expect(PlacementPlanner.choose(vm("c"), nodes: [node(n1, eligible: false), node(n2)], used: [:]) == .node(n2))
    }

    @Test func aVMLargerThanAnyNodeIsPendingWithAReason() {
        guard case let .nowhere(reason) = PlacementPlanner.choose(vm("big", cpus: 64, mem: 65536), nodes: [node(n1), node(n2)], used: [:]) else {
            Issue.record("placed a VM larger than any node"); return
        }
        #expect(reason.contains("64 CPUs") && reason.contains("n1: 4 CPUs and 2048 MiB free"))
    }

    @Test func controllerPlacesWhatShouldRunAndMarksTheRestPending() {
        var c = controller(alive: [n1, n2], caps: [n1: Capacity(cpus: 2, memoryMiB: 1024), n2: Capacity(cpus: 2, memoryMiB: 1024)])
        let vms = [vm("a", mem: 512), vm("b", mem: 512), vm("c", mem: 512), vm("d", mem: 512), vm("e", mem: 512, prio: .high)]
        let effects = c.handle(.vmsChanged(Dictionary(uniqueKeysWithValues: vms.map { ($0.name, record($0, Placement(node: nil, epoch: 0, phase: .stopped))) })))
        let p = placements(effects)
        // Room for four 512 MiB VMs: the high-priority one is placed first, one medium VM waits.
        #expect(p["e"]?.phase == .placed)
        #expect(p.values.filter { $0.phase == .placed }.count == 4)
        #expect(p["d"]?.phase == .pending && p["d"]?.reason?.contains("no node has room") == true)
        #expect(p.values.filter { $0.phase == .placed }.allSatisfy { $0.epoch == 1 })
        // Each node got two: spread, within capacity.
        let perNode = Dictionary(grouping: p.values.compactMap { $0.phase == .placed ? $0.node : nil }, by: { $0 }).mapValues(\.count)
        #expect(perNode == [n1: 2, n2: 2])
    }

    @Test func pendingVMIsPlacedWhenRoomAppears() {
        var c = controller(alive: [n1], caps: [n1: Capacity(cpus: 1, memoryMiB: 512), n2: Capacity(cpus: 4, memoryMiB: 4096)])
        let big = vm("big", cpus: 2, mem: 1024)
        let pending = Placement(node: nil, epoch: 0, phase: .pending, reason: "no node has room for 2 CPUs and 1024 MiB (n1: 1 CPUs and 512 MiB free)")
        #expect(placements(c.handle(.vmsChanged([big.name: record(big, pending)]))).isEmpty, "same reason: no rewrite")
        let effects = c.handle(.aliveChanged([n1, n2]))
        #expect(placements(effects)["big"] == Placement(node: n2, epoch: 1, phase: .placed))
    }

    @Test func stopReleasesThePlaceOnlyAfterTheOwnerReportsStopped() {
        var c = controller(alive: [n1, n2], caps: [n1: Capacity(cpus: 2, memoryMiB: 1024), n2: Capacity(cpus: 2, memoryMiB: 1024)])
        let a = vm("a", power: .stopped)
        let placed = Placement(node: n2, epoch: 3, phase: .placed)
        let running = VMRuntime(node: n2, epoch: 3, state: .running, pid: 42, accel: "tcg", restarts: 0)
        #expect(placements(c.handle(.vmsChanged([a.name: record(a, placed, runtime: running)]))).isEmpty)
        var stopped = running; stopped.state = .stopped
        #expect(placements(c.handle(.vmsChanged([a.name: record(a, placed, runtime: stopped)])))["a"] == Placement(node: n2, epoch: 3, phase: .stopped))
    }

    @Test func restartPrefersThePreviousNodeAndBumpsTheEpoch() {
        var c = controller(alive: [n1, n2], caps: [n1: Capacity(cpus: 2, memoryMiB: 1024), n2: Capacity(cpus: 2, memoryMiB: 1024)])
        let a = vm("a")
        let p = placements(c.handle(.vmsChanged([a.name: record(a, Placement(node: n2, epoch: 3, phase: .stopped))])))
        #expect(p["a"] == Placement(node: n2, epoch: 4, phase: .placed))
    }
}

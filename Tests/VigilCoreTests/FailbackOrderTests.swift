import Testing
@testable import VigilCore

/// Failback moves a VM between two live nodes: the leader writes the placement to the
/// home node with a new epoch while the VM still runs on its current owner. The home
/// node must not start its QEMU until the owner has stopped its own, or both run at
/// once and write the same disks (found by the simulator, seed 1).
struct FailbackOrderTests {
    let home = NodeName(unchecked: "n1"), owner = NodeName(unchecked: "n2")
    let vm = VMName(unchecked: "a")

    func record(runtime: VMRuntime?) -> [VMName: VMRecord] {
        let spec = VMSpec(name: vm, cpus: 1, memoryMiB: 128, disks: [], power: .running, mac: "52:54:00:00:00:01", failback: true)
        return [vm: VMRecord(spec: spec, placement: Placement(node: home, epoch: 3, phase: .placed), placementRevision: 9, runtime: runtime)]
    }

    func starts(_ actions: [HostReconciler.Action]) -> Int {
        actions.filter { if case .start = $0 { true } else { false } }.count
    }

    @Test func theNewOwnerWaitsUntilTheOldOwnerReportsItsQEMUStopped() {
        var r = HostReconciler(me: home, accel: "tcg")
        let stillThere = VMRuntime(node: owner, epoch: 2, state: .running, pid: 7, accel: "tcg", restarts: 0)
        #expect(starts(r.handle(.snapshot(record(runtime: stillThere), now: .zero))) == 0,
                "the old owner still runs epoch 2: starting epoch 3 now would run the VM twice")
        var stopped = stillThere
        stopped.state = .stopped; stopped.pid = nil
        #expect(starts(r.handle(.snapshot(record(runtime: stopped), now: .seconds(1)))) == 1)
    }

    @Test func aReportThatIsGoneOrOwnDoesNotHoldTheStart() {
        // The old owner's lease expired (its reports went with it), or the report is this node's own.
        var r = HostReconciler(me: home, accel: "tcg")
        #expect(starts(r.handle(.snapshot(record(runtime: nil), now: .zero))) == 1)
        var s = HostReconciler(me: home, accel: "tcg")
        let mine = VMRuntime(node: home, epoch: 2, state: .running, pid: 7, accel: "tcg", restarts: 0)
        #expect(starts(s.handle(.snapshot(record(runtime: mine), now: .zero))) == 1)
    }
}

/// The leader's side of the same race: a node that just rejoined starts its VMs one by
/// one from one read of the store; a failback decided before it reported a VM would have
/// the home node start it while the old owner's own start is still on its way
/// (simulator seed 4, step 2219: vm498 on n7 and n16).
struct FailbackDecisionTests {
    let home = NodeName(unchecked: "n1"), owner = NodeName(unchecked: "n2")

    func controller(runtime: VMRuntime?) -> (ClusterController, [ClusterController.Effect]) {
        var c = ClusterController(me: owner)
        let registered = Dictionary(uniqueKeysWithValues: [home, owner].map {
            ($0, NodeRecord(name: $0, clusterAddress: "x", apiPort: 1, networks: [], capacity: Capacity(cpus: 8, memoryMiB: 4096)))
        })
        let spec = VMSpec(name: VMName(unchecked: "a"), cpus: 1, memoryMiB: 256, disks: [], power: .running, mac: "52:54:00:00:00:01", failback: true)
        let p = Placement(node: owner, epoch: 3, phase: .placed, home: home, failovers: [1])
        _ = c.handle(.vmsChanged([spec.name: VMRecord(spec: spec, placement: p, placementRevision: 5, runtime: runtime)]))
        _ = c.handle(.becameLeader(registered: registered, alive: [home, owner], now: .zero, wallMillis: 2))
        return (c, c.handle(.tick(now: .seconds(60), wallMillis: 3)))
    }

    func failsBack(_ effects: [ClusterController.Effect]) -> Bool {
        effects.contains { if case let .writePlacement(_, p, _, _) = $0 { p.node == home } else { false } }
    }

    @Test func noFailbackUntilTheOwnerReportsTheVMRunningAtItsEpoch() {
        #expect(!failsBack(controller(runtime: nil).1), "no report yet: the owner may still be starting it")
        let starting = VMRuntime(node: owner, epoch: 3, state: .starting, pid: nil, accel: "tcg", restarts: 0)
        #expect(!failsBack(controller(runtime: starting).1))
        var running = starting
        running.state = .running; running.pid = 9
        #expect(failsBack(controller(runtime: running).1))
    }
}

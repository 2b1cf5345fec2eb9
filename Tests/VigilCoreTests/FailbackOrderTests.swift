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

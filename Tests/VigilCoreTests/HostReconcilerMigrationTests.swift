import Testing
@testable import VigilCore

/// The host reconciler's part in live migration: the incoming QEMU is the VM's process on
/// the destination, and the source's kill after the switch leaves the new owner's runtime key alone.
struct HostReconcilerMigrationTests {
    let me = NodeName(unchecked: "n1"), other = NodeName(unchecked: "n2")
    let vm = VMName(unchecked: "a")

    func snapshot(node: NodeName, epoch: Int64, runtime: VMRuntime? = nil) -> [VMName: VMRecord] {
        [vm: VMRecord(spec: VMSpec(name: vm, cpus: 1, memoryMiB: 128, disks: [], power: .running, mac: "52:54:00:00:00:01"),
                      placement: Placement(node: node, epoch: epoch, phase: .placed), placementRevision: 1, runtime: runtime)]
    }

    @Test func migratedInQEMUIsAdoptedNotStartedAgain() {
        var r = HostReconciler(me: me, accel: "tcg")
        let actions = r.handle(.migratedIn(vm, pid: 77, epoch: 2, now: .zero))
        #expect(actions == [.report(vm, VMRuntime(node: me, epoch: 2, state: .running, pid: 77, accel: "tcg", restarts: 0))])
        #expect(r.handle(.snapshot(snapshot(node: me, epoch: 2), now: .seconds(1))).allSatisfy { if case .start = $0 { false } else { true } })
        #expect(r.runningHere == [vm])
    }

    @Test func sourceKillAfterTheSwitchWritesNoRuntimeReport() {
        var r = HostReconciler(me: me, accel: "tcg")
        _ = r.handle(.snapshot(snapshot(node: me, epoch: 1), now: .zero))
        _ = r.handle(.started(vm, pid: 42, epoch: 1, adopted: false, now: .zero))
        // The switch wrote n2's runtime report with the placement.
        let theirs = VMRuntime(node: other, epoch: 2, state: .running, pid: 7, accel: "tcg", restarts: 0)
        let moved = r.handle(.snapshot(snapshot(node: other, epoch: 2, runtime: theirs), now: .seconds(1)))
        #expect(moved == [.kill(vm, reason: "a is no longer placed on n1")])
        #expect(r.handle(.exited(vm, status: "signaled(9)", now: .seconds(2))).isEmpty, "the runtime key belongs to n2 now")
        #expect(r.runningHere.isEmpty)
    }

    @Test func aMoveWithoutTheNewOwnersReportStillReportsStopped() {
        // Failback: the home node waits for this "stopped" before it starts the VM.
        var r = HostReconciler(me: me, accel: "tcg")
        _ = r.handle(.snapshot(snapshot(node: me, epoch: 1), now: .zero))
        _ = r.handle(.started(vm, pid: 42, epoch: 1, adopted: false, now: .zero))
        let mine = VMRuntime(node: me, epoch: 1, state: .running, pid: 42, accel: "tcg", restarts: 0)
        _ = r.handle(.snapshot(snapshot(node: other, epoch: 2, runtime: mine), now: .seconds(1)))
        let exited = r.handle(.exited(vm, status: "signaled(9)", now: .seconds(2)))
        #expect(exited.contains { if case let .report(_, rt) = $0 { rt.state == .stopped } else { false } })
    }
}

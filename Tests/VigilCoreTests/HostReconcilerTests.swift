import Testing
@testable import VigilCore

struct HostReconcilerTests {
    let me = NodeName(unchecked: "n1"), other = NodeName(unchecked: "n2")
    let vm = VMName(unchecked: "a")

    func snapshot(power: PowerState = .running, node: NodeName? = nil, phase: PlacementPhase = .placed, epoch: Int64 = 1,
                  grace: Int = 5) -> [VMName: VMRecord] {
        var spec = VMSpec(name: vm, cpus: 1, memoryMiB: 128, disks: [], power: power, mac: "52:54:00:00:00:01")
        spec.stopGraceSeconds = grace
        return [vm: VMRecord(spec: spec, placement: Placement(node: node ?? me, epoch: epoch, phase: phase), placementRevision: 1, runtime: nil)]
    }

    func kinds(_ actions: [HostReconciler.Action]) -> [String] {
        actions.map {
            switch $0 {
            case .start: "start"
            case .powerdown: "powerdown"
            case .kill: "kill"
            case let .report(_, r): "report:\(r.state.rawValue)"
            case let .record(e): "event:\(e.kind.rawValue)"
            }
        }
    }

    func running() -> HostReconciler {
        var r = HostReconciler(me: me, accel: "tcg")
        _ = r.handle(.snapshot(snapshot(), now: .zero))
        _ = r.handle(.started(vm, pid: 42, epoch: 1, adopted: false, now: .zero))
        return r
    }

    @Test func startsWhatIsPlacedHereAndReportsIt() {
        var r = HostReconciler(me: me, accel: "tcg")
        #expect(kinds(r.handle(.snapshot(snapshot(), now: .zero))) == ["report:starting", "start"])
        #expect(kinds(r.handle(.snapshot(snapshot(), now: .seconds(1)))).isEmpty, "no second start while starting")
        #expect(kinds(r.handle(.started(vm, pid: 42, epoch: 1, adopted: false, now: .seconds(2)))) == ["event:vm.started", "report:running"])
        #expect(r.runningHere == [vm])
        // Placed elsewhere: nothing to do here.
        var s = HostReconciler(me: me, accel: "tcg")
        #expect(s.handle(.snapshot(snapshot(node: other), now: .zero)).isEmpty)
    }

    @Test func cleanStopThenHardStopExactlyAtTheGraceDeadline() {
        var r = running()
        #expect(kinds(r.handle(.snapshot(snapshot(power: .stopped, grace: 5), now: .seconds(10)))) == ["powerdown", "report:stopping"])
        #expect(kinds(r.handle(.snapshot(snapshot(power: .stopped, grace: 5), now: .seconds(15) - .nanoseconds(1)))).isEmpty)
        #expect(kinds(r.handle(.snapshot(snapshot(power: .stopped, grace: 5), now: .seconds(15)))) == ["kill"])
        #expect(kinds(r.handle(.exited(vm, status: "signaled(9)", now: .seconds(15)))) == ["report:stopped"], "an asked-for exit is no crash")
    }

    @Test func graceZeroKillsAtOnceAndDeletionOrMoveKills() {
        var r = running()
        #expect(kinds(r.handle(.snapshot(snapshot(power: .stopped, grace: 0), now: .seconds(1)))) == ["kill"])
        var d = running()
        #expect(kinds(d.handle(.snapshot([:], now: .seconds(1)))) == ["kill"])
        var m = running()
        #expect(kinds(m.handle(.snapshot(snapshot(node: other, epoch: 2), now: .seconds(1)))) == ["kill"])
    }

    @Test func crashesAreRestartedInPlaceThenGivenUp() {
        var r = running()
        var now: Duration = .seconds(1)
        for n in 1...3 {
            #expect(kinds(r.handle(.exited(vm, status: "signaled(9)", now: now))) == ["event:vm.crashed", "report:crashed"], "crash \(n)")
            #expect(kinds(r.handle(.snapshot(snapshot(), now: now + .milliseconds(499)))).isEmpty, "restart waits its delay")
            #expect(kinds(r.handle(.snapshot(snapshot(), now: now + .milliseconds(500)))) == ["report:starting", "start"])
            #expect(kinds(r.handle(.started(vm, pid: Int32(100 + n), epoch: 1, adopted: false, now: now + .seconds(1)))) == ["event:vm.restarted", "report:running"])
            now += .seconds(5)
        }
        // The fourth crash within a minute: given up, with a reason, and not started again.
        let last = r.handle(.exited(vm, status: "signaled(9)", now: now))
        #expect(kinds(last) == ["event:vm.crashed", "event:vm.crashed", "report:crashed"])
        guard case let .report(_, rt)? = last.last else { Issue.record("no report"); return }
        #expect(rt.message?.contains("gave up after 3 restarts") == true)
        #expect(kinds(r.handle(.snapshot(snapshot(), now: now + .seconds(10)))).isEmpty)
    }

    @Test func adoptedVMIsKeptAndSaidSo() {
        var r = HostReconciler(me: me, accel: "tcg")
        #expect(kinds(r.handle(.started(vm, pid: 7, epoch: 3, adopted: true, now: .zero))) == ["event:vm.adopted", "report:running"])
        #expect(kinds(r.handle(.snapshot(snapshot(epoch: 3), now: .seconds(1)))).isEmpty, "already running: no start")
    }

    @Test func aFencedVMIsNotACrashAndItsStaleRunningReportIsCorrected() {
        var r = running()
        #expect(kinds(r.handle(.fenced(vm, now: .seconds(1)))) == ["event:vm.fenced"])
        #expect(r.runningHere.isEmpty)
        // Lease usable again, the VM failed back to another node meanwhile, and our old
        // "running" report still stands: it is corrected to stopped, until it reads so.
        var moved = snapshot(node: other, epoch: 2)
        moved[vm]!.runtime = VMRuntime(node: me, epoch: 1, state: .running, pid: 42, accel: "tcg", restarts: 0)
        #expect(kinds(r.handle(.snapshot(moved, now: .seconds(2)))) == ["report:stopped"])
        moved[vm]!.runtime!.state = .stopped
        #expect(kinds(r.handle(.snapshot(moved, now: .seconds(3)))).isEmpty)
        moved[vm]!.runtime!.state = .running
        #expect(kinds(r.handle(.snapshot(moved, now: .seconds(4)))).isEmpty, "corrected once; later reports are not ours to undo")
    }
}

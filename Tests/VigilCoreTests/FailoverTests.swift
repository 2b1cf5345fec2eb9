import Testing
@testable import VigilCore

/// The leader's failover decisions: priority and capacity order, epochs, the failover
/// policy, failback, and a leader that dies midway.
struct FailoverTests {
    let n1 = NodeName(unchecked: "n1"), n2 = NodeName(unchecked: "n2"), n3 = NodeName(unchecked: "n3")
    let hour: Int64 = 3_600_000

    func vm(_ name: String, mem: Int = 256, prio: HAPriority = .medium, failback: Bool? = nil) -> VMSpec {
        VMSpec(name: VMName(unchecked: name), cpus: 1, memoryMiB: mem, disks: [], haPriority: prio, power: .running,
               mac: "52:54:00:00:00:01", failback: failback)
    }
    func on(_ n: NodeName, epoch: Int64 = 1, home: NodeName? = nil, failovers: [Int64]? = nil) -> Placement {
        Placement(node: n, epoch: epoch, phase: .placed, home: home, failovers: failovers)
    }
    func controller(alive: Set<NodeName>, mem: Int = 2048, wall: Int64 = 100 * 3_600_000) -> ClusterController {
        var c = ClusterController(me: n2)
        let registered = Dictionary(uniqueKeysWithValues: [n1, n2, n3].map {
            ($0, NodeRecord(name: $0, clusterAddress: "x", apiPort: 1, networks: [], capacity: Capacity(cpus: 8, memoryMiB: mem)))
        })
        _ = c.handle(.becameLeader(registered: registered, alive: alive, now: .zero, wallMillis: wall))
        return c
    }
    func snapshot(_ vms: [(VMSpec, Placement)]) -> ClusterController.Event {
        .vmsChanged(Dictionary(uniqueKeysWithValues: vms.map { ($0.0.name, VMRecord(spec: $0.0, placement: $0.1, placementRevision: 7, runtime: nil)) }))
    }
    func writes(_ effects: [ClusterController.Effect]) -> [String: Placement] {
        var out: [String: Placement] = [:]
        for case let .writePlacement(vm, p, rev, _) in effects { #expect(rev == 7, "every write compares the placement's revision"); out[vm.rawValue] = p }
        return out
    }
    func events(_ effects: [ClusterController.Effect]) -> [ClusterEvent] {
        effects.compactMap {
            if case let .writePlacement(_, _, _, e?) = $0 { return e }
            if case let .record(e) = $0 { return e }
            return nil
        }
    }

    @Test func aLostNodesHAVMsMoveToSurvivorsWithANewEpoch() {
        var c = controller(alive: [n1, n2, n3])
        _ = c.handle(snapshot([(vm("a"), on(n1, epoch: 4)), (vm("b"), on(n2)), (vm("off", prio: .off), on(n1))]))
        let effects = c.handle(.aliveChanged([n2, n3]))
        let w = writes(effects)
        #expect(w["a"]?.node != n1 && w["a"]?.node != nil && w["a"]?.phase == .placed)
        #expect(w["a"]?.epoch == 5, "ownership change increments the epoch")
        #expect(w["a"]?.home == n1 && w["a"]?.failovers == [100 * hour])
        #expect(w["b"] == nil, "a VM on a live node stays")
        #expect(w["off"] == nil, "HA priority off: not restarted elsewhere")
        let kinds = events(effects).map(\.kind)
        #expect(kinds.contains(.nodeLost) && kinds.contains(.vmFailover) && kinds.contains(.vmWaiting))
        // The waiting note is said once, not every round.
        #expect(!events(c.handle(.aliveChanged([n2, n3]))).map(\.kind).contains(.vmWaiting))
    }

    @Test func priorityDecidesWhoGetsTheRoomThatIsLeft() {
        // n2 has room for two 512 MiB VMs after its own 1024.
        var c = controller(alive: [n1, n2], mem: 2048)
        _ = c.handle(snapshot([(vm("own", mem: 1024), on(n2)),
                               (vm("low", mem: 512, prio: .low), on(n1)), (vm("high", mem: 512, prio: .high), on(n1)),
                               (vm("med", mem: 512, prio: .medium), on(n1))]))
        let effects = c.handle(.aliveChanged([n2]))
        let w = writes(effects)
        #expect(w["high"]?.node == n2 && w["high"]?.phase == .placed)
        #expect(w["med"]?.node == n2 && w["med"]?.phase == .placed)
        #expect(w["low"]?.phase == .pending && w["low"]?.epoch == 1, "no room: pending, no ownership change")
        #expect(w["low"]?.reason?.contains("n1 was lost") == true)
        #expect(events(effects).contains { $0.kind == .vmPending && $0.vm == "low" }, "nothing silently dropped")
    }

    @Test func aPendingVMIsPlacedWhenRoomReturns() {
        var c = controller(alive: [n2], mem: 1024)
        let pending = Placement(node: n1, epoch: 3, phase: .pending, reason: "its node n1 was lost and no room", home: n1, failovers: [100 * hour])
        _ = c.handle(snapshot([(vm("a", mem: 1024), on(n2)), (vm("b", mem: 1024), pending)]))
        let w = writes(c.handle(.aliveChanged([n2, n3])))
        #expect(w["b"]?.node == n3 && w["b"]?.epoch == 4 && w["b"]?.phase == .placed)
        #expect(w["b"]?.failovers == [100 * hour], "one failover, counted once")
    }

    @Test func theFailoverPolicyGivesUpAfterNFailoversInThePeriod() {
        var c = controller(alive: [n1, n2, n3])
        let now = 100 * hour
        // Three failovers within the last 6 h: the fourth is refused.
        _ = c.handle(snapshot([(vm("a"), on(n1, epoch: 9, failovers: [now - 5 * hour, now - hour, now - 1000])),
                               // Old failovers fall out of the period and don't count.
                               (vm("b"), on(n1, epoch: 2, failovers: [now - 7 * hour, now - 6 * hour - 1, now - 10 * hour]))]))
        let effects = c.handle(.aliveChanged([n2, n3]))
        let w = writes(effects)
        #expect(w["a"]?.phase == .failed && w["a"]?.node == n1 && w["a"]?.epoch == 9)
        #expect(w["a"]?.reason?.contains("3 times") == true)
        #expect(events(effects).contains { $0.kind == .vmFailed && $0.severity == .error })
        #expect(w["b"]?.phase == .placed && w["b"]?.failovers == [now], "stamps outside the period are dropped")
    }

    @Test func failbackWaitsForTheHomeNodeToBeUpLongEnough() {
        var c = controller(alive: [n2, n3])
        // The owner reports both running at their epoch (failback waits for that).
        let running = VMRuntime(node: n2, epoch: 5, state: .running, pid: 1, accel: "tcg", restarts: 0)
        _ = c.handle(.vmsChanged(Dictionary(uniqueKeysWithValues: [(vm("a", failback: true), on(n2, epoch: 5, home: n1)),
                                                                   (vm("b"), on(n2, epoch: 5, home: n1))].map {
            ($0.0.name, VMRecord(spec: $0.0, placement: $0.1, placementRevision: 7, runtime: running))
        })))
        _ = c.handle(.tick(now: .seconds(1)))
        #expect(writes(c.handle(.aliveChanged([n1, n2, n3]))).isEmpty, "home just returned")
        #expect(writes(c.handle(.tick(now: .seconds(30)))).isEmpty, "29 s up: still waiting")
        let effects = c.handle(.tick(now: .seconds(31)))
        let w = writes(effects)
        #expect(w["a"]?.node == n1 && w["a"]?.epoch == 6 && w["a"]?.home == nil)
        #expect(w["b"] == nil, "no failback unless asked for")
        #expect(events(effects).contains { $0.kind == .vmFailback })
    }

    @Test func aNewLeaderCompletesAFailoverThePreviousLeaderStarted() {
        // The old leader (n1) died after moving `a` but before moving `b`. The new leader
        // learns n1 was alive from `membership` and finishes: `b` moves, `a` stays put.
        var c = ClusterController(me: n2)
        let registered = Dictionary(uniqueKeysWithValues: [n1, n2, n3].map {
            ($0, NodeRecord(name: $0, clusterAddress: "x", apiPort: 1, networks: [], capacity: Capacity(cpus: 8, memoryMiB: 2048)))
        })
        _ = c.handle(snapshot([(vm("a"), on(n3, epoch: 2, home: n1, failovers: [1])), (vm("b"), on(n1, epoch: 1))]))
        let effects = c.handle(.becameLeader(registered: registered, alive: [n2, n3], lastKnownAlive: [n1, n2, n3], now: .zero, wallMillis: 2))
        let w = writes(effects)
        #expect(w["a"] == nil)
        #expect(w["b"]?.epoch == 2 && w["b"]?.node != n1)
        #expect(events(effects).contains { $0.kind == .nodeLost && $0.node == n1 })
    }

    @Test func stoppingAFailedVMClearsItsFailoverHistory() {
        var c = controller(alive: [n1, n2, n3])
        var spec = vm("a"); spec.power = .stopped
        let failed = Placement(node: n1, epoch: 9, phase: .failed, reason: "gave up", home: n1, failovers: [1, 2, 3])
        let w = writes(c.handle(snapshot([(spec, failed)])))
        #expect(w["a"] == Placement(node: n1, epoch: 9, phase: .stopped))
        // While it should run, a failed VM stays failed: no silent retry.
        var d = controller(alive: [n1, n2, n3])
        #expect(writes(d.handle(snapshot([(vm("a"), failed)]))).isEmpty)
    }
}

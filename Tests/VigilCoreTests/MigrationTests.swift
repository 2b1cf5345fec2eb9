import Testing
@testable import VigilCore

/// The leader's migration state machine, the planner's refusals, the protocol's moves and convergence control.
struct MigrationTests {
    let n1 = NodeName(unchecked: "n1"), n2 = NodeName(unchecked: "n2"), n3 = NodeName(unchecked: "n3")

    func nodes(cpus: Int = 2, mem: Int = 1024, paused: Set<NodeName> = []) -> [NodeName: NodeRecord] {
        Dictionary(uniqueKeysWithValues: [n1, n2, n3].map {
            ($0, NodeRecord(name: $0, clusterAddress: "x", apiPort: 1, networks: [], capacity: Capacity(cpus: cpus, memoryMiB: mem),
                            adminState: paused.contains($0) ? .paused : .active))
        })
    }
    func running(_ name: String, on n: NodeName, cpus: Int = 1, mem: Int = 256, epoch: Int64 = 1, rev: Int64 = 10) -> VMRecord {
        let vm = VMName(unchecked: name)
        return VMRecord(spec: VMSpec(name: vm, cpus: cpus, memoryMiB: mem, disks: [], power: .running, mac: "52:54:00:00:00:01"),
                        placement: Placement(node: n, epoch: epoch, phase: .placed), placementRevision: rev,
                        runtime: VMRuntime(node: n, epoch: epoch, state: .running, pid: 1, accel: "tcg", restarts: 0))
    }
    func cluster(_ vms: [VMRecord], alive: Set<NodeName>? = nil, paused: Set<NodeName> = [], migrations: [MigrationRecord] = [],
                 cpus: Int = 2, mem: Int = 1024) -> MigrationPlanner.Cluster {
        MigrationPlanner.Cluster(nodes: nodes(cpus: cpus, mem: mem, paused: paused), alive: alive ?? [n1, n2, n3],
                                 vms: Dictionary(uniqueKeysWithValues: vms.map { ($0.spec.name, $0) }),
                                 migrations: Dictionary(uniqueKeysWithValues: migrations.map { ($0.vm, $0) }))
    }
    func request(_ vm: String, _ from: NodeName, _ to: NodeName, at: Int64 = 0, phase: MigrationPhase = .requested) -> MigrationRecord {
        MigrationRecord(id: "\(vm)-\(at)", vm: VMName(unchecked: vm), source: from, destination: to, sourceEpoch: 1, phase: phase, requestedAtMillis: at)
    }
    func step(_ c: inout MigrationController, _ cl: MigrationPlanner.Cluster, revisions: [VMName: Int64] = [:], now: Duration) -> [MigrationRecord] {
        c.handle(.snapshot(nodes: cl.nodes, alive: cl.alive, vms: cl.vms, migrations: cl.migrations, revisions: revisions, now: now)).map {
            if case let .writeMigration(m, _, _) = $0 { return m }
            fatalError()
        }
    }

    // MARK: planner refusals

    @Test func refusesBadTargetsWithReasons() {
        let a = running("a", on: n1), stopped = VMRecord(spec: VMSpec(name: VMName(unchecked: "s"), cpus: 1, memoryMiB: 256, disks: [], power: .stopped, mac: "m"),
                                                       placement: Placement(node: nil, epoch: 0, phase: .stopped), placementRevision: 1, runtime: nil)
        let c = cluster([a, stopped], alive: [n1, n2], paused: [n3])
        func refusal(_ vm: String, _ to: String?) -> String {
            if case let .refused(why) = MigrationPlanner.decide(VMName(unchecked: vm), to: to.map(NodeName.init(unchecked:)), in: c) { return why }
            return "accepted"
        }
        #expect(refusal("a", "n1").contains("already runs on n1"))
        #expect(refusal("a", "n3").contains("paused") || refusal("a", "n3").contains("down"))
        #expect(refusal("a", "n9").contains("unknown node 'n9'"))
        #expect(refusal("s", "n2").contains("not running"))
        #expect(refusal("zz", "n2").contains("no VM named"))
        let paused = cluster([a], paused: [n3])
        if case let .refused(why) = MigrationPlanner.decide(a.spec.name, to: n3, in: paused) { #expect(why.contains("n3 is paused")) } else { Issue.record("accepted a paused node") }
        // No room: n2 is full.
        let full = cluster([a, running("big", on: n2, cpus: 2, mem: 1024)])
        if case let .refused(why) = MigrationPlanner.decide(a.spec.name, to: n2, in: full) { #expect(why.contains("no room")) } else { Issue.record("accepted a full node") }
        // Without --to the planner picks the node with room.
        #expect(MigrationPlanner.decide(a.spec.name, to: nil, in: full) == .migrate(from: n1, to: n3))
        // One migration per VM.
        let busy = cluster([a], migrations: [request("a", n1, n2, phase: .copying)])
        if case let .refused(why) = MigrationPlanner.decide(a.spec.name, to: n3, in: busy) { #expect(why.contains("already migrating")) } else { Issue.record("two migrations of one VM") }
    }

    @Test func migrationsInFlightHoldRoomOnTheirDestination() {
        // n2 and n3 have room for one 512 MiB VM each; a and b are both on n1.
        let a = running("a", on: n1, mem: 512), b = running("b", on: n1, mem: 512)
        let tight = cluster([a, b, running("x", on: n2, mem: 512), running("y", on: n3, mem: 512)], migrations: [request("a", n1, n2, phase: .copying)], mem: 1024)
        if case .refused = MigrationPlanner.decide(b.spec.name, to: n2, in: tight) {} else { Issue.record("n2's room is held by a's migration") }
        #expect(MigrationPlanner.decide(b.spec.name, to: nil, in: tight) == .migrate(from: n1, to: n3))
    }

    @Test func drainPlanListsWhatWouldStay() {
        // n1 runs three 512 MiB VMs; n2 and n3 have 1024 MiB with 512 used on n2: room for 1 + 2.
        let vms = [running("a", on: n1, mem: 512), running("b", on: n1, mem: 512), running("c", on: n1, mem: 512), running("x", on: n2, mem: 512)]
        let plan = MigrationPlanner.drain(n1, in: cluster(vms, cpus: 4, mem: 1024))
        #expect(plan.moves.count == 3 && plan.stays.isEmpty, "\(plan)")
        #expect(plan.moves.filter { $0.to == n3 }.count == 2 && plan.moves.filter { $0.to == n2 }.count == 1)
        let crowded = vms + [running("y", on: n3, mem: 512)]
        let short = MigrationPlanner.drain(n1, in: cluster(crowded, cpus: 4, mem: 1024))
        #expect(short.moves.count == 2 && short.stays.count == 1, "\(short)")
        #expect(short.stays.first?.reason.contains("no node can take") == true)
    }

    // MARK: protocol moves

    @Test func protocolAllowsOnlyItsMoves() {
        let r = request("a", n1, n2)
        #expect(r.moved(to: .preparing)?.phase == .preparing)
        #expect(r.moved(to: .copying) == nil)
        #expect(r.moved(to: .done) == nil)
        let sw = request("a", n1, n2, phase: .switchingOver)
        #expect(sw.moved(to: .cancelling) == nil, "too late to cancel once switching over")
        #expect(sw.moved(to: .done) != nil)
        for final in [MigrationPhase.done, .cancelled, .failed] {
            #expect(MigrationPhase.allCases.allSatisfy { !final.allows($0) }, "\(final) is final")
        }
    }

    // MARK: leader

    @Test func admitsAtMostMaxPerNodeAndOnePerVM() {
        var settings = MigrationController.Settings(); settings.maxPerNode = 2
        var c = MigrationController(me: n1, settings: settings)
        let vms = (1...4).map { running("v\($0)", on: n1, mem: 128) }
        let reqs = (1...4).map { request("v\($0)", n1, $0 % 2 == 0 ? n2 : n3, at: Int64($0)) }
        let out = step(&c, cluster(vms, migrations: reqs, cpus: 8, mem: 4096), now: .zero)
        #expect(out.map(\.vm.rawValue) == ["v1", "v2"], "n1 is the source of all: two at once")
        #expect(out.allSatisfy { $0.phase == .preparing && $0.placementRevision == 10 })
        // When one finishes the next starts.
        var after = reqs
        after[0].phase = .done; after[1].phase = .copying
        let next = step(&c, cluster(vms, migrations: after, cpus: 8, mem: 4096), now: .seconds(1))
        #expect(next.map(\.vm.rawValue) == ["v3"])
    }

    @Test func admissionRechecksAndFailsWithReason() {
        var c = MigrationController(me: n1)
        // The destination was paused after the request was accepted.
        let out = step(&c, cluster([running("a", on: n1)], paused: [n2], migrations: [request("a", n1, n2)]), now: .zero)
        #expect(out.count == 1 && out[0].phase == .failed && out[0].reason?.contains("paused") == true)
    }

    @Test func failsWhenANodeIsLostOrAPhaseTakesTooLong() {
        var c = MigrationController(me: n1)
        let a = running("a", on: n1)
        // Destination lost while copying.
        var out = step(&c, cluster([a], alive: [n1, n3], migrations: [request("a", n1, n2, phase: .copying)]), now: .zero)
        #expect(out.first?.phase == .failed && out.first?.reason?.contains("destination n2") == true)
        // Preparing: one tick before the timeout nothing, at it failed.
        c = MigrationController(me: n1)
        let prep = cluster([a], migrations: [request("a", n1, n2, phase: .preparing)])
        #expect(step(&c, prep, now: .seconds(5)).isEmpty)
        #expect(step(&c, prep, now: .seconds(65) - .milliseconds(1)).isEmpty)
        out = step(&c, prep, now: .seconds(65))
        #expect(out.first?.phase == .failed && out.first?.reason?.contains("did not get ready") == true)
        // A stopped VM's migration is cancelled.
        c = MigrationController(me: n1)
        var stopped = a; stopped.spec.power = .stopped
        out = step(&c, cluster([stopped], migrations: [request("a", n1, n2, phase: .copying)]), now: .zero)
        #expect(out.first?.phase == .cancelling)
    }

    @Test func newLeaderMidMigrationLetsItCompleteOrCleansUp() {
        let a = running("a", on: n1)
        var copying = request("a", n1, n2, phase: .copying)
        copying.placementRevision = 10
        // Old leader admitted it and then died (n3 was leader): the new one sees `copying`, both ends alive: nothing to do.
        var newLeader = MigrationController(me: n2)
        #expect(step(&newLeader, cluster([a], alive: [n1, n2], migrations: [copying]), now: .seconds(100)).isEmpty)
        // The destination then completes: `done` is final, nothing more from the leader.
        var done = copying; done.phase = .done
        #expect(step(&newLeader, cluster([a], alive: [n1, n2], migrations: [done]), now: .seconds(101)).isEmpty)
        // Another new leader finds a `preparing` one whose destination died in between: cleaned up at once.
        var third = MigrationController(me: n3)
        var prep = copying; prep.phase = .preparing
        let out = step(&third, cluster([a], alive: [n1, n3], migrations: [prep]), now: .zero)
        #expect(out.first?.phase == .failed)
        // And a still-requested one is admitted by the new leader.
        var fourth = MigrationController(me: n3)
        let admitted = step(&fourth, cluster([a], migrations: [request("a", n1, n2)]), now: .zero)
        #expect(admitted.first?.phase == .preparing)
        // Phase clocks restart with the new leader: a `ready` seen first now waits the full timeout.
        var fifth = MigrationController(me: n3)
        var ready = copying; ready.phase = .ready
        #expect(step(&fifth, cluster([a], migrations: [ready]), now: .seconds(1000)).isEmpty)
        #expect(step(&fifth, cluster([a], migrations: [ready]), now: .seconds(1030)).first?.phase == .failed)
    }

    @Test func cancellingIsConfirmedByTheLeaderWhenTheSourceIsGone() {
        var c = MigrationController(me: n3)
        let a = running("a", on: n1)
        var m = request("a", n1, n2, phase: .cancelling); m.reason = "operator"
        #expect(step(&c, cluster([a], migrations: [m]), now: .zero).isEmpty)
        let out = step(&c, cluster([a], alive: [n2, n3], migrations: [m]), now: .seconds(1))
        #expect(out.first?.phase == .cancelled)
    }

    // MARK: convergence

    func sample(pass: Int64, elapsed: Int64, dirty: Int64 = 64 << 20, bw: Int64 = 16 << 20, expected: Int64? = 4000, throttle: Int? = nil) -> MigrationProgress {
        MigrationProgress(passes: pass, totalBytes: 256 << 20, transferredBytes: 0, remainingBytes: 64 << 20, dirtyRate: dirty,
                          bandwidth: bw, expectedDowntimeMs: expected, elapsedMs: elapsed, throttlePercent: throttle)
    }

    @Test func convergenceEscalatesThrottleThenDowntimeUpToTheMaximum() {
        var cc = ConvergenceController(policy: MigrationPolicy(downtimeLimitMs: 300, convergence: true, maxDowntimeMs: 1000, timeLimitSeconds: 60))
        #expect(cc.observe(sample(pass: 1, elapsed: 500)).isEmpty, "first pass copies everything: no judgement")
        #expect(cc.observe(sample(pass: 2, elapsed: 1000)).isEmpty, "behind once is not yet a trend")
        let s3 = cc.observe(sample(pass: 3, elapsed: 1500))
        #expect(s3.map(\.action) == [.throttle(increment: 20, max: 99)])
        #expect(s3.first?.message.contains("dirty rate 64 MiB/s vs bandwidth 16 MiB/s") == true)
        #expect(cc.observe(sample(pass: 3, elapsed: 1700)).isEmpty, "same pass: no new judgement")
        #expect(cc.observe(sample(pass: 4, elapsed: 2000)).isEmpty, "the throttle gets time to work")
        #expect(cc.observe(sample(pass: 5, elapsed: 2500)).map(\.action) == [.setDowntimeLimit(ms: 1000)], "max(2×300, 4000×5/4) capped at the maximum")
        #expect(cc.observe(sample(pass: 7, elapsed: 3500)).isEmpty, "already at the maximum")
        // Caught up: nothing more.
        #expect(cc.observe(sample(pass: 8, elapsed: 4000, dirty: 1 << 20, expected: 100)).isEmpty)
    }

    @Test func withoutConvergenceControlItIsCancelledExactlyAtTheTimeLimit() {
        var cc = ConvergenceController(policy: MigrationPolicy(convergence: false, timeLimitSeconds: 20))
        for p in Int64(1)...30 { #expect(cc.observe(sample(pass: p, elapsed: p * 600)).isEmpty || p * 600 >= 20_000) }
        var fresh = ConvergenceController(policy: MigrationPolicy(convergence: false, timeLimitSeconds: 20))
        #expect(fresh.observe(sample(pass: 9, elapsed: 19_999)).isEmpty)
        let s = fresh.observe(sample(pass: 9, elapsed: 20_000))
        guard case let .cancel(reason)? = s.first?.action else { Issue.record("not cancelled at the limit"); return }
        #expect(reason.contains("did not converge within 20 s") && reason.contains("convergence control off"))
        #expect(fresh.observe(sample(pass: 10, elapsed: 21_000)).isEmpty, "cancelled once")
    }

    @Test func requestPolicyAndValidation() {
        let p = MigrateRequest(convergence: false, bandwidthMiBs: 16, timeLimitSeconds: 30).policy()
        #expect(p.maxBandwidth == 16 << 20 && !p.convergence && p.timeLimitSeconds == 30 && p.problem() == nil)
        #expect(MigrateRequest(downtimeLimitMs: 5).policy().problem() != nil)
        #expect(MigrateRequest(timeLimitSeconds: 0).policy().problem() != nil)
    }
}

struct MigrationNetworkTests {
    let nets = [NetworkAttachment(name: "cluster1", role: .cluster, address: "10.0.1.2", prefix: 24),
                NetworkAttachment(name: "cluster2", role: .cluster, address: "10.0.2.2", prefix: 24),
                NetworkAttachment(name: "client", role: .client, address: "10.0.3.2", prefix: 24)]

    @Test func prefersTheMigrationNetworkThenAHealthyClusterNetworkNeverTheClientOne() {
        let mig = nets + [NetworkAttachment(name: "mig", role: .migration, address: "10.0.9.2", prefix: 24)]
        #expect(MigrationNetwork.choose(networks: mig, clusterAddress: "10.0.6.2", links: [:]).address == "10.0.9.2")
        // Migration link down: first cluster network that is up.
        #expect(MigrationNetwork.choose(networks: mig, clusterAddress: "10.0.6.2", links: ["mig": false, "cluster1": false]).address == "10.0.2.2")
        #expect(MigrationNetwork.choose(networks: nets, clusterAddress: "10.0.6.2", links: [:]).network == "cluster1")
        // Every cluster link down: the NetFT cluster address, not the client network.
        let c = MigrationNetwork.choose(networks: nets, clusterAddress: "10.0.6.2", links: ["cluster1": false, "cluster2": false, "client": true])
        #expect(c.address == "10.0.6.2" && c.network == "cluster-address")
    }
}

import Foundation
import Testing
import VigilClient
import VigilCore
import VigilTestKit
@testable import VigilLab

/// The HA fault suite (issue #5): real hosts as namespaces, real QEMU, real etcd.
/// Every case samples every host's QEMU processes throughout and checks the invariants
/// (one instance, fence before takeover, no lost acknowledged write, nothing dropped).
/// Lab indexes 20–24 are this suite's; its cases run one at a time (TCG guests and
/// timing-sensitive leases share 2 cores).
@Suite(.serialized) struct FailoverLabTests {
    static var canRun: Bool { VMLabTests.canRun }

    struct Cluster {
        let lab: Lab
        let sampler: ClusterSampler
    }

    static func withCluster(index: Int, nodes: Int = 3, _ body: (Cluster) async throws -> Void) async throws {
        let spec = LabSpec(name: "f" + LabConfigFiles.randomHex(bytes: 3), index: index, nodes: nodes, vigildPath: BuiltBinaries.vigild,
                           cpus: 4, memoryMiB: 1024)
        let lab = try await Lab.upOffPool(spec)
        defer { _ = try? lab.down() }
        let sampler = ClusterSampler(lab: lab)
        let task = sampler.start()
        defer { sampler.stop(); task.cancel() }
        try await body(Cluster(lab: lab, sampler: sampler))
    }

    /// Create and start a small VM on `node`; wait until its guest answers from `probe`.
    static func startVM(_ c: Cluster, _ name: String, ha: String, on node: String, probe: LabHost) async throws -> (VMInfo, GuestStatus) {
        let r = try await c.lab.vigil(["vm", "create", name, "--memory", "128M", "--disk", "16M", "--ha-priority", ha, "--node", node, "--start"])
        try #require(r.status == 0, "create \(name): \(r.stderr)")
        let info = try #require(try await VMLabTests.vmList(c.lab).first { $0.spec.name.rawValue == name })
        #expect(info.placement?.node?.rawValue == node)
        let status = try #require(try await waitForGuest(c, info, from: probe, timeout: .seconds(60)), "\(name) never answered")
        return (info, status)
    }

    static func waitForGuest(_ c: Cluster, _ vm: VMInfo, from probe: LabHost, timeout: Duration,
                             where ok: @escaping @Sendable (GuestStatus) -> Bool = { _ in true }) async throws -> GuestStatus? {
        let address = try #require(vm.spec.address)
        var seen: GuestStatus?
        _ = try await eventually(timeout: timeout, every: .milliseconds(250)) {
            if let s = try await c.lab.guestStatus(from: probe, address: address), ok(s) { seen = s; return true }
            return false
        }
        return seen
    }

    static func leaderName(_ lab: Lab) async throws -> NodeName? {
        let s: ClusterStatus = try await lab.apiClient().get("/v1/status")
        return s.leader
    }

    static func events(_ lab: Lab) async throws -> [ClusterEvent] {
        let page: EventPage = try await lab.apiClient().get("/v1/events?limit=500")
        return page.events.map(\.event)
    }

    /// The HA VMs of a failed host end up running on survivors, once each, guests
    /// resuming from at least what they had flushed; the sampler saw no overlap.
    static func expectFailedOver(_ c: Cluster, _ vms: [(VMInfo, GuestStatus)], from lost: LabHost, survivors: [LabHost],
                                 faultAt: Duration, probe: LabHost) async throws {
        let names = vms.map(\.0.spec.name)
        let survivorNames = Set(survivors.map { NodeName(unchecked: $0.name) })
        let moved = try await eventually(timeout: .seconds(30), every: .milliseconds(50)) {
            let now = c.sampler.current
            return names.allSatisfy { vm in (now[vm] ?? []).count == 1 && survivorNames.contains(now[vm]![0]) }
        }
        #expect(moved, "HA VMs not running on survivors: \(c.sampler.current)")
        for (vm, before) in vms {
            let stints = c.sampler.stints(vm.spec.name)
            if let restart = stints.last(where: { survivorNames.contains($0.node) }) {
                print("failover: \(vm.spec.name) QEMU running on \(restart.node) \(restart.from - faultAt) after the fault")
            }
            let after = try await waitForGuest(c, vm, from: probe, timeout: .seconds(60)) { $0.boot_id != before.boot_id }
            let a = try #require(after, "\(vm.spec.name) never answered after failover")
            // The last flushed value we saw before the fault must survive.
            c.sampler.guest(vm.spec.name, flushed: before.flushed, startCounter: before.start_counter, restarted: false)
            c.sampler.guest(vm.spec.name, flushed: a.flushed, startCounter: a.start_counter, restarted: true)
            #expect(a.start_counter >= before.flushed, "\(vm.spec.name): flushed \(before.flushed) before, restarted from \(a.start_counter)")
        }
        let list = try await VMLabTests.vmList(c.lab)
        let placements = Dictionary(uniqueKeysWithValues: list.compactMap { v in v.placement.map { (v.spec.name, $0) } })
        let violations = c.sampler.finish(haVMs: names, alive: survivorNames, placements: placements)
        #expect(violations.isEmpty, "\(violations)")
        for v in list where names.contains(v.spec.name) {
            #expect(v.placement.map { $0.epoch > 1 } == true, "\(v.spec.name): ownership moved without a new epoch")
        }
        let evs = try await events(c.lab)
        let faultWall = Int64(Date().timeIntervalSince1970 * 1000) - Int64((c.sampler.now - faultAt).components.seconds * 1000)
            - (c.sampler.now - faultAt).components.attoseconds / 1_000_000_000_000_000
        for e in evs where e.atMillis >= faultWall - 500 {
            print("  +\(e.atMillis - faultWall) ms \(e.reporter) \(e.kind): \(e.message)")
        }
        #expect(evs.contains { $0.kind == .nodeLost && $0.node?.rawValue == lost.name }, "no node.lost for \(lost.name)")
        for vm in names {
            #expect(evs.contains { $0.kind == .vmFailover && $0.vm == vm.rawValue }, "no vm.failover event for \(vm)")
        }
    }

    @Test(.enabled(if: canRun))
    func killAWholeHostRestartsItsHAVMsOnSurvivorsRequiresNetns() async throws {
        try await Self.withCluster(index: 20) { c in
            let high = try await Self.startVM(c, "ha1", ha: "high", on: "n3", probe: 1)
            let low = try await Self.startVM(c, "ha2", ha: "low", on: "n3", probe: 1)
            let off = try await Self.startVM(c, "plain", ha: "off", on: "n3", probe: 1)
            try await Task.sleep(for: .seconds(1))
            let fresh = try await [high, low].asyncMap { vm in (vm.0, try #require(try await c.lab.guestStatus(from: 1, address: vm.0.spec.address!))) }
            let at = c.sampler.now
            try await c.lab.off { try $0.killHost(host: 3) }
            try await Self.expectFailedOver(c, fresh, from: 3, survivors: [1, 2], faultAt: at, probe: 1)
            // HA priority off: not restarted elsewhere, and the cluster says so.
            #expect(c.sampler.current[off.0.spec.name] == nil)
            #expect(try await Self.events(c.lab).contains { $0.kind == .vmWaiting && $0.vm == "plain" })
        }
    }

    /// vigild dies but its QEMUs do not: only the watchdog can kill them before the lease
    /// expires and the leader restarts them elsewhere.
    @Test(.enabled(if: canRun))
    func killingTheAgentLeavesTheWatchdogToFenceAndTheVMsMoveRequiresNetns() async throws {
        try await Self.withCluster(index: 20) { c in
            let vm = try await Self.startVM(c, "wd1", ha: "high", on: "n3", probe: 1)
            try await Task.sleep(for: .seconds(1))
            let before = try #require(try await c.lab.guestStatus(from: 1, address: vm.0.spec.address!))
            let at = c.sampler.now
            try await c.lab.off { try $0.signal(host: 3, process: .vigild, SIGKILL) }
            try await Self.expectFailedOver(c, [(vm.0, before)], from: 3, survivors: [1, 2], faultAt: at, probe: 1)
            let fencedAt = try #require(c.sampler.stints(vm.0.spec.name).first { $0.node.rawValue == "n3" }?.to)
            print("watchdog fenced \(fencedAt - at) after vigild died")
            #expect(fencedAt - at < .milliseconds(2100), "the QEMU outlived its fence deadline")
        }
    }

    /// vigild frozen for 2×TTL: the watchdog fences at the deadline, the VM moves; thawed,
    /// the node finds its lease gone, kills nothing twice, runs nothing, and rejoins.
    @Test(.enabled(if: canRun))
    func aFrozenAgentIsFencedByTheWatchdogAndRejoinsAfterThawRequiresNetns() async throws {
        try await Self.withCluster(index: 21) { c in
            let vm = try await Self.startVM(c, "frz1", ha: "high", on: "n3", probe: 1)
            try await Task.sleep(for: .seconds(1))
            let before = try #require(try await c.lab.guestStatus(from: 1, address: vm.0.spec.address!))
            let at = c.sampler.now
            try await c.lab.off { try $0.signal(host: 3, process: .vigild, SIGSTOP) }
            try await Task.sleep(for: .seconds(4))
            try await c.lab.off { try $0.signal(host: 3, process: .vigild, SIGCONT) }
            try await Self.expectFailedOver(c, [(vm.0, before)], from: 3, survivors: [1, 2], faultAt: at, probe: 1)
            let rejoined = try await eventually(timeout: .seconds(20), every: .milliseconds(500)) {
                let s: ClusterStatus = try await c.lab.apiClient().get("/v1/status")
                return s.nodes.filter { $0.state == .up }.count == 3
            }
            #expect(rejoined, "n3 did not rejoin after the thaw")
            try await Task.sleep(for: .seconds(2))
            #expect(c.sampler.current[vm.0.spec.name]?.count == 1)
            #expect(c.sampler.finish(haVMs: [vm.0.spec.name], alive: Set(["n1", "n2", "n3"].map(NodeName.init(unchecked:))), placements: [:]).isEmpty)
        }
    }

    @Test(.enabled(if: canRun))
    func cuttingBothClusterNetworksFencesTheHostAndItsVMsMoveRequiresNetns() async throws {
        try await Self.withCluster(index: 21) { c in
            let vm = try await Self.startVM(c, "cut1", ha: "high", on: "n3", probe: 1)
            try await Task.sleep(for: .seconds(1))
            let before = try #require(try await c.lab.guestStatus(from: 1, address: vm.0.spec.address!))
            let at = c.sampler.now
            try await c.lab.off { lab in
                try lab.cut(host: 3, net: .cluster1)
                try lab.cut(host: 3, net: .cluster2)
            }
            try await Self.expectFailedOver(c, [(vm.0, before)], from: 3, survivors: [1, 2], faultAt: at, probe: 1)
            let log = (try? String(contentsOfFile: c.lab.logFile(host: 3, process: .vigild), encoding: .utf8)) ?? ""
            #expect(log.contains("FENCED"), "n3 never logged that it fenced its VM")
            // Back on the network: n3 rejoins and does not run the VM a second time.
            try await c.lab.off { lab in
                try lab.restore(host: 3, net: .cluster1)
                try lab.restore(host: 3, net: .cluster2)
            }
            let rejoined = try await eventually(timeout: .seconds(20), every: .milliseconds(500)) {
                let s: ClusterStatus = try await c.lab.apiClient().get("/v1/status")
                return s.nodes.filter { $0.state == .up }.count == 3
            }
            #expect(rejoined, "n3 did not rejoin")
            try await Task.sleep(for: .seconds(2))
            #expect(c.sampler.current[vm.0.spec.name]?.count == 1)
            #expect(c.sampler.finish(haVMs: [vm.0.spec.name], alive: Set(["n1", "n2", "n3"].map(NodeName.init(unchecked:))), placements: [:]).isEmpty)
        }
    }

    @Test(.enabled(if: canRun))
    func aMinorityPartitionFencesAndTheMajorityTakesOverRequiresNetns() async throws {
        try await Self.withCluster(index: 22) { c in
            let vm = try await Self.startVM(c, "part1", ha: "medium", on: "n3", probe: 1)
            let stay = try await Self.startVM(c, "part2", ha: "medium", on: "n1", probe: 2)
            try await Task.sleep(for: .seconds(1))
            let before = try #require(try await c.lab.guestStatus(from: 1, address: vm.0.spec.address!))
            let at = c.sampler.now
            try await c.lab.off { try $0.partition([[1, 2], [3]]) }
            try await Self.expectFailedOver(c, [(vm.0, before)], from: 3, survivors: [1, 2], faultAt: at, probe: 1)
            // The majority's own VM never moved.
            #expect(c.sampler.stints(stay.0.spec.name).map(\.node.rawValue) == ["n1"])
            try await c.lab.off { try $0.heal() }
        }
    }
}

extension FailoverLabTests {
    /// A 4-host lab (etcd members on n1–n3): n4 dies with three HA VMs, and the leader's
    /// host dies as soon as the failover is under way. The next leader finishes it.
    @Test(.enabled(if: canRun))
    func theLeadersHostDyingMidFailoverLeavesWorkTheNextLeaderFinishesRequiresNetns() async throws {
        try await Self.withCluster(index: 24, nodes: 4) { c in
            // n4 (no etcd member) is to die with the VMs; the leader must be another host.
            // If n4 leads, restart its agent: a graceful stop hands leadership over at once.
            if try await Self.leaderName(c.lab)?.rawValue == "n4" {
                try await c.lab.off { try $0.signal(host: 4, process: .vigild, SIGTERM) }
                let moved = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                    let l = try await Self.leaderName(c.lab); return l != nil && l?.rawValue != "n4"
                }
                try #require(moved, "leadership did not leave n4")
                _ = try await c.lab.off { try $0.startVigild(host: 4) }
                let back = try await eventually(timeout: .seconds(20), every: .milliseconds(200)) {
                    let s: ClusterStatus = try await c.lab.apiClient().get("/v1/status")
                    return s.nodes.filter { $0.state == .up }.count == 4
                }
                try #require(back, "n4 did not rejoin")
            }
            var vms: [(VMInfo, GuestStatus)] = []
            for (i, prio) in ["high", "medium", "low"].enumerated() {
                vms.append(try await Self.startVM(c, "mid\(i + 1)", ha: prio, on: "n4", probe: 1))
            }
            let leader = try #require(try await Self.leaderName(c.lab))
            let leaderHost = try #require(LabHost(parsing: leader.rawValue))
            try #require(leaderHost != 4)
            let fresh = try await vms.asyncMap { vm in (vm.0, try #require(try await c.lab.guestStatus(from: 1, address: vm.0.spec.address!))) }
            let at = c.sampler.now
            try await c.lab.off { try $0.killHost(host: 4) }
            // Kill the leader's host the moment its first failover decision is visible.
            let started = try await eventually(timeout: .seconds(15), every: .milliseconds(10)) {
                try await Self.events(c.lab).contains { $0.kind == .vmFailover }
            }
            try #require(started, "the leader never started the failover")
            try await c.lab.off { try $0.killHost(host: leaderHost) }
            print("killed the leader \(leader) \(c.sampler.now - at) after n4")
            let survivors: [LabHost] = [LabHost(1), LabHost(2), LabHost(3)].filter { $0 != leaderHost }
            // The other probe host must be a survivor.
            let probe = survivors[0]
            try await Self.expectFailedOverAfterTwoLosses(c, fresh, survivors: survivors, faultAt: at, probe: probe)
        }
    }

    /// Like `expectFailedOver`, for VMs that may have been moved twice (first to a host
    /// that then died too).
    static func expectFailedOverAfterTwoLosses(_ c: Cluster, _ vms: [(VMInfo, GuestStatus)], survivors: [LabHost],
                                               faultAt: Duration, probe: LabHost) async throws {
        let names = vms.map(\.0.spec.name)
        let survivorNames = Set(survivors.map { NodeName(unchecked: $0.name) })
        let moved = try await eventually(timeout: .seconds(40), every: .milliseconds(50)) {
            let now = c.sampler.current
            return names.allSatisfy { vm in (now[vm] ?? []).count == 1 && survivorNames.contains(now[vm]![0]) }
        }
        #expect(moved, "HA VMs not all running on survivors: \(c.sampler.current)")
        for (vm, before) in vms {
            print("stints of \(vm.spec.name): \(c.sampler.stints(vm.spec.name).map { "\($0.node) \($0.from - faultAt)…\($0.to - faultAt)" })")
            let after = try await waitForGuest(c, vm, from: probe, timeout: .seconds(60)) { $0.boot_id != before.boot_id }
            let a = try #require(after, "\(vm.spec.name) never answered after failover")
            #expect(a.start_counter >= before.flushed, "\(vm.spec.name): flushed \(before.flushed) before, restarted from \(a.start_counter)")
        }
        let list = try await VMLabTests.vmList(c.lab)
        let placements = Dictionary(uniqueKeysWithValues: list.compactMap { v in v.placement.map { (v.spec.name, $0) } })
        let violations = c.sampler.finish(haVMs: names, alive: survivorNames, placements: placements)
        #expect(violations.isEmpty, "\(violations)")
    }
}

/// Network faults that must change nothing: one cluster network of a host lost (carrier
/// down, or silently), and a flapping link. Heartbeats steer the routes; no lease is
/// lost, nothing fails over or restarts.
extension FailoverLabTests {
    @Test(.enabled(if: FailoverLabTests.canRun))
    func losingOneClusterNetworkAFlappingLinkOrALocalEtcdMemberMovesNothingRequiresNetns() async throws {
        try await FailoverLabTests.withCluster(index: 23) { c in
            let vm = try await FailoverLabTests.startVM(c, "net1", ha: "high", on: "n3", probe: 1)
            let leaderBefore = try await FailoverLabTests.leaderName(c.lab)
            let before = try #require(try await c.lab.guestStatus(from: 1, address: vm.0.spec.address!))
            // The VM's host, then the leader's host (if another): carrier loss, then silent.
            var hosts: [LabHost] = [3]
            if let l = leaderBefore, let h = LabHost(parsing: l.rawValue), h != 3 { hosts.append(h) }
            for host in hosts {
                for silent in [false, true] {
                    try await c.lab.off { try $0.cut(host: host, net: .cluster1, silent: silent) }
                    try await Task.sleep(for: .seconds(3))
                    try await c.lab.off { try $0.restore(host: host, net: .cluster1) }
                    try await Task.sleep(for: .seconds(1))
                }
            }
            // Flapping: down 500 ms every 2 s, five times.
            for _ in 0..<5 {
                try await c.lab.off { try $0.cut(host: 3, net: .cluster2, silent: true) }
                try await Task.sleep(for: .milliseconds(500))
                try await c.lab.off { try $0.restore(host: 3, net: .cluster2) }
                try await Task.sleep(for: .milliseconds(1500))
            }
            // The etcd member on the VM's host dies: its agent carries on through the others.
            try await c.lab.off { try $0.signal(host: 3, process: .etcd, SIGKILL) }
            try await Task.sleep(for: .seconds(4))
            _ = try await c.lab.off { try $0.startEtcd(host: 3) }
            try await Task.sleep(for: .seconds(1))
            let after = try #require(try await c.lab.guestStatus(from: 1, address: vm.0.spec.address!))
            #expect(after.boot_id == before.boot_id && after.counter > before.counter, "the guest restarted or stalled")
            #expect(c.sampler.stints(vm.0.spec.name).map(\.node.rawValue) == ["n3"], "the VM moved: \(c.sampler.stints(vm.0.spec.name))")
            let bad: Set<EventKind> = [.nodeLost, .vmFailover, .vmFenced, .vmCrashed, .leaderElected, .quorumRegained]
            let seen = try await FailoverLabTests.events(c.lab).filter { bad.contains($0.kind) && $0.atMillis > 0 }
            // One leaderElected at start-up is expected; none after.
            let afterStart = seen.filter { $0.kind != .leaderElected } + seen.filter { $0.kind == .leaderElected }.dropFirst()
            #expect(afterStart.isEmpty, "network faults changed the cluster: \(afterStart.map { "\($0.kind): \($0.message)" })")
            #expect(try await FailoverLabTests.leaderName(c.lab) == leaderBefore)
        }
    }
}

extension Array {
    func asyncMap<T>(_ f: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for e in self { out.append(try await f(e)) }
        return out
    }
}

import Foundation
import Synchronization
import Testing
import VigilClient
import VigilCore
import VigilStore
import VigilTestKit
@testable import VigilLab

/// Live migration on a 3-host lab with real QEMUs (TCG). Lab indexes 16–18 are these tests'.
@Suite(.serialized) struct MigrationLabTests {
    static var canRun: Bool { VMLabTests.canRun }

    static func withCluster(index: Int, memoryMiB: Int = 2048, _ body: (Lab) async throws -> Void) async throws {
        let spec = LabSpec(name: "m" + LabConfigFiles.randomHex(bytes: 3), index: index, nodes: 3, vigildPath: BuiltBinaries.vigild,
                           cpus: 4, memoryMiB: memoryMiB)
        let lab = try await Lab.upOffPool(spec)
        defer { _ = try? lab.down() }
        try await body(lab)
    }

    static func vm(_ lab: Lab, _ name: String) async throws -> VMInfo {
        try await lab.apiClient().get("/v1/vms/\(name)")
    }

    static func migration(_ lab: Lab, _ name: String) async throws -> MigrationRecord {
        try await lab.apiClient().get("/v1/vms/\(name)/migration")
    }

    /// Create and start a VM on `node`, wait until its guest answers from `from`.
    static func runningGuest(_ lab: Lab, _ name: String, on node: String, memory: String = "256M", from: LabHost) async throws -> (VMInfo, GuestStatus) {
        let r = try await lab.vigil(["vm", "create", name, "--memory", memory, "--disk", "16M", "--start", "--node", node])
        try #require(r.status == 0, "create \(name): \(r.stderr)")
        let info = try await vm(lab, name)
        let address = try #require(info.spec.address)
        var status: GuestStatus?
        let up = try await eventually(timeout: .seconds(90), every: .milliseconds(300)) {
            status = try await lab.guestStatus(from: from, address: address); return status != nil
        }
        try #require(up, "\(name) never answered at \(address)")
        return (info, status!)
    }

    /// Polls the guest every 50 ms over the client network (from the root namespace, which the
    /// lab attaches to it; in-process, so no process spawn skews the times) until stopped, on
    /// its own thread; records the longest time between two answers.
    final class Poller: Sendable {
        let state = Mutex<(maxGap: Duration, answers: Int, failures: Int, stop: Bool)>((.zero, 0, 0, false))
        func run(address: String) async {
            _ = try? await offPool {
                var last = ContinuousClock.now
                while !self.state.withLock({ $0.stop }) {
                    // A short timeout, as a poller would use: a request whose SYN was lost in the switch
                    // window fails after 0.5 s and the next poll gets through (rather than waiting
                    // for TCP's 1 s SYN retransmit).
                    let ok = HTTPProbe.get(host: address, port: 80, path: "/", timeout: .milliseconds(500))?.status == 200
                    let now = ContinuousClock.now
                    self.state.withLock { s in
                        if ok { s.maxGap = max(s.maxGap, now - last); s.answers += 1 } else { s.failures += 1 }
                    }
                    if ok { last = now }
                    Thread.sleep(forTimeInterval: 0.05)
                }
                self.state.withLock { s in s.maxGap = max(s.maxGap, ContinuousClock.now - last) }
            }
        }
        func stop() { state.withLock { $0.stop = true } }
    }

    @Test func qemuAndNetnsArePresentOnCI() throws {
        try Capabilities.require(Capabilities.hasQEMU, "qemu-system-x86_64")
        try Capabilities.require(Capabilities.hasNetns, "netns")
    }

    @Test(.enabled(if: canRun))
    func migratedGuestKeepsBootIdAndCounterAndStaysServedAndBadInputChangesNothingRequiresNetns() async throws {
        try await Self.withCluster(index: 16, memoryMiB: 1024) { lab in
            let (info, before) = try await Self.runningGuest(lab, "vm1", on: "n1", from: 3)
            let address = info.spec.address!
            let epoch = info.placement!.epoch
            let poller = Poller()
            async let polling: Void = poller.run(address: address)
            try await Task.sleep(for: .seconds(1))
            let r = try await lab.vigil(["vm", "migrate", "vm1", "--to", "n2", "--json"])
            try await Task.sleep(for: .seconds(2))
            poller.stop()
            await polling
            #expect(r.status == 0, "migrate: \(r.stderr) \(r.stdout.suffix(800))")
            let lines = r.stdout.split(separator: "\n")
            #expect(lines.count >= 2 && lines.last!.contains("\"phase\":\"done\""), "progress lines: \(r.stdout)")
            let moved = try await Self.vm(lab, "vm1")
            #expect(moved.placement?.node?.rawValue == "n2" && moved.placement?.epoch == epoch + 1 && moved.state == "running", "\(moved)")
            #expect(try await lab.qemuProcesses()["vm1"] == [2], "vm1 must run exactly once, on n2")
            let after = try #require(try await lab.guestStatus(from: 3, address: address))
            #expect(after.boot_id == before.boot_id, "the guest restarted instead of migrating")
            #expect(after.counter > before.counter && after.start_counter == before.start_counter)
            let (gap, answers, failures) = poller.state.withLock { ($0.maxGap, $0.answers, $0.failures) }
            #expect(gap < .seconds(1), "the guest was unreachable for \(gap) (answers \(answers), failures \(failures))")
            print("migration lab: longest time without an answer \(gap), \(answers) answers, \(failures) failed polls")
            let m = try await Self.migration(lab, "vm1")
            #expect(m.phase == .done && m.progress?.downtimeMs != nil && m.switchoverMs != nil, "\(m)")

            // Without --to the planner chooses (n1 or n3, never n2 itself).
            let r2 = try await lab.vigil(["vm", "migrate", "vm1"])
            #expect(r2.status == 0, "\(r2.stderr)")
            let third = try await Self.vm(lab, "vm1")
            #expect(third.placement?.node?.rawValue != "n2" && third.placement?.epoch == epoch + 2)
            let here = third.placement!.node!.rawValue
            let other = ["n1", "n3"].first { $0 != here }!
            let status = try #require(try await lab.guestStatus(from: 2, address: address))
            #expect(status.boot_id == before.boot_id)

            // Bad input: a clear error, nothing changed in the store or the processes.
            let etcd = try EtcdClient(endpoints: lab.etcdEndpoints)
            let keys = KeySpace(cluster: try ClusterName(lab.name))
            // A VM filling most of `other` (no room), and a stopped one.
            let (hog, _) = try await Self.runningGuest(lab, "hog", on: other, memory: "896M", from: 2)
            #expect(hog.placement?.node?.rawValue == other)
            #expect(try await lab.vigil(["vm", "create", "cold", "--memory", "128M", "--disk", "16M"]).status == 0)
            // Pause the third node through a drain (it runs nothing of vm1's, so nothing moves but hog).
            func snapshot() async throws -> [String: Int64] {
                Dictionary(uniqueKeysWithValues: try await etcd.getPrefix(keys.vmsPrefix).kvs.map { ($0.key, $0.modRevision) })
            }
            let baseline = try await snapshot(), procs = try await lab.qemuProcesses()
            for (args, expected) in [(["vm", "migrate", "vm1", "--to", here], "already runs on"),
                                     (["vm", "migrate", "vm1", "--to", "n9"], "unknown node"),
                                     (["vm", "migrate", "vm1", "--to", other], "no room"),
                                     (["vm", "migrate", "cold", "--to", "n2"], "not running"),
                                     (["vm", "migrate", "nope"], "no VM named"),
                                     (["vm", "migrate", "vm1", "--to", "N2"], "invalid node name"),
                                     (["vm", "migrate", "vm1", "--cancel"], "no migration in progress")] {
                let bad = try await lab.vigil(args)
                #expect(bad.status != 0 && bad.stderr.contains(expected), "\(args): \(bad.status) \(bad.stderr)")
            }
            #expect(try await snapshot() == baseline, "a refused request wrote to etcd")
            #expect(try await lab.qemuProcesses() == procs)
            // Paused node: drain n2 (empty) pauses it; migrating to it is then refused; resume.
            let drain = try await lab.vigil(["node", "drain", "n2"])
            #expect(drain.status == 0, "\(drain.stderr)")
            let paused = try await lab.vigil(["vm", "migrate", "vm1", "--to", "n2"])
            #expect(paused.status != 0 && paused.stderr.contains("paused"), "\(paused.stderr)")
            #expect(try await lab.vigil(["node", "resume", "n2"]).status == 0)
            #expect(try await lab.vigil(["vm", "migrate", "vm1", "--to", "n2"]).status == 0)
            #expect(try await lab.guestStatus(from: 3, address: address)?.boot_id == before.boot_id)
        }
    }

    @Test(.enabled(if: canRun))
    func dirtyingGuestConvergesWithControlAndIsCancelledAtTheTimeLimitWithoutRequiresNetns() async throws {
        try await Self.withCluster(index: 17) { lab in
            let (info, before) = try await Self.runningGuest(lab, "busy", on: "n1", from: 3)
            let address = info.spec.address!
            // 64 MiB/s over 64 MiB against a 16 MiB/s cap: 4x the bandwidth.
            _ = try await lab.off { try $0.exec(host: 3, ["curl", "-s", "-m", "2", "http://\(address)/dirty?rate=64&mem=64"]) }
            try await Task.sleep(for: .seconds(2))
            let r = try await lab.vigil(["vm", "migrate", "busy", "--to", "n2", "--bandwidth", "16", "--max-downtime", "5000", "--time-limit", "120"], timeout: 200)
            #expect(r.status == 0, "\(r.stderr.suffix(1500))")
            let m = try await Self.migration(lab, "busy")
            #expect(m.phase == .done, "\(m.phase) \(m.reason ?? "")")
            #expect(m.steps.contains { $0.contains("auto-converge") }, "convergence control did nothing: \(m.steps)")
            let events: EventPage = try await lab.apiClient().get("/v1/events?limit=200")
            #expect(events.events.contains { $0.event.kind == .migrationConvergence && $0.event.vm == "busy" })
            #expect(try await lab.qemuProcesses()["busy"] == [2])
            var after: GuestStatus?
            _ = try await eventually(timeout: .seconds(10), every: .milliseconds(200)) { after = try await lab.guestStatus(from: 3, address: address); return after != nil }
            #expect(after?.boot_id == before.boot_id)

            // Policy off: cancelled at its time limit; still running on the source, nothing on n3.
            let t0 = ContinuousClock.now
            let off = try await lab.vigil(["vm", "migrate", "busy", "--to", "n3", "--bandwidth", "16", "--no-converge", "--time-limit", "15"], timeout: 120)
            let took = ContinuousClock.now - t0
            #expect(off.status == 1, "\(off.status) \(off.stderr.suffix(800))")
            let c = try await Self.migration(lab, "busy")
            #expect(c.phase == .cancelled && c.reason?.contains("did not converge within 15 s") == true, "\(c.phase) \(c.reason ?? "")")
            #expect(took < .seconds(40), "cancel took \(took)")
            let still = try await Self.vm(lab, "busy")
            #expect(still.placement?.node?.rawValue == "n2" && still.placement?.epoch == info.placement!.epoch + 1)
            #expect(try await lab.qemuProcesses()["busy"] == [2], "nothing may be left on n3")
            #expect(try await lab.guestStatus(from: 3, address: address)?.boot_id == before.boot_id)
        }
    }

    @Test(.enabled(if: canRun))
    func cancelHalfwayAndKilledDestinationLeaveTheVMOnTheSourceRequiresNetns() async throws {
        try await Self.withCluster(index: 18) { lab in
            let (info, before) = try await Self.runningGuest(lab, "slow", on: "n1", from: 2)
            let address = info.spec.address!
            _ = try await lab.off { try $0.exec(host: 2, ["curl", "-s", "-m", "2", "http://\(address)/dirty?rate=64&mem=64"]) }
            func halfway() async throws -> Bool {
                try await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
                    let m = try await Self.migration(lab, "slow")
                    return m.phase == .copying && (m.progress?.transferredBytes ?? 0) > 32 << 20
                }
            }
            // Cancel halfway.
            var r = try await lab.vigil(["vm", "migrate", "slow", "--to", "n2", "--bandwidth", "16", "--no-converge", "--no-wait"])
            #expect(r.status == 5, "\(r.stderr)")
            try #require(try await halfway(), "never got halfway")
            r = try await lab.vigil(["vm", "migrate", "slow", "--cancel"])
            #expect(r.status == 0, "cancel: \(r.stderr)")
            var m = try await Self.migration(lab, "slow")
            #expect(m.phase == .cancelled)
            let gone = try await eventually(timeout: .seconds(5), every: .milliseconds(100)) { try await lab.qemuProcesses()["slow"] == [1] }
            let procsNow = try await lab.qemuProcesses()
            #expect(gone, "after cancel: \(procsNow)")
            let tap = try await lab.off { try $0.exec(host: 2, ["ip", "-o", "link", "show", "type", "tun"]) }
            #expect(!tap.stdout.contains("slow"), "tap left on n2: \(tap.stdout)")
            var vm = try await Self.vm(lab, "slow")
            #expect(vm.placement?.node?.rawValue == "n1" && vm.placement?.epoch == info.placement!.epoch && vm.state == "running")
            #expect(try await lab.guestStatus(from: 2, address: address)?.boot_id == before.boot_id)

            // Kill the destination host mid-migration: the VM keeps running on the source.
            r = try await lab.vigil(["vm", "migrate", "slow", "--to", "n3", "--bandwidth", "16", "--no-converge", "--no-wait"])
            #expect(r.status == 5, "\(r.stderr)")
            try #require(try await halfway(), "never got halfway")
            try await lab.off { try $0.killHost(host: 3) }
            let ended = try await eventually(timeout: .seconds(20), every: .milliseconds(200)) { try await Self.migration(lab, "slow").phase.isFinal }
            m = try await Self.migration(lab, "slow")
            #expect(ended && m.phase == .failed, "\(m.phase) \(m.reason ?? "")")
            vm = try await Self.vm(lab, "slow")
            #expect(vm.placement?.node?.rawValue == "n1" && vm.placement?.epoch == info.placement!.epoch && vm.state == "running")
            #expect(try await lab.qemuProcesses()["slow"] == [1])
            let status = try await lab.guestStatus(from: 2, address: address)
            #expect(status?.boot_id == before.boot_id && (status?.counter ?? 0) > before.counter)
        }
    }

    /// The source host dies mid-migration: the migration fails, HA restarts the VM on a
    /// survivor from its disk, and it runs exactly once. (The sampler skips the paused
    /// `-incoming` destination, which runs no guest; the end state counts every QEMU.)
    @Test(.enabled(if: canRun))
    func killingTheSourceHostMidMigrationLeavesTheVMToHAAndItRunsOnceRequiresNetns() async throws {
        try await Self.withCluster(index: 17) { lab in
            let (info, _) = try await Self.runningGuest(lab, "src", on: "n1", from: 2)
            let address = info.spec.address!
            _ = try await lab.off { try $0.exec(host: 2, ["curl", "-s", "-m", "2", "http://\(address)/dirty?rate=64&mem=64"]) }
            let r = try await lab.vigil(["vm", "migrate", "src", "--to", "n2", "--bandwidth", "16", "--no-converge", "--no-wait"])
            #expect(r.status == 5, "\(r.stderr)")
            let halfway = try await eventually(timeout: .seconds(30), every: .milliseconds(100)) {
                let m = try await Self.migration(lab, "src")
                return m.phase == .copying && (m.progress?.transferredBytes ?? 0) > 32 << 20
            }
            try #require(halfway, "never got halfway")
            let before = try #require(try await lab.guestStatus(from: 2, address: address))
            let sampler = ClusterSampler(lab: lab, ignoreIncoming: true)
            let task = sampler.start()
            defer { sampler.stop(); task.cancel() }
            try await lab.off { try $0.killHost(host: 1) }
            let survivors: Set<NodeName> = ["n2", "n3"].map(NodeName.init(unchecked:)).reduce(into: []) { $0.insert($1) }
            let moved = try await eventually(timeout: .seconds(40), every: .milliseconds(100)) {
                let now = sampler.current[VMName(unchecked: "src")] ?? []
                return now.count == 1 && survivors.contains(now[0])
            }
            #expect(moved, "src not running once on a survivor: \(sampler.current)")
            var after: GuestStatus?
            _ = try await eventually(timeout: .seconds(60), every: .milliseconds(300)) {
                after = try await lab.guestStatus(from: 2, address: address); return after.map { $0.boot_id != before.boot_id } ?? false
            }
            let a = try #require(after, "src never answered after the failover")
            #expect(a.start_counter >= before.flushed, "flushed \(before.flushed) before, restarted from \(a.start_counter)")
            let m = try await Self.migration(lab, "src")
            #expect(m.phase.isFinal && m.phase != .done, "\(m.phase) \(m.reason ?? "")")
            // Every QEMU of the VM, paused destinations included: exactly one is left.
            let procs = try await lab.qemuProcesses()["src"] ?? []
            #expect(procs.count == 1, "QEMUs of src: \(procs)")
            let vm = try await Self.vm(lab, "src")
            let placements = vm.placement.map { [VMName(unchecked: "src"): $0] } ?? [:]
            let violations = sampler.finish(haVMs: [VMName(unchecked: "src")], alive: survivors, placements: placements)
            #expect(violations.isEmpty, "\(violations)")
        }
    }

    @Test(.enabled(if: canRun))
    func drainMovesEveryVMWithoutRestartOrRefusesWhatWouldNotFitRequiresNetns() async throws {
        try await Self.withCluster(index: 16) { lab in
            var boots: [String: String] = [:], addresses: [String: String] = [:]
            for name in ["d1", "d2", "d3"] {
                let (info, status) = try await Self.runningGuest(lab, name, on: "n1", memory: "192M", from: 2)
                boots[name] = status.boot_id; addresses[name] = info.spec.address!
            }
            let etcd = try EtcdClient(endpoints: lab.etcdEndpoints)
            let keys = KeySpace(cluster: try ClusterName(lab.name))
            // With n2 and n3 paused nothing fits elsewhere: refused, listing every VM, nothing changed.
            #expect(try await lab.vigil(["node", "drain", "n2"]).status == 0)
            #expect(try await lab.vigil(["node", "drain", "n3"]).status == 0)
            let nodeBefore = try await etcd.get(keys.node(NodeName(unchecked: "n1")))?.modRevision
            var r = try await lab.vigil(["node", "drain", "n1"])
            #expect(r.status != 0 && r.stderr.contains("3 of 3 VMs would not fit") && r.stderr.contains("--force"), "\(r.status) \(r.stderr)")
            #expect(try await etcd.get(keys.node(NodeName(unchecked: "n1")))?.modRevision == nodeBefore, "a refused drain changed the node")
            // --force: paused, and it says what stays.
            r = try await lab.vigil(["node", "drain", "n1", "--force"])
            #expect(r.status == 0 && r.stdout.contains("staying on n1: d1") && r.stdout.contains("0 VM(s) moved, 3 stayed"), "\(r.stdout) \(r.stderr)")
            #expect(try await lab.qemuProcesses().filter { $0.key.hasPrefix("d") }.values.allSatisfy { $0 == [1] })
            // Room again: drain moves all three, none restarts.
            for n in ["n1", "n2", "n3"] { #expect(try await lab.vigil(["node", "resume", n]).status == 0) }
            r = try await lab.vigil(["node", "drain", "n1"], timeout: 300)
            #expect(r.status == 0, "\(r.stderr.suffix(1500))")
            let procs = try await lab.qemuProcesses()
            for name in ["d1", "d2", "d3"] {
                let v = try await Self.vm(lab, name)
                #expect(v.placement?.node?.rawValue != "n1" && v.state == "running", "\(name): \(v.state) on \(v.placement?.node?.rawValue ?? "-")")
                #expect(procs[name]?.count == 1 && procs[name]?.first != 1, "\(name): \(procs[name] ?? [])")
                #expect(v.runtime?.restarts == 0)
                let s = try await lab.guestStatus(from: 1, address: addresses[name]!)
                #expect(s?.boot_id == boots[name], "\(name) restarted")
            }
            let nodes: [NodeStatus] = try await lab.apiClient().get("/v1/nodes")
            #expect(nodes.first { $0.name.rawValue == "n1" }?.state == .paused)
            // A paused node takes no new VM.
            r = try await lab.vigil(["vm", "create", "late", "--memory", "128M", "--disk", "16M", "--start", "--node", "n1"])
            #expect(try await Self.vm(lab, "late").placement?.node?.rawValue != "n1")
            #expect(try await lab.vigil(["node", "resume", "n1"]).status == 0)
        }
    }
}

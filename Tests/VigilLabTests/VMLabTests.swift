import Foundation
import Testing
import VigilClient
import VigilCore
import VigilStore
import VigilTestKit
@testable import VigilLab

/// Real VMs (QEMU under TCG) on a 3-host lab. Lab indexes 4–5 are these tests'.
@Suite struct VMLabTests {
    static var canRun: Bool { Capabilities.hasNetns && Capabilities.hasEtcd && Capabilities.hasQEMU && BuiltBinaries.haveAgent && BuiltBinaries.haveCLI }

    static func withCluster(index: Int, cpus: Int = 2, memoryMiB: Int = 1024, _ body: (Lab) async throws -> Void) async throws {
        let spec = LabSpec(name: "v" + LabConfigFiles.randomHex(bytes: 3), index: index, nodes: 3, vigildPath: BuiltBinaries.vigild,
                           cpus: cpus, memoryMiB: memoryMiB)
        let lab = try await Lab.upOffPool(spec)
        defer { _ = try? lab.down() }
        try await body(lab)
    }

    static func vmList(_ lab: Lab) async throws -> [VMInfo] {
        let r = try await lab.vigil(["vm", "list", "--json"])
        guard r.status == 0 else { throw TestKitError("vm list failed: \(r.stderr)") }
        return try JSONDecoder().decode([VMInfo].self, from: Data(r.stdout.utf8))
    }

    @Test func qemuAndNetnsArePresentOnCI() throws {
        try Capabilities.require(Capabilities.hasQEMU, "qemu-system-x86_64")
        try Capabilities.require(Capabilities.hasNetns, "netns")
    }

    @Test(.enabled(if: canRun))
    func threeVMsRunAnswerAndMatchTheProcessesRequiresNetns() async throws {
        try await Self.withCluster(index: 4) { lab in
            for i in 1...3 {
                let r = try await lab.vigil(["vm", "create", "vm\(i)", "--memory", "256M", "--disk", "16M", "--start"])
                #expect(r.status == 0, "create vm\(i): \(r.stderr)")
            }
            let vms = try await Self.vmList(lab)
            #expect(vms.map(\.state) == ["running", "running", "running"], "\(vms.map { "\($0.spec.name): \($0.state) \($0.placement?.reason ?? "")" })")
            // Spread: 2 CPUs per host and 1 each, so every host runs one.
            #expect(Set(vms.compactMap(\.placement?.node)).count == 3)
            // What the API says matches /proc, host by host.
            let procs = try await lab.qemuProcesses()
            for v in vms {
                #expect(procs[v.spec.name.rawValue] == [LabHost(parsing: v.placement!.node!.rawValue)!], "\(v.spec.name): \(procs)")
            }
            // Each guest answers from another host's namespace, and its counter moves.
            for v in vms {
                let owner = LabHost(parsing: v.placement!.node!.rawValue)!
                let other = lab.hosts.first { $0 != owner }!
                let address = try #require(v.spec.address)
                var first: GuestStatus?
                let answered = try await eventually(timeout: .seconds(60), every: .milliseconds(500)) {
                    first = try await lab.guestStatus(from: other, address: address); return first != nil
                }
                try #require(answered, "\(v.spec.name) never answered at \(address) from \(other)")
                try await Task.sleep(for: .seconds(1))
                let second = try #require(try await lab.guestStatus(from: other, address: address))
                #expect(second.counter > first!.counter && second.boot_id == first!.boot_id)
            }
            // Stop, start, delete.
            var r = try await lab.vigil(["vm", "stop", "vm1", "--grace", "20"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try await lab.qemuProcesses()["vm1"] == nil)
            r = try await lab.vigil(["vm", "start", "vm1"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try await lab.qemuProcesses()["vm1"]?.count == 1)
            r = try await lab.vigil(["vm", "delete", "vm2"])
            #expect(r.status != 0 && r.stderr.contains("stop it first"), "deleting a running VM must be refused")
            r = try await lab.vigil(["vm", "kill", "vm2"])
            #expect(r.status == 0, "\(r.stderr)")
            r = try await lab.vigil(["vm", "delete", "vm2"])
            #expect(r.status == 0, "\(r.stderr)")
            #expect(try await Self.vmList(lab).map(\.spec.name.rawValue) == ["vm1", "vm3"])
            #expect(try await lab.qemuProcesses().keys.sorted() == ["vm1", "vm3"])
            let disks = try FileManager.default.contentsOfDirectory(atPath: lab.storageDirectory)
            #expect(!disks.contains { $0.hasPrefix("vm2-") }, "vm2's disk was left behind: \(disks)")
        }
    }

    @Test(.enabled(if: canRun))
    func killedQEMUIsRestartedInPlaceAndAgentRestartAdoptsRequiresNetns() async throws {
        try await Self.withCluster(index: 5) { lab in
            let r = try await lab.vigil(["vm", "create", "solo", "--memory", "256M", "--disk", "16M", "--start", "--node", "n2"])
            try #require(r.status == 0, "\(r.stderr)")
            let vm = try #require(try await Self.vmList(lab).first)
            let address = try #require(vm.spec.address)
            #expect(vm.placement?.node?.rawValue == "n2")
            var before: GuestStatus?
            _ = try await eventually(timeout: .seconds(60), every: .milliseconds(500)) {
                before = try await lab.guestStatus(from: 1, address: address); return before != nil
            }
            try await Task.sleep(for: .seconds(1))
            let seen = try #require(try await lab.guestStatus(from: 1, address: address))

            // kill -9 its QEMU: restarted on the same node, with an event; no flushed write lost.
            let pid = try #require(vm.runtime?.pid)
            kill(pid, SIGKILL)
            var after: GuestStatus?
            let back = try await eventually(timeout: .seconds(60), every: .milliseconds(500)) {
                after = try await lab.guestStatus(from: 1, address: address)
                return after != nil && after!.boot_id != seen.boot_id
            }
            try #require(back, "the guest did not come back after its QEMU was killed")
            #expect(after!.start_counter >= seen.flushed, "lost an acknowledged write: flushed \(seen.flushed), restarted from \(after!.start_counter)")
            let restarted = try await Self.vmList(lab).first!
            #expect(restarted.placement?.node?.rawValue == "n2" && restarted.runtime?.restarts == 1)
            let events: EventPage = try await lab.apiClient().get("/v1/events?limit=100")
            #expect(events.events.contains { $0.event.kind == .vmCrashed && $0.event.vm == "solo" })
            #expect(events.events.contains { $0.event.kind == .vmRestarted && $0.event.vm == "solo" })

            // Restart vigild on n2: the VM keeps running (same boot id) and is adopted.
            let bootID = after!.boot_id
            let qemuPID = try #require(restarted.runtime?.pid)
            try await lab.off { try $0.signal(host: 2, process: .vigild, SIGTERM) }
            try await Task.sleep(for: .seconds(1))
            _ = try await lab.off { try $0.startVigild(host: 2) }
            let adopted = try await eventually(timeout: .seconds(20), every: .milliseconds(500)) {
                let e: EventPage = try await lab.apiClient().get("/v1/events?limit=100")
                return e.events.contains { $0.event.kind == .vmAdopted && $0.event.vm == "solo" }
            }
            #expect(adopted, "no vm.adopted event after the agent restart")
            // The guest may be slow to answer on a loaded machine; a restarted one would show another boot id.
            var stillAnswer: GuestStatus?
            _ = try await eventually(timeout: .seconds(10), every: .milliseconds(300)) {
                stillAnswer = try await lab.guestStatus(from: 1, address: address); return stillAnswer != nil
            }
            if stillAnswer == nil {
                let log = (try? String(contentsOfFile: lab.logFile(host: 2, process: .vigild), encoding: .utf8)) ?? ""
                print("n2 vigild log (tail):\n" + log.split(separator: "\n").suffix(40).joined(separator: "\n"))
            }
            let still = try #require(stillAnswer)
            #expect(still.boot_id == bootID, "the guest rebooted across an agent restart")
            #expect(try await Self.vmList(lab).first?.runtime?.pid == qemuPID)
        }
    }

    @Test(.enabled(if: canRun))
    func badVMRequestsAreRefusedAndLeaveNothingBehindRequiresNetns() async throws {
        try await Self.withCluster(index: 6) { lab in
            let etcd = try EtcdClient(endpoints: lab.etcdEndpoints)
            let keys = KeySpace(cluster: try ClusterName(lab.name))
            func vmKeys() async throws -> [String] { try await etcd.getPrefix(keys.vmsPrefix).kvs.map(\.key) }
            func disks() throws -> [String] { (try? FileManager.default.contentsOfDirectory(atPath: lab.storageDirectory)) ?? [] }

            // Larger than any node: accepted but pending, with the reason.
            var r = try await lab.vigil(["vm", "create", "huge", "--cpus", "16", "--memory", "256M", "--start"])
            #expect(r.status == 5 && r.stderr.contains("no node has room"), "\(r.status) \(r.stderr)")
            let huge = try await Self.vmList(lab).first { $0.spec.name.rawValue == "huge" }
            #expect(huge?.state == "pending" && huge?.placement?.reason?.contains("16 CPUs") == true)
            let baselineKeys = try await vmKeys(), baselineDisks = try disks()

            for args in [["vm", "create", "huge"], ["vm", "create", "Bad_Name"], ["vm", "create", "x", "--memory", "12Q"],
                         ["vm", "create", "x", "--memory", "1M"], ["vm", "create", "x", "--disk", "0"], ["vm", "create", "x", "--cpus", "0"],
                         ["vm", "create", "x", "--node", "n9"], ["vm", "create", "x", "--ha-priority", "urgent"], ["vm", "start", "nope"],
                         ["vm", "delete", "nope"], ["vm", "show", "UPPER"]] {
                r = try await lab.vigil(args)
                #expect(r.status != 0, "\(args) succeeded")
                #expect(!r.stderr.isEmpty, "\(args) said nothing")
            }
            #expect(try await vmKeys() == baselineKeys, "a refused request wrote to etcd")
            #expect(try disks() == baselineDisks, "a refused request left a disk file")
        }
    }
}

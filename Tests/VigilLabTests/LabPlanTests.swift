import Foundation
import Testing
import Yams
@testable import VigilLab

/// The address plan, the spec's rules and the config files: pure, no root needed.
@Suite struct LabPlanTests {
    @Test func addressesAndNamesFollowTheContract() {
        let plan = LabAddressPlan(lab: "demo", index: 2, mode: .namespaces)
        #expect(plan.address(3, on: .cluster1) == "10.77.17.3")
        #expect(plan.address(3, on: .storage2) == "10.77.21.3")
        #expect(plan.clusterAddress(3) == "10.77.22.3")
        #expect(plan.clusterAddress(.witness) == "10.77.22.200")
        #expect(plan.rootAddress(on: .client) == "10.77.19.254")
        #expect(plan.block == "10.77.16.0/21")
        #expect(plan.namespace(1) == "demo-n1")
        #expect(plan.namespace(.witness) == "demo-w")
        #expect(plan.switchNamespace == "demo-sw")
        #expect(plan.switchPort(2, .cluster2) == "n2-c2")
        #expect(plan.hostDevice(.cluster2) == "cluster2")
        #expect(plan.rootDevice(.cluster1) == "vl2-c1")
        #expect(plan.etcdClientURL(1) == "http://10.77.22.1:2379")
        let loop = LabAddressPlan(lab: "demo", index: 3, mode: .loopback)
        #expect(loop.clusterAddress(2) == "127.0.0.32")
        #expect(loop.clusterAddress(.witness) == "127.0.0.39")
    }

    @Test func namespaceOwnershipMatchesExactNamesOnly() {
        let plan = LabAddressPlan(lab: "demo", index: 0, mode: .namespaces)
        for name in ["demo-n1", "demo-n12", "demo-sw", "demo-w"] { #expect(plan.ownsNamespace(name), "\(name)") }
        for name in ["demo2-n1", "demo-n1-n1", "demo-n", "demo-n01", "demo-x", "demo"] { #expect(!plan.ownsNamespace(name), "\(name)") }
    }

    @Test func etcdMembersAreOneThreeOrFiveWithAWitnessForTwoHosts() {
        func members(_ n: Int) -> [LabHost] { LabSpec(nodes: n).etcdMembers }
        #expect(members(1) == [1])
        #expect(members(2) == [1, 2, .witness])
        #expect(members(3) == [1, 2, 3])
        #expect(members(4) == [1, 2, 3])
        #expect(members(5) == [1, 2, 3, 4, 5])
        #expect(members(9) == [1, 2, 3, 4, 5])
        #expect(LabSpec(nodes: 2).machines == [1, 2, .witness])
    }

    @Test func badSpecsAreRefusedWithTheFieldNamed() {
        #expect(throws: LabError.self) { try LabSpec(nodes: 0).validate() }
        #expect(throws: LabError.self) { try LabSpec(nodes: 10).validate() }
        #expect(throws: LabError.self) { try LabSpec(index: 25).validate() }
        #expect(throws: LabError.self) { try LabSpec(name: "Bad_Name").validate() }
        #expect(throws: LabError.self) { try LabSpec(name: "1abc").validate() }
        #expect(throws: LabError.self) { try LabSpec(leaseTTL: .milliseconds(1500)).validate() }
        #expect(throws: LabError.self) { try LabSpec(leaseTTL: .seconds(0)).validate() }
        do {
            try LabSpec(nodes: 12).validate()
        } catch let error as LabError {
            #expect(error.code == .invalidSpec)
            #expect(error.message.contains("--nodes 12"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(throws: Never.self) { try LabSpec(name: "t-1", index: 15, nodes: 9).validate() }
    }

    @Test func hostAndNetworkNamesParse() {
        #expect(LabHost(parsing: "n3") == 3)
        #expect(LabHost(parsing: "3") == 3)
        #expect(LabHost(parsing: "w") == .witness)
        #expect(LabHost(parsing: "x1") == nil)
        #expect(LabNetwork(parsing: "c2") == .cluster2)
        #expect(LabNetwork(parsing: "storage1") == .storage1)
        #expect(LabNetwork(parsing: "eth0") == nil)
    }

    @Test func agentConfigHasEveryContractFieldAndOwnMemberFirst() throws {
        let record = LabRecord(
            spec: LabSpec(name: "demo", index: 0, nodes: 4, leaseTTL: .seconds(2)), etcdBinary: "/usr/bin/etcd", vigildBinary: nil,
            token: "1234567812345678", clusterKey: "12345678e1" + String(repeating: "0", count: 54),
            etcdClusterToken: "demo-x", createdAt: Date())
        var config = LabConfigFiles.agentConfig(for: 2, record: record)
        config.guest = nil
        // With a guest image, the same file plus `guest: {kernel, initrd}`, also parsed back.
        var withGuest = config
        withGuest.guest = .init(kernel: "/repo/guest/out/vmlinux", initrd: "/repo/guest/out/initramfs.cpio.gz")
        #expect(try YAMLDecoder().decode(AgentConfigFile.self, from: LabConfigFiles.render(withGuest)) == withGuest)
        let yaml = LabConfigFiles.render(config)
        // What the lab writes parses back to the same values.
        #expect(try YAMLDecoder().decode(AgentConfigFile.self, from: yaml) == config)
        #expect(yaml.contains("leaseTTL: 2.0\n"))
        #expect(yaml.contains("  - {name: client, role: client, address: 10.77.3.2, prefix: 24, bridge: brclient}\n"))
        let node = try #require(try Yams.load(yaml: yaml) as? [String: Any])
        #expect(Set(node.keys) == ["cluster", "node", "token", "clusterKey", "clusterAddress", "stateDir", "storageDir", "etcd", "api", "heartbeat", "networks", "capacity"])
        #expect(node["cluster"] as? String == "demo")
        #expect(node["node"] as? String == "n2")
        #expect(node["clusterAddress"] as? String == "10.77.6.2")
        let etcd = try #require(node["etcd"] as? [String: Any])
        #expect(etcd["endpoints"] as? [String] == ["http://10.77.6.2:2379", "http://10.77.6.3:2379", "http://10.77.6.1:2379"])
        #expect(etcd["leaseTTL"] as? Double == 2.0)
        let networks = try #require(node["networks"] as? [[String: Any]])
        #expect(networks.map { $0["name"] as? String } == ["cluster1", "cluster2", "client", "storage1", "storage2"])
        #expect(networks[2]["bridge"] as? String == "brclient")
        #expect(networks[2]["address"] as? String == "10.77.3.2")
        #expect(networks[0]["bridge"] == nil)
        // n4 has no member: it starts at member (4-1) % 3 = n1.
        let n4 = LabConfigFiles.agentConfig(for: 4, record: record)
        #expect(n4.etcd.endpoints.first == "http://10.77.6.1:2379")
        let client = LabConfigFiles.clientConfig(record: record)
        #expect(client.endpoints == (1...4).map { "http://10.77.6.\($0):7480" })
        #expect(try YAMLDecoder().decode(ClientConfigFile.self, from: LabConfigFiles.render(client)) == client)
    }

    @Test func prefixOverlapDetectsCollisions() throws {
        let block = try #require(IPv4Prefix("10.77.8.0/21"))
        #expect(try #require(IPv4Prefix("10.0.0.0/8")).overlaps(block))
        #expect(try #require(IPv4Prefix("10.77.15.254")).overlaps(block))
        #expect(!(try #require(IPv4Prefix("10.77.16.0/24")).overlaps(block)))
        #expect(!(try #require(IPv4Prefix("192.0.2.0/24")).overlaps(block)))
    }
}

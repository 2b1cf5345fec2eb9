import Foundation
import Testing
import VigilClient
import VigilCore
import VigilStore
import VigilTestKit
@testable import VigilLab

/// A real 3-host cluster in network namespaces: etcd members and vigild agents.
/// Lab indexes 1–3 are these tests' (serialized: the NetFT test reuses index 1).
@Suite(.serialized) struct ClusterLabTests {
    static let ttl: Duration = .seconds(2)

    static func withCluster(index: Int, _ body: (Lab, EtcdClient, KeySpace) async throws -> Void) async throws {
        let spec = LabSpec(name: "c" + LabConfigFiles.randomHex(bytes: 3), index: index, nodes: 3, vigildPath: BuiltBinaries.vigild)
        let lab = try await Lab.upOffPool(spec)
        defer { _ = try? lab.down() }
        let etcd = try EtcdClient(endpoints: lab.etcdEndpoints)
        let keys = KeySpace(cluster: try ClusterName(lab.name))
        // Everyone alive, someone leads, and has said so in the event log (a test that
        // looks for leader changes after a fault must not catch the first election).
        let ready = try await eventually(timeout: .seconds(15)) {
            let alive = try await etcd.getPrefix(keys.alivePrefix).kvs.count
            let leader = try await etcd.get(keys.leader)
            let elected = try await etcd.getPrefix(keys.eventsPrefix).kvs.contains { kv in
                (try? kv.decode(ClusterEvent.self))?.kind == .leaderElected
            }
            return alive == 3 && leader != nil && elected
        }
        try #require(ready, "the cluster did not come up: see \(lab.directory)")
        try await body(lab, etcd, keys)
    }

    static func leader(_ etcd: EtcdClient, _ keys: KeySpace) async throws -> NodeName? {
        try await etcd.get(keys.leader).flatMap { try? $0.decode(LeaderRecord.self) }?.node
    }

    static func client(_ lab: Lab) throws -> APIClient { APIClient(config: try ClientConfig.parse(file: lab.clientConfigPath)) }

    @Test func netnsAndAgentArePresentOnCI() throws {
        try Capabilities.require(Capabilities.hasNetns, "netns")
        try Capabilities.require(BuiltBinaries.haveAgent, "vigild built at \(BuiltBinaries.vigild)")
    }

    @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd && BuiltBinaries.haveAgent))
    func killedLeaderIsReplacedWithinTTLPlusOneSecondAndRejoinsRequiresNetns() async throws {
        try await Self.withCluster(index: 1) { lab, etcd, keys in
            let old = try #require(try await Self.leader(etcd, keys))
            let host = try #require(LabHost(parsing: old.rawValue))
            // Timed by the cluster's own event stamps (wall clock of the agents, which run at
            // nice -10), not by this test's polling, which a loaded machine can delay.
            let killedAtMillis = Int64(Date().timeIntervalSince1970 * 1000)
            try await lab.off { try $0.signal(host: host, process: .vigild, SIGKILL) }
            var elected: ClusterEvent?, lost: ClusterEvent?
            let seen = try await eventually(timeout: .seconds(20), every: .milliseconds(100)) {
                let page: EventPage = try await Self.client(lab).get("/v1/events?limit=100")
                let after = page.events.map(\.event).filter { $0.atMillis >= killedAtMillis }
                elected = after.first { $0.kind == .leaderElected && $0.node != old }
                lost = after.first { $0.kind == .nodeLost && $0.node == old }
                return elected != nil && lost != nil
            }
            try #require(seen, "no leader.elected / node.lost events after killing \(old)")
            let newLeaderMs = elected!.atMillis - killedAtMillis, lostMs = lost!.atMillis - killedAtMillis
            print("leader kill: new leader after \(newLeaderMs) ms, \(old) declared lost after \(lostMs) ms (TTL \(Self.ttl))")
            #expect(newLeaderMs <= 3000, "new leader after \(newLeaderMs) ms > TTL + 1 s")
            #expect(lostMs <= 3000, "\(old) declared lost after \(lostMs) ms > TTL + 1 s")
            #expect(try await etcd.get(keys.alive(old)) == nil)
            // Restarted, it rejoins and shows as up.
            _ = try await lab.off { try $0.startVigild(host: host) }
            let rejoined = try await eventually(timeout: .seconds(15)) {
                let s: ClusterStatus = try await Self.client(lab).get("/v1/status")
                return s.nodes.count == 3 && s.nodes.allSatisfy { $0.state == .up }
            }
            #expect(rejoined, "\(old) did not rejoin")
        }
    }

    @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd && BuiltBinaries.haveAgent))
    func oneLostEtcdMemberIsSurvivedAndTwoMeanNoQuorumAndNoLeaderRequiresNetns() async throws {
        try await Self.withCluster(index: 2) { lab, etcd, keys in
            let before = try await etcd.getPrefix(keys.alivePrefix).kvs.map(\.createRevision)
            // The harder case: lose the etcd *leader* (an election follows, ~1–1.6 s here).
            let first: ClusterStatus = try await Self.client(lab).get("/v1/status")
            let leaderIndex = first.etcdMembers.firstIndex(where: \.isLeader) ?? 2
            let victim = LabHost(leaderIndex + 1), second = LabHost(leaderIndex == 0 ? 2 : 1)
            try await lab.off { try $0.signal(host: victim, process: .etcd, SIGKILL) }
            // Five seconds (2.5 TTLs) later every node still holds the same lease, and the API answers.
            try await Task.sleep(for: .seconds(5))
            let after = try await etcd.getPrefix(keys.alivePrefix).kvs.map(\.createRevision)
            #expect(after == before, "a node lost its lease although a majority of etcd was up")
            let s: ClusterStatus = try await Self.client(lab).get("/v1/status")
            #expect(s.quorum && s.leader != nil)
            #expect(s.etcdMembers.filter(\.healthy).count == 2)
            #expect(s.nodes.allSatisfy { $0.state == .up })

            try await lab.off { try $0.signal(host: second, process: .etcd, SIGKILL) }
            let result = try await lab.vigil(["status"], timeout: 30)
            #expect(result.status == 2, "vigil status exit \(result.status): \(result.stdout) \(result.stderr)")
            #expect(result.stderr.contains("NO QUORUM"))
            // Within a TTL (plus a renewal period) nobody claims to lead.
            let client = try Self.client(lab)
            let nobodyLeads = try await eventually(timeout: Self.ttl + .seconds(2)) {
                var any = false
                for endpoint in lab.apiEndpoints {
                    let one = APIClient(config: ClientConfig(endpoints: [endpoint], token: client.config.token))
                    let local: LocalStatus = try await one.get("/v1/local")
                    any = any || local.isLeader || local.hasLease
                }
                return !any
            }
            #expect(nobodyLeads, "a vigild still claims leadership (or a lease) without quorum")
        }
    }

    @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd && BuiltBinaries.haveAgent && BuiltBinaries.haveCLI))
    func badInputIsRefusedClearlyAndWritesNothingRequiresNetns() async throws {
        try await Self.withCluster(index: 3) { lab, etcd, keys in
            var r = try await lab.vigil(["nodes", "n9"])
            #expect(r.status == 1 && r.stderr.contains("unknown node 'n9'"), "\(r.status) \(r.stderr)")
            r = try await lab.vigil(["nodes", "N_9"])
            #expect(r.status == 64 && r.stderr.contains("invalid node name"), "\(r.status) \(r.stderr)")
            r = try await lab.vigil(["status", "--token", "wrong-token-value"])
            #expect(r.status == 1 && r.stderr.contains("wrong bearer token"), "\(r.status) \(r.stderr)")
            r = try await offPool { try runProcess(BuiltBinaries.vigil, ["status", "--endpoint", "http://127.0.0.1:9", "--token", "x"], timeout: 30) }
            #expect(r.status == 3 && r.stderr.contains("no Vigil node answered"), "\(r.status) \(r.stderr)")

            // A second vigild claiming n1's name is refused, and changes nothing.
            let before = try #require(try await etcd.get(keys.node(NodeName(unchecked: "n1"))))
            let ns = try #require(lab.namespace(1))
            let config = lab.configPath(host: 1)
            let dup = try await offPool {
                try runProcess("/usr/sbin/ip", ["netns", "exec", ns, BuiltBinaries.vigild, "--config", config, "--api-port", "7499",
                                                "--state-dir", "/tmp/vigil-dup-\(getpid())"], timeout: 30)
            }
            #expect(dup.status != 0, "a second vigild named n1 kept running")
            #expect(dup.stderr.contains("already alive"), "\(dup.stderr.suffix(400))")
            let after = try #require(try await etcd.get(keys.node(NodeName(unchecked: "n1"))))
            #expect(after.modRevision == before.modRevision, "the duplicate rewrote nodes/n1")
            let s: ClusterStatus = try await Self.client(lab).get("/v1/status")
            #expect(s.nodes.first { $0.name.rawValue == "n1" }?.state == .up)
        }
    }

    /// NetFT: a silent loss of one cluster network (carrier up, nothing gets through) is seen
    /// by the heartbeats, routes move to the other network, and nobody loses its lease.
    @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd && BuiltBinaries.haveAgent))
    func silentLossOfOneClusterNetworkIsSeenAndCostsNoLeaseRequiresNetns() async throws {
        try await Self.withCluster(index: 1) { lab, etcd, keys in
            let leases = try await etcd.getPrefix(keys.alivePrefix).kvs.map(\.lease)
            let cutAtMillis = Int64(Date().timeIntervalSince1970 * 1000)
            try await lab.off { try $0.cut(host: 3, net: .cluster1, silent: true) }
            // Every node sees n3's cluster1 down (n3 sees everyone's), and steers around it.
            let seen = try await eventually(timeout: .seconds(8), every: .milliseconds(200)) {
                let s: ClusterStatus = try await Self.client(lab).get("/v1/status")
                let n1 = s.nodes.first { $0.name.rawValue == "n1" }?.heartbeats?["n3"]
                let n3 = s.nodes.first { $0.name.rawValue == "n3" }?.heartbeats?["n1"]
                return n1?["cluster1"] == false && n1?["cluster2"] == true && n3?["cluster1"] == false
            }
            #expect(seen, "the heartbeat mesh did not report n3's cluster1 down")
            let device = try await lab.off { try $0.routeDevice(from: 1, to: $0.clusterAddress(3)) }
            #expect(device == "cluster2", "n1 still routes to n3 over \(device ?? "nothing")")
            try await Task.sleep(for: .seconds(3))  // more than a TTL
            #expect(try await etcd.getPrefix(keys.alivePrefix).kvs.map(\.lease) == leases, "a node lost its lease over one lost network")
            let page: EventPage = try await Self.client(lab).get("/v1/events?limit=100")
            let losses = page.events.filter { $0.event.atMillis >= cutAtMillis && ($0.event.kind == .nodeLost || $0.event.kind == .leaderElected) }
            #expect(losses.isEmpty, "one lost network caused: \(losses.map(\.event.message))")
            try await lab.off { try $0.restore(host: 3, net: .cluster1) }
            let healed = try await eventually(timeout: .seconds(10), every: .milliseconds(200)) {
                let s: ClusterStatus = try await Self.client(lab).get("/v1/status")
                return s.nodes.allSatisfy { n in (n.heartbeats ?? [:]).values.allSatisfy { $0.values.allSatisfy { $0 } } }
            }
            #expect(healed, "links did not come back up after restore")
        }
    }
}

import NIOCore
import NIOPosix
import Testing
import VigilCore
@testable import VigilHeartbeat

/// Three services on loopback: cluster1 on 127.0.101.i, cluster2 on 127.0.102.i, a fake
/// route table. No root needed.
@Suite(.serialized) struct HeartbeatServiceLoopbackTests {
    struct Node {
        let record: NodeRecord
        let service: HeartbeatService
        let routes: FakeRouteTable
        let peers: AsyncStream<[NodeRecord]>.Continuation
    }

    static func record(_ i: Int, cluster1: String? = nil) -> NodeRecord {
        NodeRecord(name: NodeName(unchecked: "n\(i)"), clusterAddress: "127.0.106.\(i)", apiPort: 7480, networks: [
            NetworkAttachment(name: "cluster1", role: .cluster, address: cluster1 ?? "127.0.101.\(i)", prefix: 24),
            NetworkAttachment(name: "cluster2", role: .cluster, address: "127.0.102.\(i)", prefix: 24),
            NetworkAttachment(name: "client", role: .client, address: "127.0.103.\(i)", prefix: 24),
        ], capacity: Capacity(cpus: 1, memoryMiB: 512))
    }

    static func makeNodes(count: Int, port: Int) -> [Node] {
        let records = (1...count).map { record($0) }
        return records.map { record in
            let (stream, continuation) = AsyncStream.makeStream(of: [NodeRecord].self)
            continuation.yield(records)
            let routes = FakeRouteTable()
            let config = HeartbeatConfiguration(cluster: testCluster, node: record.name, key: testKey,
                                                clusterAddress: record.clusterAddress, networks: record.networks, port: port,
                                                interval: .milliseconds(50), missThreshold: 3, recoveryCount: 2,
                                                preferredHold: .milliseconds(500))
            let service = HeartbeatService(configuration: config, peers: stream, routeTable: routes,
                                           logger: testLogger("hb.\(record.name)"))
            return Node(record: record, service: service, routes: routes, peers: continuation)
        }
    }

    static func allLinksUp(_ nodes: [Node]) -> Bool {
        nodes.allSatisfy { node in
            let s = node.service.snapshot
            return s.peers.count == nodes.count - 1 && s.peers.allSatisfy { $0.links.count == 2 && $0.links.allSatisfy(\.up) }
        }
    }

    @Test func meshComesUpOnBothNetworksThenSteersAroundAOneWayLossAndBack() async throws {
        let port = Int.random(in: 20_000..<30_000)
        let nodes = Self.makeNodes(count: 3, port: port)
        await withThrowingTaskGroup(of: Void.self) { group in
            for node in nodes { group.addTask { try await node.service.run() } }
            defer { group.cancelAll() }

            #expect(await eventually(timeout: .seconds(5)) { Self.allLinksUp(nodes) })
            for node in nodes {
                let s = node.service.snapshot
                #expect(s.peers.allSatisfy { $0.route == "cluster1" }, "\(s)")
                #expect(s.networks.allSatisfy { $0.bound && $0.sent > 0 && $0.received > 0 && $0.authenticationFailures == 0 })
                #expect(!s.networks.contains { $0.name == "client" })
            }
            let (n1, n2) = (nodes[0], nodes[1])
            #expect(n2.routes.all.contains(RouteRequest(peer: n1.record.name, network: "cluster1", destination: "127.0.106.1",
                                                        gateway: "127.0.101.1", localAddress: "127.0.101.2", source: "127.0.106.2")))

            // n1 now believes n2's cluster1 address is elsewhere: n2 stops hearing n1 on cluster1
            // (a one-way silent loss) and must steer its route to n1 onto cluster2.
            let clock = ContinuousClock()
            let changesBefore = n2.service.snapshot.peers.first { $0.name == n1.record.name }!.routeChanges
            let cutAt = clock.now
            n1.peers.yield([Self.record(1), Self.record(2, cluster1: "127.0.101.250"), Self.record(3)])
            #expect(await eventually(timeout: .seconds(3)) { n2.service.snapshot.route(n1.record.name) == "cluster2" })
            let detected = cutAt.duration(to: clock.now)
            #expect(detected < .seconds(1), "3 × 50 ms miss threshold, took \(detected)")
            #expect(n2.service.snapshot.link(n1.record.name, "cluster1")?.up == false)
            #expect(await eventually(timeout: .seconds(1)) {
                n2.routes.all.last == RouteRequest(peer: n1.record.name, network: "cluster2", destination: "127.0.106.1",
                                                   gateway: "127.0.102.1", localAddress: "127.0.102.2", source: "127.0.106.2")
            })
            #expect(n1.service.snapshot.link(n2.record.name, "cluster1")?.up == true, "the other direction still works")
            #expect(n1.routes.all.last { $0.peer == n2.record.name }?.gateway == "127.0.101.250",
                    "a routed peer whose address changed is routed again with the new address")
            #expect(nodes[2].service.snapshot.peers.allSatisfy { $0.route == "cluster1" })

            // Heal: back to cluster1, but not before the 500 ms hold.
            let healedAt = clock.now
            n1.peers.yield(nodes.map(\.record))
            #expect(await eventually(timeout: .seconds(3)) { n2.service.snapshot.route(n1.record.name) == "cluster1" })
            let back = healedAt.duration(to: clock.now)
            #expect(back >= .milliseconds(500) + .milliseconds(50), "recovery (2 heartbeats) plus hold, took \(back)")
            #expect(n2.service.snapshot.peers.first { $0.name == n1.record.name }?.routeChanges == changesBefore + 2)
        }
    }

    @Test func forgedAndForeignDatagramsAreDroppedAndCounted() async throws {
        let port = Int.random(in: 20_000..<30_000)
        let nodes = Self.makeNodes(count: 2, port: port)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for node in nodes { group.addTask { try await node.service.run() } }
            defer { group.cancelAll() }
            #expect(await eventually(timeout: .seconds(5)) { Self.allLinksUp(nodes) })

            let before = nodes[1].service.snapshot.network("cluster1")!
            let wrongKey = HeartbeatCodec(key: try HeartbeatKey(hex: String(repeating: "77", count: 32)), cluster: testCluster)
            let forged = HeartbeatMessage(cluster: testCluster, sender: nodes[0].record.name, network: "cluster1",
                                          sequence: HeartbeatSequence(incarnation: .max, number: 1), sentAt: 0)
            let sender = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .bind(host: "127.0.101.99", port: 0).get()
            let target = try SocketAddress(ipAddress: "127.0.101.2", port: port)
            for _ in 0..<5 {
                try await sender.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: wrongKey.encode(forged))).get()
            }
            try await sender.writeAndFlush(AddressedEnvelope(remoteAddress: target, data: ByteBuffer(string: "hello"))).get()
            try await sender.close().get()

            #expect(await eventually(timeout: .seconds(2)) {
                let c = nodes[1].service.snapshot.network("cluster1")!
                return c.authenticationFailures == before.authenticationFailures + 5 && c.rejected == before.rejected + 1
            })
            let link = nodes[1].service.snapshot.link(nodes[0].record.name, "cluster1")!
            #expect(link.up && link.ignored == 0, "a forged heartbeat with a huge sequence must not poison the link")
            try await Task.sleep(for: .milliseconds(200))
            #expect(nodes[1].service.snapshot.link(nodes[0].record.name, "cluster1")!.up)
        }
    }

    @Test func runFailsWithAClearErrorWhenTheAddressCannotBeBound() async throws {
        var record = Self.record(1)
        record.networks[0].address = "192.0.2.1"
        let (stream, _) = AsyncStream.makeStream(of: [NodeRecord].self)
        let service = HeartbeatService(
            configuration: HeartbeatConfiguration(cluster: testCluster, node: record.name, key: testKey,
                                                  clusterAddress: record.clusterAddress, networks: record.networks, port: 7481),
            peers: stream, routeTable: FakeRouteTable(), logger: testLogger("hb"))
        await #expect { try await service.run() } throws: { error in
            "\(error)".contains("cluster1") && "\(error)".contains("192.0.2.1")
        }
    }
}

import Foundation
import Synchronization
import Testing
import VigilCore
import VigilTestKit
@testable import VigilHeartbeat

/// Times every route change it passes on to the real table.
final class TimedRouteTable: RouteTable {
    let inner: any RouteTable
    let log = Mutex<[(request: RouteRequest, started: ContinuousClock.Instant, finished: ContinuousClock.Instant)]>([])
    init(_ inner: any RouteTable) { self.inner = inner }
    func steer(_ request: RouteRequest) async throws {
        let started = ContinuousClock.now
        try await inner.steer(request)
        log.withLock { $0.append((request, started, .now)) }
    }
    func firstSteer(onto network: String, after instant: ContinuousClock.Instant) -> (started: ContinuousClock.Instant, finished: ContinuousClock.Instant)? {
        log.withLock { $0.first { $0.request.network == network && $0.started >= instant }.map { ($0.started, $0.finished) } }
    }
}

/// Real namespaces, real routes, a real TCP connection between cluster addresses, and a
/// cut of one host's cluster1: silent (carrier stays up: the kernel cannot see it), or with
/// carrier loss (only that host's kernel sees it; its peer must learn it from heartbeats).
@Suite(.serialized) struct HeartbeatNetnsTests {
    struct Timing: Sendable, CustomStringConvertible {
        var label: String
        var interval: Duration
        var missThreshold: Int
        /// Cut with carrier loss instead of silently.
        var carrier = false
        var description: String { "\(label) (\(interval) × \(missThreshold), \(carrier ? "carrier loss" : "silent"))" }
        static let fast = Timing(label: "fast", interval: .milliseconds(100), missThreshold: 3)
        static let standard = Timing(label: "default", interval: .milliseconds(250), missThreshold: 4)
        static let fastCarrier = Timing(label: "carrier", interval: .milliseconds(100), missThreshold: 3, carrier: true)
    }

    @Test(.enabled(if: Capabilities.hasNetns), arguments: [Timing.fast, Timing.standard, Timing.fastCarrier])
    func lostClusterNetworkSteersRoutesAndTCPBetweenClusterAddressesSurvivesRequiresNetns(timing: Timing) async throws {
        try Capabilities.require(Capabilities.hasNetns, "network namespaces (root, ip netns)")
        let topology = NetnsTopology(prefix: "vhb\(getpid() % 100_000)\(timing.label.prefix(1))", hosts: 2)
        topology.remove()
        defer { topology.remove() }
        try topology.create()

        let port = 7481
        let records = topology.hosts.map(topology.record)
        var services: [HeartbeatService] = []
        var tables: [TimedRouteTable] = []
        for host in topology.hosts {
            let ns = topology.namespace(host)
            let record = topology.record(host)
            let (peers, continuation) = AsyncStream.makeStream(of: [NodeRecord].self)
            continuation.yield(records)
            let table = TimedRouteTable(IPRouteTable(command: [NetnsTopology.ipPath, "-n", ns]))
            let config = HeartbeatConfiguration(cluster: testCluster, node: record.name, key: testKey,
                                                clusterAddress: record.clusterAddress, networks: record.networks, port: port,
                                                interval: timing.interval, missThreshold: timing.missThreshold)
            services.append(HeartbeatService(configuration: config, peers: peers, routeTable: table,
                                             socketFactory: { network, port in
                                                 try NetnsTopology.socket(in: ns, type: Int32(SOCK_DGRAM.rawValue),
                                                                          address: network.address, port: UInt16(port))
                                             }, logger: testLogger("hb.n\(host)")))
            tables.append(table)
        }
        let (n1, n2) = (NodeName(unchecked: "n1"), NodeName(unchecked: "n2"))

        try await withThrowingTaskGroup(of: Void.self) { group in
            for service in services { group.addTask { try await service.run() } }
            defer { group.cancelAll() }

            #expect(await eventually(timeout: .seconds(5)) {
                services[0].snapshot.route(n2) == "cluster1" && services[1].snapshot.route(n1) == "cluster1"
                    && tables.allSatisfy { !$0.log.withLock(\.isEmpty) }
            })
            #expect(try topology.routeDevice(host: 1, to: topology.clusterAddress(2)) == "cluster1")

            let echoPort: UInt16 = 7499
            let listener = try NetnsTopology.socket(in: topology.namespace(2), type: Int32(SOCK_STREAM.rawValue),
                                                    address: topology.clusterAddress(2), port: echoPort) { fd in
                guard listen(fd, 4) == 0 else { throw NetnsTopology.TopologyError(description: "listen: errno \(errno)") }
            }
            let client = try NetnsTopology.socket(in: topology.namespace(1), type: Int32(SOCK_STREAM.rawValue),
                                                  address: topology.clusterAddress(1), port: 0)
            let probe = try TCPEchoProbe(client: client, listener: listener, to: topology.clusterAddress(2), port: echoPort)
            try await Task.sleep(for: .seconds(1))

            // n1 loses cluster1: both ends must steer onto cluster2.
            let cutAt = ContinuousClock.now
            if timing.carrier { try topology.cutCarrier(host: 1, network: 1) } else { try topology.cutSilently(host: 1, network: 1) }
            let steered = await eventually(timeout: .seconds(5)) {
                tables.allSatisfy { $0.firstSteer(onto: "cluster2", after: cutAt) != nil }
            }
            #expect(steered)
            try await Task.sleep(for: .seconds(1.5))
            #expect(try topology.routeDevice(host: 1, to: topology.clusterAddress(2)) == "cluster2")
            #expect(try topology.routeDevice(host: 2, to: topology.clusterAddress(1)) == "cluster2")
            #expect(services[0].snapshot.link(n2, "cluster1")?.up == false)
            #expect(services[0].snapshot.link(n2, "cluster2")?.up == true)

            // Restore: back onto cluster1 after recovery and the hold, without a stall.
            let restoredAt = ContinuousClock.now
            try topology.restore(host: 1, network: 1)
            #expect(await eventually(timeout: .seconds(8)) {
                tables.allSatisfy { $0.firstSteer(onto: "cluster1", after: restoredAt) != nil }
            }, "n1: \(services[0].snapshot)\nn2: \(services[1].snapshot)")
            try await Task.sleep(for: .milliseconds(500))
            let (replies, failure) = probe.stop()
            #expect(failure == nil)
            #expect(try topology.routeDevice(host: 1, to: topology.clusterAddress(2)) == "cluster1")

            let cutStall = TCPEchoProbe.longestGap(replies, in: cutAt...restoredAt)
            let restoreStall = TCPEchoProbe.longestGap(replies, in: restoredAt...ContinuousClock.now)
            let switches = tables.compactMap { $0.firstSteer(onto: "cluster2", after: cutAt) }
            let detect = switches.map { cutAt.duration(to: $0.started) }
            let ipTook = switches.map { $0.started.duration(to: $0.finished) }
            let back = tables.compactMap { $0.firstSteer(onto: "cluster1", after: restoredAt) }.map { restoredAt.duration(to: $0.finished) }
            print("""
                NetFT \(timing): cut→steer started n1 \(detect.first ?? .zero), n2 \(detect.last ?? .zero); \
                ip route replace took \(ipTook); TCP stall on cut \(cutStall) (\(replies.count) replies); \
                restore→back on cluster1 \(back); TCP stall on restore \(restoreStall); \
                n1 cluster1 socket restarts \(services[0].snapshot.network("cluster1")!.socketRestarts)
                """)
            let missTimeout = timing.interval * timing.missThreshold
            // The stall ends at TCP's first retransmission after the switch (backoff 0.2, 0.4, 0.8 s…).
            #expect(cutStall < missTimeout + .milliseconds(1500), "stall \(cutStall) with miss timeout \(missTimeout)")
            #expect(restoreStall < .milliseconds(200))
            #expect(services.allSatisfy { $0.snapshot.routeFailures == 0 && $0.snapshot.networks.allSatisfy { $0.authenticationFailures == 0 } })
        }
    }
}

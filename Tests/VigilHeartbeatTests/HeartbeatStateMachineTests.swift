import Testing
import VigilCore
@testable import VigilHeartbeat

/// Drives a state machine on a manual clock: heartbeats from peers arrive when the test
/// says, ticks every `step`, and every effect is recorded with its time.
struct MeshHarness {
    typealias Effect = HeartbeatStateMachine.Effect
    var machine: HeartbeatStateMachine
    var now: Duration = .zero
    var sequence: [String: UInt64] = [:]
    var log: [(Duration, Effect)] = []

    init(_ configuration: HeartbeatStateMachine.Configuration = .test, peers: [NodeName: Set<String>] = [n2: ["cluster1", "cluster2"]]) {
        machine = HeartbeatStateMachine(configuration: configuration)
        _ = machine.handle(.peers(peers))
    }

    /// A heartbeat from `peer` on `network` with its next sequence number, at `now`.
    @discardableResult
    mutating func heartbeat(_ peer: NodeName = n2, on network: String, skip: UInt64 = 0) -> [Effect] {
        let key = "\(peer)/\(network)"
        let number = (sequence[key] ?? 0) + 1 + skip
        sequence[key] = number
        return record(machine.handle(.received(peer: peer, network: network,
                                               sequence: HeartbeatSequence(incarnation: 1, number: number), now: now)))
    }

    @discardableResult
    mutating func tick(at time: Duration) -> [Effect] {
        now = time
        return record(machine.handle(.tick(now: time)))
    }

    private mutating func record(_ effects: [Effect]) -> [Effect] {
        log += effects.map { (now, $0) }
        return effects
    }

    /// Runs from `now` to `end`: every interval, a heartbeat on each network for which
    /// `delivers(network, time)` is true; a tick every `step`.
    mutating func run(until end: Duration, step: Duration = .milliseconds(10), peer: NodeName = n2,
                      delivers: (String, Duration) -> Bool) {
        let interval = machine.configuration.interval
        while now + step <= end {
            now += step
            if (now.nanosecondsForTest % interval.nanosecondsForTest) == 0 {
                for network in machine.configuration.networks where delivers(network, now) {
                    heartbeat(peer, on: network)
                }
            }
            tick(at: now)
        }
    }

    func steers(after start: Duration = .zero) -> [(Duration, String)] {
        log.compactMap { time, effect in
            if case let .steerRoute(_, via) = effect, time >= start { return (time, via) }
            return nil
        }
    }
}

let n2 = NodeName(unchecked: "n2")
let n3 = NodeName(unchecked: "n3")

extension HeartbeatStateMachine.Configuration {
    /// 100 ms interval, down after 3 missed, up after 3 consecutive, 2 s hold.
    static let test = Self(networks: ["cluster1", "cluster2"], interval: .milliseconds(100), missThreshold: 3,
                           recoveryCount: 3, preferredHold: .seconds(2))
}

extension Duration {
    var nanosecondsForTest: Int64 { components.seconds * 1_000_000_000 + components.attoseconds / 1_000_000_000 }
}

@Suite struct HeartbeatStateMachineTests {
    typealias Effect = HeartbeatStateMachine.Effect

    @Test func firstTickSendsToEveryPeerOnEveryNetworkThenEveryInterval() {
        var h = MeshHarness(peers: [n2: ["cluster1", "cluster2"], n3: ["cluster2", "storage1"]])
        #expect(h.tick(at: .zero) == [
            .send(to: n2, on: "cluster1", sequence: 1), .send(to: n2, on: "cluster2", sequence: 1),
            .send(to: n3, on: "cluster2", sequence: 1),
        ])
        #expect(h.machine.nextDeadline == .milliseconds(100))
        #expect(h.tick(at: .milliseconds(100) - .nanoseconds(1)) == [])
        #expect(h.tick(at: .milliseconds(100)).count == 3)
        // A stalled shell does not burst: one round, then the cadence restarts from now.
        #expect(h.tick(at: .milliseconds(550)).filter { if case .send = $0 { true } else { false } }.count == 3)
        #expect(h.machine.nextDeadline == .milliseconds(650))
    }

    @Test func linkComesUpAfterRecoveryCountConsecutiveHeartbeatsAndRouteIsSteered() {
        var h = MeshHarness()
        #expect(h.heartbeat(on: "cluster1") == [])
        #expect(h.heartbeat(on: "cluster1") == [])
        #expect(h.heartbeat(on: "cluster1") == [
            .linkChanged(peer: n2, network: "cluster1", up: true), .steerRoute(peer: n2, via: "cluster1"),
        ])
        #expect(h.heartbeat(on: "cluster1") == [])
    }

    @Test func aGapInSequenceNumbersRestartsTheRecoveryCount() {
        var h = MeshHarness()
        h.heartbeat(on: "cluster1")
        h.heartbeat(on: "cluster1")
        #expect(h.heartbeat(on: "cluster1", skip: 1) == [])
        #expect(h.heartbeat(on: "cluster1") == [])
        #expect(h.heartbeat(on: "cluster1").contains(.linkChanged(peer: n2, network: "cluster1", up: true)))
    }

    @Test func replayedDuplicateAndOlderHeartbeatsAreIgnoredAndCounted() {
        var h = MeshHarness()
        for _ in 0..<3 { h.heartbeat(on: "cluster1") }
        let old = HeartbeatSequence(incarnation: 1, number: 2)
        #expect(h.machine.handle(.received(peer: n2, network: "cluster1", sequence: old, now: .seconds(5))) == [])
        #expect(h.machine.handle(.received(peer: n2, network: "cluster1",
                                           sequence: HeartbeatSequence(incarnation: 1, number: 3), now: .seconds(5))) == [])
        #expect(h.machine.handle(.received(peer: n2, network: "cluster1",
                                           sequence: HeartbeatSequence(incarnation: 0, number: 99), now: .seconds(5))) == [])
        let link = h.machine.peers[n2]!.links["cluster1"]!
        #expect(link.ignored == 3 && link.accepted == 3)
        #expect(link.lastSeen == .zero, "an ignored heartbeat must not refresh the link")
        // A restarted peer (higher incarnation) is accepted.
        _ = h.machine.handle(.received(peer: n2, network: "cluster1",
                                       sequence: HeartbeatSequence(incarnation: 2, number: 1), now: .seconds(5)))
        #expect(h.machine.peers[n2]!.links["cluster1"]!.accepted == 4)
    }

    @Test func heartbeatsFromUnknownPeersOrNetworksChangeNothing() {
        var h = MeshHarness()
        let s = HeartbeatSequence(incarnation: 1, number: 1)
        #expect(h.machine.handle(.received(peer: n3, network: "cluster1", sequence: s, now: .zero)) == [])
        #expect(h.machine.handle(.received(peer: n2, network: "storage1", sequence: s, now: .zero)) == [])
        #expect(h.machine.peers[n3] == nil)
    }

    @Test func linkGoesDownExactlyAtTheMissDeadlineAndRouteMovesAtOnce() {
        var h = MeshHarness()
        for _ in 0..<3 { h.heartbeat(on: "cluster1"); h.heartbeat(on: "cluster2") }
        #expect(h.machine.peers[n2]!.route == "cluster1")
        h.now = .milliseconds(40)
        h.heartbeat(on: "cluster2")
        // cluster1 last seen at 0: down at exactly 300 ms. cluster2 last seen at 40 ms.
        #expect(h.machine.nextDeadline == .milliseconds(300))
        #expect(h.tick(at: .milliseconds(300) - .nanoseconds(1)).filter(\.isLinkOrRoute) == [])
        #expect(h.tick(at: .milliseconds(300)).filter(\.isLinkOrRoute) == [
            .linkChanged(peer: n2, network: "cluster1", up: false), .steerRoute(peer: n2, via: "cluster2"),
        ])
        #expect(h.tick(at: .milliseconds(340) - .nanoseconds(1)).filter(\.isLinkOrRoute) == [])
        // Everything down: the route stays where it is.
        #expect(h.tick(at: .milliseconds(340)).filter(\.isLinkOrRoute) == [.linkChanged(peer: n2, network: "cluster2", up: false)])
        #expect(h.machine.peers[n2]!.route == "cluster2")
    }

    @Test func routeReturnsToThePreferredNetworkOnlyAfterTheHoldPeriod() {
        var h = MeshHarness()
        h.run(until: .seconds(1)) { _, _ in true }
        #expect(h.steers().map(\.1) == ["cluster1"])
        // cluster1 silent from 1.0 s to 2.0 s: last heartbeat 1.0, down 1.3; back 2.0, up at 2.2.
        h.run(until: .seconds(3)) { net, t in net == "cluster2" || t <= .seconds(1) || t >= .seconds(2) }
        #expect(h.steers().map(\.0) == [.milliseconds(300), .milliseconds(1300)])
        #expect(h.machine.peers[n2]!.links["cluster1"]!.upSince == .milliseconds(2200))
        #expect(h.machine.nextDeadline! <= .milliseconds(4200))
        h.run(until: .milliseconds(4200) - .milliseconds(10)) { _, _ in true }
        #expect(h.tick(at: .milliseconds(4200) - .nanoseconds(1)).filter(\.isLinkOrRoute) == [])
        #expect(h.tick(at: .milliseconds(4200)).filter(\.isLinkOrRoute) == [.steerRoute(peer: n2, via: "cluster1")])
    }

    @Test func aFlappingPreferredNetworkMovesTheRouteOnceUntilItSettles() {
        var h = MeshHarness()
        h.run(until: .seconds(1)) { _, _ in true }
        // cluster1 loses everything for 500 ms out of every 2 s, for 20 s; cluster2 is steady.
        let flapsEnd = Duration.seconds(21)
        h.run(until: .seconds(30)) { net, t in
            guard net == "cluster1", t < flapsEnd else { return true }
            let phase = t.nanosecondsForTest % 2_000_000_000
            return phase < 1_000_000_000 || phase >= 1_500_000_000
        }
        let downs = h.log.filter { $0.1 == .linkChanged(peer: n2, network: "cluster1", up: false) }.count
        #expect(downs == 10, "every outage is seen")
        let steers = h.steers(after: .seconds(1))
        #expect(steers.map(\.1) == ["cluster2", "cluster1"], "one move away, one move back")
        #expect(steers.first!.0 == .milliseconds(1_300))
        // Last outage 19.0–19.5 s, up again at 19.7 s, back after the 2 s hold.
        #expect(steers.last!.0 == .milliseconds(21_700))
    }

    @Test func atStartUpABetterNetworkComingUpLaterIsTakenAtOnce() {
        var h = MeshHarness()
        for _ in 0..<3 { h.heartbeat(on: "cluster2") }
        #expect(h.machine.peers[n2]!.route == "cluster2")
        h.heartbeat(on: "cluster1")
        h.heartbeat(on: "cluster1")
        #expect(h.heartbeat(on: "cluster1") == [
            .linkChanged(peer: n2, network: "cluster1", up: true), .steerRoute(peer: n2, via: "cluster1"),
        ])
    }

    @Test func aPeerOnlyOnTheSecondNetworkIsRoutedThere() {
        var h = MeshHarness(peers: [n3: ["cluster2"]])
        for _ in 0..<3 { h.heartbeat(n3, on: "cluster2") }
        #expect(h.machine.peers[n3]!.route == "cluster2")
        #expect(h.machine.peers[n3]!.links.keys.sorted() == ["cluster2"])
    }

    @Test func forgottenPeersLoseTheirState() {
        var h = MeshHarness()
        for _ in 0..<3 { h.heartbeat(on: "cluster1") }
        _ = h.machine.handle(.peers([n3: ["cluster1"]]))
        #expect(h.machine.peers[n2] == nil)
        #expect(h.tick(at: .zero) == [.send(to: n3, on: "cluster1", sequence: 1)])
        _ = h.machine.handle(.peers([n2: ["cluster1"], n3: ["cluster1"]]))
        #expect(h.machine.peers[n2]!.links["cluster1"]!.up == false)
    }
}

extension HeartbeatStateMachine.Effect {
    var isLinkOrRoute: Bool {
        if case .send = self { return false }
        return true
    }
}

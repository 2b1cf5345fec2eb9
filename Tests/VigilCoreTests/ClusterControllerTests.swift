import Testing
@testable import VigilCore

struct ClusterControllerTests {
    let n1 = NodeName(unchecked: "n1"), n2 = NodeName(unchecked: "n2"), n3 = NodeName(unchecked: "n3")

    func record(_ n: NodeName) -> NodeRecord {
        NodeRecord(name: n, clusterAddress: "10.0.0.1", apiPort: 7480, networks: [], capacity: Capacity(cpus: 2, memoryMiB: 1024))
    }

    @Test func leaderRecordsWhoIsAliveAndWhoIsDown() {
        var c = ClusterController(me: n1)
        let effects = c.handle(.becameLeader(registered: [n1: record(n1), n2: record(n2), n3: record(n3)], alive: [n1, n2], now: .zero))
        guard case let .record(e)? = effects.first else { Issue.record("no event"); return }
        #expect(e.kind == .leaderElected)
        #expect(e.message.contains("alive: [n1, n2]") && e.message.contains("down: [n3]"))
        #expect(c.down == [n3])
    }

    @Test func aliveChangesBecomeJoinedAndLostEvents() {
        var c = ClusterController(me: n1)
        _ = c.handle(.becameLeader(registered: [:], alive: [n1, n2], now: .zero))
        let effects = c.handle(.aliveChanged([n1, n3]))
        let kinds = effects.compactMap { if case let .record(e) = $0 { return (e.kind, e.node) } else { return nil } }
        #expect(kinds.map(\.0) == [.nodeJoined, .nodeLost])
        #expect(kinds.map(\.1) == [n3, n2])
        #expect(c.handle(.aliveChanged([n1, n3])).isEmpty)
    }

    @Test func eventLogIsTrimmedOncePerPeriodNotBefore() {
        var c = ClusterController(me: n1)
        _ = c.handle(.becameLeader(registered: [:], alive: [n1], now: .seconds(100)))
        #expect(c.handle(.tick(now: .seconds(109) + .milliseconds(999))).isEmpty)
        #expect(c.handle(.tick(now: .seconds(110))) == [.trimEvents(keep: 1000)])
        #expect(c.handle(.tick(now: .seconds(111))).isEmpty)
    }

    @Test func namesAreValidatedWithAReason() {
        #expect(throws: InvalidName.self) { try NodeName("N1") }
        #expect(throws: InvalidName.self) { try NodeName("1n") }
        #expect(throws: InvalidName.self) { try NodeName("") }
        #expect(throws: InvalidName.self) { try NodeName("a_b") }
        #expect(throws: InvalidName.self) { try NodeName(String(repeating: "a", count: 32)) }
        #expect((try? NodeName("n-1")) != nil)
        #expect(NodeName(unchecked: "n2") < NodeName(unchecked: "n10"))
    }

    @Test func eventIDsSortByTime() {
        let a = EventID(atMillis: 999, reporter: n2, sequence: 5)
        let b = EventID(atMillis: 1000, reporter: n1, sequence: 1)
        #expect(a < b)
    }
}

extension ClusterControllerTests {
    @Test func newLeaderRecordsLossesThatHappenedBetweenLeaders() {
        var c = ClusterController(me: n2)
        let effects = c.handle(.becameLeader(registered: [n1: record(n1), n2: record(n2), n3: record(n3)], alive: [n2, n3],
                                             lastKnownAlive: [n1, n2, n3], now: .zero))
        let lost = effects.compactMap { if case let .record(e) = $0, e.kind == .nodeLost { return e.node } else { return nil } }
        #expect(lost == [n1])
        #expect(effects.contains(.writeMembership([n2, n3])))
    }
}

struct NaturalOrderTests {
    @Test func namesWithTheSamePrefixCompareByTheirTrailingNumber() {
        let sorted = ["vm10", "vm2", "vm1", "n10", "n9", "a", "vm", "vm-2", "b1c", "b1b", "x99999999999999999999", "x2"]
            .map { VMName(unchecked: $0) }.sorted().map(\.rawValue)
        #expect(sorted == ["a", "b1b", "b1c", "n9", "n10", "vm", "vm-2", "vm1", "vm2", "vm10", "x2", "x99999999999999999999"])
        #expect(!(VMName(unchecked: "vm7") < VMName(unchecked: "vm7")))
    }
}

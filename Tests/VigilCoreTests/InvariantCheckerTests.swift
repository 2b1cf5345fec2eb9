import Testing
@testable import VigilCore

struct InvariantCheckerTests {
    let a = VMName(unchecked: "a"), n1 = NodeName(unchecked: "n1"), n2 = NodeName(unchecked: "n2")

    @Test func twoInstancesAndAnOverlappingTakeoverAreCaught() {
        var c = InvariantChecker()
        c.sample(at: .milliseconds(0), running: [a: [n1]])
        c.sample(at: .milliseconds(50), running: [a: [n1, n2]])
        c.checkFenceBeforeTakeover()
        #expect(c.violations.map(\.invariant).sorted() == [1, 2])
    }

    @Test func aCleanFailoverPasses() {
        var c = InvariantChecker()
        c.sample(at: .milliseconds(0), running: [a: [n1]])
        c.sample(at: .milliseconds(50), running: [:])
        c.sample(at: .milliseconds(100), running: [a: [n2]])
        c.checkFenceBeforeTakeover()
        c.checkNothingDropped([a], at: .seconds(1), running: [a: [n2]], alive: [n2], placements: [:])
        #expect(c.violations.isEmpty)
        #expect(c.stints[a]?.map(\.node) == [n1, n2])
    }

    @Test func lostWritesAndDroppedVMsAreCaught() {
        var c = InvariantChecker()
        c.guest(a, at: .zero, flushed: 10, startCounter: 0, restartedSinceLast: false)
        c.guest(a, at: .seconds(1), flushed: 12, startCounter: 9, restartedSinceLast: true)
        c.checkNothingDropped([a], at: .seconds(2), running: [a: [n1]], alive: [n2], placements: [a: Placement(node: n1, epoch: 1, phase: .placed)])
        #expect(c.violations.map(\.invariant) == [3, 4])
        // Pending with a reason is fine.
        var d = InvariantChecker()
        d.checkNothingDropped([a], at: .zero, running: [:], alive: [n2], placements: [a: Placement(node: n1, epoch: 1, phase: .pending, reason: "no room")])
        #expect(d.violations.isEmpty)
    }
}

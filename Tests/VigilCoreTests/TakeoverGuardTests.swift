import Testing
@testable import VigilCore

struct TakeoverGuardTests {
    let n1 = NodeName(unchecked: "n1"), n2 = NodeName(unchecked: "n2")

    @Test func aFailoverRequiresTheLostNodeToStillBeDown() {
        let old = Placement(node: n1, epoch: 2, phase: .placed)
        #expect(TakeoverGuard.mustStillBeDown(from: old, to: Placement(node: n2, epoch: 3, phase: .placed), alive: [n2]) == n1)
        // A pending VM of a lost node, placed once room appears: the same.
        let pending = Placement(node: n1, epoch: 2, phase: .pending, reason: "no room")
        #expect(TakeoverGuard.mustStillBeDown(from: pending, to: Placement(node: n2, epoch: 3, phase: .placed), alive: [n2]) == n1)
    }

    @Test func movesFromLiveNodesAndWritesThatStartNothingAreNotGuarded() {
        let old = Placement(node: n1, epoch: 2, phase: .placed)
        #expect(TakeoverGuard.mustStillBeDown(from: old, to: Placement(node: n2, epoch: 3, phase: .placed), alive: [n1, n2]) == nil, "failback")
        #expect(TakeoverGuard.mustStillBeDown(from: old, to: Placement(node: n1, epoch: 2, phase: .pending, reason: "x"), alive: [n2]) == nil)
        #expect(TakeoverGuard.mustStillBeDown(from: nil, to: Placement(node: n2, epoch: 1, phase: .placed), alive: [n2]) == nil, "first placement")
    }
}

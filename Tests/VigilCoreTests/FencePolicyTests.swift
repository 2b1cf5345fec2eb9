import Testing
@testable import VigilCore

struct FencePolicyTests {
    @Test func theDeadlineFallsBeforeTheEarliestPossibleExpiry() {
        let p = FencePolicy(leaseTTL: .seconds(2))
        // 2 s · (1 − 0.001) − 0.2 s = 1.798 s.
        #expect(p.fenceAfter == .milliseconds(1798))
        // Worst case: the node's clock runs slow (its 1.798 s last longer in real time),
        // etcd's runs fast (its 2 s pass sooner); the kill still ends before expiry.
        let rho = p.maxClockRateError
        let nodeRealSeconds = 1.798 * (1 + rho) + 0.2
        let etcdRealSeconds = 2.0 / (1 + rho)
        #expect(nodeRealSeconds < etcdRealSeconds)
    }

    @Test func tooShortATTLIsAProblemWithAReason() {
        #expect(FencePolicy(leaseTTL: .seconds(2)).problem == nil)
        let bad = FencePolicy(leaseTTL: .milliseconds(300))
        #expect(bad.problem?.contains("raise the TTL") == true)
    }
}

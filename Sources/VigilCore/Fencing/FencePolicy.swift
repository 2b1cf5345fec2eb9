/// When a node must have killed its VMs after it last heard from etcd: the fence
/// arithmetic of ARCHITECTURE.md ("Fence before takeover"), as one pure function.
///
/// A keep-alive the node *sent* at `s` (its monotonic clock) and etcd acknowledged
/// extends the lease to at least `s + TTL` on etcd's leader's clock, because etcd
/// received it after it was sent. Clocks tick at slightly different rates: with each
/// clock's rate error bounded by ρ, etcd's TTL can elapse in real time as early as
/// `TTL / (1 + ρ)` and the node's `D` can take as long as `D · (1 + ρ)`. So the node is
/// safe if `D · (1 + ρ) + kill ≤ TTL / (1 + ρ)`, i.e. (to first order)
///
///     D = TTL · (1 − 2ρ) − killBudget
///
/// where `killBudget` bounds how long fencing itself takes once the deadline passes
/// (the watchdog waking, SIGKILL, the kernel reaping QEMU and so ending its disk I/O).
/// Everything else only makes etcd's expiry later — its expiry check runs every
/// ~500 ms, a new etcd leader extends every lease — so takeover, which waits for the
/// `alive` key to vanish, always comes after the fence.
public struct FencePolicy: Equatable, Sendable {
    public var leaseTTL: Duration
    /// Bound on either clock's rate error (NTP never slews faster than 500 ppm).
    public var maxClockRateError: Double
    /// Bound on the time from the deadline to the last VM's death.
    public var killBudget: Duration

    public init(leaseTTL: Duration, maxClockRateError: Double = 500e-6, killBudget: Duration = .milliseconds(200)) {
        self.leaseTTL = leaseTTL; self.maxClockRateError = maxClockRateError; self.killBudget = killBudget
    }

    /// How long after the send time of the last acknowledged keep-alive the node may
    /// still run VMs. Its fence deadline is that send time plus this.
    public var fenceAfter: Duration {
        let ttl = Double(leaseTTL.components.seconds) + Double(leaseTTL.components.attoseconds) * 1e-18
        let safe = ttl * (1 - 2 * maxClockRateError)
        return .nanoseconds(Int64(safe * 1e9)) - killBudget
    }

    /// Why these numbers cannot protect anything, or nil when they can.
    /// Renewals go every TTL/6; at least two must fit before the deadline.
    public var problem: String? {
        if fenceAfter <= leaseTTL / 3 {
            return "lease TTL \(leaseTTL) leaves only \(fenceAfter) before the fence deadline after a \(killBudget) kill budget; raise the TTL"
        }
        return nil
    }
}

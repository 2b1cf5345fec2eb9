import VigilCore

/// What this agent knows about its own standing: its lease and whether it leads.
/// Shared between the services; the API reads it for `/v1/local`.
public actor NodeState {
    public let node: NodeName
    public private(set) var leaseID: Int64?
    /// When the last keep-alive that etcd acknowledged was *sent* (monotonic).
    public private(set) var lastRenewalSent: ContinuousClock.Instant?
    public private(set) var isLeader = false
    /// What `alive/<node>` last said (own links, heard peers).
    public private(set) var alive: AliveRecord?
    /// The moment by which this node's VMs must be dead unless a renewal is acknowledged
    /// first: the last acknowledged send time plus `FencePolicy.fenceAfter`. It survives
    /// `lost()`: losing the lease never extends it.
    public private(set) var fenceDeadline: ContinuousClock.Instant?
    /// QEMUs this agent holds (the host runtime keeps it current).
    public private(set) var localVMs = 0
    let fenceAfter: Duration

    public init(node: NodeName, fenceAfter: Duration = .seconds(1)) { self.node = node; self.fenceAfter = fenceAfter }

    func acquired(lease: Int64, sentAt: ContinuousClock.Instant) { leaseID = lease; renewed(sentAt: sentAt) }
    func renewed(sentAt: ContinuousClock.Instant) {
        lastRenewalSent = sentAt
        fenceDeadline = max(fenceDeadline ?? sentAt, sentAt + fenceAfter)
    }
    func lost() { leaseID = nil; isLeader = false }
    func setLocalVMs(_ n: Int) { localVMs = n }

    /// Set once the session's first attempt to join (or resume its old lease) is over.
    private var settled = false
    private var settledWaiters: [CheckedContinuation<Void, Never>] = []
    func sessionSettled() {
        settled = true
        for w in settledWaiters { w.resume() }
        settledWaiters = []
    }
    func waitUntilSessionSettled() async {
        if settled { return }
        await withCheckedContinuation { settledWaiters.append($0) }
    }

    /// The deadline the watchdog last accepted (nil: not armed, or it did not answer).
    public private(set) var watchdogDeadline: ContinuousClock.Instant?
    /// What the watchdog last said, in words (for `/v1/local` and logs).
    public private(set) var watchdogState = "not contacted yet"
    func watchdog(armedUntil d: ContinuousClock.Instant?, state: String) { watchdogDeadline = d; watchdogState = state }

    /// Whether a VM may be started here now: it may run, and (when required) the
    /// watchdog holds a deadline, so it would be fenced even if vigild froze.
    public func mayStartVMs(now: ContinuousClock.Instant = .now, watchdogRequired: Bool) -> Bool {
        guard mayRunVMs(now: now) else { return false }
        return !watchdogRequired || (watchdogDeadline.map { now < $0 } ?? false)
    }

    /// Whether VMs may run here now: a lease, and its fence deadline still ahead.
    public func mayRunVMs(now: ContinuousClock.Instant = .now) -> Bool {
        guard leaseID != nil, let d = fenceDeadline else { return false }
        return now < d
    }
    func setLeader(_ v: Bool) { isLeader = v }
    func setAlive(_ a: AliveRecord) { alive = a }

    public func local(now: ContinuousClock.Instant = .now) -> LocalStatus {
        let since = lastRenewalSent.map { now - $0 }.map { $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 }
        return LocalStatus(node: node, hasLease: leaseID != nil, isLeader: isLeader, leaseID: leaseID,
                           sinceLastRenewalMs: leaseID == nil ? nil : since, watchdog: watchdogState)
    }
}

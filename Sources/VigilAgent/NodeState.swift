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

    public init(node: NodeName) { self.node = node }

    func acquired(lease: Int64, sentAt: ContinuousClock.Instant) { leaseID = lease; lastRenewalSent = sentAt }
    func renewed(sentAt: ContinuousClock.Instant) { lastRenewalSent = sentAt }
    func lost() { leaseID = nil; isLeader = false }
    func setLeader(_ v: Bool) { isLeader = v }
    func setAlive(_ a: AliveRecord) { alive = a }

    public func local(now: ContinuousClock.Instant = .now) -> LocalStatus {
        let since = lastRenewalSent.map { now - $0 }.map { $0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000 }
        return LocalStatus(node: node, hasLease: leaseID != nil, isLeader: isLeader, leaseID: leaseID,
                           sinceLastRenewalMs: leaseID == nil ? nil : since)
    }
}

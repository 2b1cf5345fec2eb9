import VigilCore

/// The etcd the simulated nodes share, as one linearizable store: a revision that grows
/// with every write, leases with a TTL that expire at exactly TTL after the last
/// keep-alive etcd *received*, keys bound to leases (deleted with them), and
/// compare-and-swap on a key's mod revision. Only the keys the state machines read are
/// kept: `nodes/`, `alive/`, `leader`, `membership`, `vms/<vm>/{spec,placement,runtime}`;
/// events are counted, and `vm.failed` events remembered per VM.
struct SimStore {
    struct Lease { var node: Int; var expiresAt: Duration }

    let ttl: Duration
    private(set) var revision: Int64 = 1
    private(set) var leases: [Int64: Lease] = [:]
    private var nextLease: Int64 = 0x100
    let registered: [NodeName: NodeRecord]
    /// Per node: the lease its `alive/<node>` key is bound to, nil when absent.
    private(set) var alive: [Int64?]
    private(set) var leader: (node: Int, lease: Int64)?
    private(set) var membership: Set<NodeName>?
    /// `vms/` as the controller reads it.
    private(set) var records: [VMName: VMRecord] = [:]
    /// Per VM index: the node index its placement is `placed` on, or -1.
    private(set) var placedOn: [Int]
    /// Per VM index: the lease its runtime key is bound to.
    private var runtimeLease: [Int64?]
    /// Bumped on every change under `vms/` and `alive/` (what a watch would wake on).
    private(set) var vmsVersion = 0
    private(set) var aliveVersion = 0
    private(set) var eventCount = 0
    private(set) var failedWithEvent: Set<VMName> = []

    let vmNames: [VMName]
    let vmIndex: [VMName: Int]
    let nodeNames: [NodeName]
    let nodeIndex: [NodeName: Int]

    init(cluster: SimCluster, ttl: Duration) {
        self.ttl = ttl
        nodeNames = cluster.nodes.map(\.name)
        nodeIndex = Dictionary(uniqueKeysWithValues: nodeNames.enumerated().map { ($1, $0) })
        registered = Dictionary(uniqueKeysWithValues: cluster.nodes.map { ($0.name, $0) })
        vmNames = cluster.vms.map(\.name)
        vmIndex = Dictionary(uniqueKeysWithValues: vmNames.enumerated().map { ($1, $0) })
        alive = Array(repeating: nil, count: cluster.nodes.count)
        placedOn = Array(repeating: -1, count: cluster.vms.count)
        runtimeLease = Array(repeating: nil, count: cluster.vms.count)
        for spec in cluster.vms { records[spec.name] = VMRecord(spec: spec, placement: nil, placementRevision: 0, runtime: nil) }
    }

    var aliveSet: Set<NodeName> { Set(alive.indices.filter { alive[$0] != nil }.map { nodeNames[$0] }) }

    func leaseValid(_ id: Int64) -> Bool { leases[id] != nil }

    // MARK: leases

    mutating func grant(node: Int, at t: Duration) -> Int64 {
        nextLease += 1
        leases[nextLease] = Lease(node: node, expiresAt: t + ttl)
        return nextLease
    }

    /// A keep-alive received at `t`: the lease lives TTL from now, if it still exists.
    mutating func keepAlive(_ id: Int64, at t: Duration) -> Bool {
        guard var l = leases[id], l.expiresAt > t else { return false }
        l.expiresAt = t + ttl
        leases[id] = l
        return true
    }

    /// An etcd leader election: the new leader renews every lease to a full TTL plus
    /// an election timeout (measured in ARCHITECTURE.md). Only ever makes expiry later.
    mutating func etcdLeaderChanged(at t: Duration, electionTimeout: Duration) {
        for id in leases.keys.sorted() { leases[id]!.expiresAt = max(leases[id]!.expiresAt, t + ttl + electionTimeout) }
    }

    /// The next lease to expire at or before `t`, with its expiry time.
    func nextExpiry(upTo t: Duration) -> (id: Int64, lease: Lease)? {
        leases.filter { $0.value.expiresAt <= t }.min { ($0.value.expiresAt, $0.key) < ($1.value.expiresAt, $1.key) }.map { ($0.key, $0.value) }
    }

    /// Delete the lease and every key bound to it.
    mutating func expire(_ id: Int64) {
        guard leases.removeValue(forKey: id) != nil else { return }
        for n in alive.indices where alive[n] == id { alive[n] = nil; aliveVersion += 1; revision += 1 }
        if leader?.lease == id { leader = nil; revision += 1 }
        for v in runtimeLease.indices where runtimeLease[v] == id {
            runtimeLease[v] = nil
            records[vmNames[v]]!.runtime = nil
            vmsVersion += 1; revision += 1
        }
    }

    // MARK: keys

    /// `alive/<node>` bound to `lease`, only if absent (StoreSessionService.establish).
    mutating func createAlive(node: Int, lease: Int64) -> Bool {
        guard alive[node] == nil, leaseValid(lease) else { return false }
        alive[node] = lease; aliveVersion += 1; revision += 1
        return true
    }

    /// Create-if-absent on `leader` (LeaderElectionService's campaign).
    mutating func campaign(node: Int, lease: Int64) -> Bool {
        if let l = leader { return l.node == node && l.lease == lease }
        guard leaseValid(lease) else { return false }
        leader = (node, lease); revision += 1
        return true
    }

    mutating func resign(lease: Int64) {
        if leader?.lease == lease { leader = nil; revision += 1 }
    }

    func isLeader(_ lease: Int64) -> Bool { leader?.lease == lease }

    mutating func writeMembership(_ set: Set<NodeName>, leaderLease: Int64) -> Bool {
        guard isLeader(leaderLease) else { return false }
        membership = set; revision += 1
        return true
    }

    enum PlacementWrite: Equatable { case written(old: Placement?), revisionChanged, notLeader }

    /// ControllerRunner's txn: the leader key still ours, the placement's mod revision
    /// still `expected`, the spec present, `alive/<mustBeDown>` absent; then put.
    mutating func writePlacement(_ vm: VMName, _ p: Placement, expected: Int64, leaderLease: Int64, mustBeDown: Int? = nil) -> PlacementWrite {
        guard isLeader(leaderLease) else { return .notLeader }
        guard var r = records[vm], r.placementRevision == expected else { return .revisionChanged }
        if let n = mustBeDown, alive[n] != nil { return .revisionChanged }
        let old = r.placement
        revision += 1
        r.placement = p; r.placementRevision = revision
        records[vm] = r
        placedOn[vmIndex[vm]!] = p.phase == .placed ? (p.node.flatMap { nodeIndex[$0] } ?? -1) : -1
        vmsVersion += 1
        return .written(old: old)
    }

    /// `vms/<vm>/runtime`, bound to the reporter's lease.
    mutating func putRuntime(_ vm: VMName, _ rt: VMRuntime, lease: Int64) -> Bool {
        guard leaseValid(lease) else { return false }
        let i = vmIndex[vm]!
        revision += 1
        records[vm]!.runtime = rt; runtimeLease[i] = lease
        vmsVersion += 1
        return true
    }

    mutating func record(_ e: ClusterEvent) {
        eventCount += 1
        if e.kind == .vmFailed, let vm = e.vm { failedWithEvent.insert(VMName(unchecked: vm)) }
    }

    /// What a node's runtime reads: the VMs placed on it, plus `also` (its own QEMUs),
    /// which gives HostReconciler the same answers as the whole of `vms/`.
    func snapshot(for node: Int, also: [Int]) -> [VMName: VMRecord] {
        var out: [VMName: VMRecord] = [:]
        for v in placedOn.indices where placedOn[v] == node { out[vmNames[v]] = records[vmNames[v]] }
        for v in also { out[vmNames[v]] = records[vmNames[v]] }
        return out
    }
}

import VigilCore
import VigilStore

/// Read-only views of the whole cluster, for the API. Any node answers for all:
/// everything comes from the store, except `local`, which is this node's own view.
public struct ClusterQueries: AgentPart {
    public let context: AgentContext

    public init(context: AgentContext) { self.context = context }

    /// The cluster as the store sees it. Never throws: without quorum it says so.
    public func status() async -> ClusterStatus {
        async let members = etcd.memberStatuses()
        var status = ClusterStatus(cluster: config.cluster.rawValue, answeredBy: config.node, quorum: false)
        do {
            let (nodes, leader) = try await nodesAndLeader()
            status.quorum = true
            status.leader = leader
            status.nodes = nodes
        } catch {
            status.problem = "\(error)"
        }
        status.etcdMembers = await members.map { EtcdMemberStatus(endpoint: $0.endpoint, healthy: $0.healthy, isLeader: $0.isLeader) }
        return status
    }

    /// Every registered node with its state; throws when the store does not answer.
    public func nodesAndLeader() async throws -> ([NodeStatus], NodeName?) {
        let r = try await etcd.txn([], then: [.getPrefix(keys.nodesPrefix), .getPrefix(keys.alivePrefix), .get(key: keys.leader)])
        var alive: [String: AliveRecord] = [:]
        for kv in r.ranges[1] {
            if let n = keys.name(of: kv.key, under: keys.alivePrefix) { alive[n] = try? kv.decode(AliveRecord.self) }
        }
        let leader = r.ranges[2].first.flatMap { try? $0.decode(LeaderRecord.self) }?.node
        let nodes = r.ranges[0].compactMap { try? $0.decode(NodeRecord.self) }
            .map { NodeStatus(record: $0, alive: alive[$0.name.rawValue], leader: leader) }
            .sorted { $0.name < $1.name }
        return (nodes, leader)
    }

    public func local() async -> LocalStatus { await state.local() }
}

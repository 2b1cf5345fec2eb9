/// The etcd keys of one cluster, all under `/vigil/<cluster>/` (ARCHITECTURE.md).
public struct KeySpace: Sendable, Equatable {
    public let root: String
    public init(cluster: ClusterName) { root = "/vigil/\(cluster.rawValue)/" }

    public var nodesPrefix: String { root + "nodes/" }
    public var alivePrefix: String { root + "alive/" }
    public var eventsPrefix: String { root + "events/" }
    public var leader: String { root + "leader" }
    /// The alive set the leader last saw, for the next leader.
    public var membership: String { root + "membership" }
    public func node(_ n: NodeName) -> String { nodesPrefix + n.rawValue }
    public func alive(_ n: NodeName) -> String { alivePrefix + n.rawValue }
    public func event(_ id: EventID) -> String { eventsPrefix + id.rawValue }
    public var vmsPrefix: String { root + "vms/" }
    public func vmSpec(_ vm: VMName) -> String { vmsPrefix + vm.rawValue + "/spec" }
    public func vmPlacement(_ vm: VMName) -> String { vmsPrefix + vm.rawValue + "/placement" }
    public func vmRuntime(_ vm: VMName) -> String { vmsPrefix + vm.rawValue + "/runtime" }
    /// The VM's live migration, if one was ever asked for (`MigrationRecord`).
    public func vmMigration(_ vm: VMName) -> String { vmsPrefix + vm.rawValue + "/migration" }
    public var ipamPrefix: String { root + "ipam/" }
    public func ipam(_ address: String) -> String { ipamPrefix + address }

    /// For a key under `vms/`: the VM and which of its keys it is (`spec`, `placement`, `runtime`).
    public func vmKey(_ key: String) -> (VMName, String)? {
        guard key.hasPrefix(vmsPrefix) else { return nil }
        let parts = key.dropFirst(vmsPrefix.count).split(separator: "/")
        guard parts.count == 2 else { return nil }
        return (VMName(unchecked: String(parts[0])), String(parts[1]))
    }

    /// The last path component of a key under `prefix`, or nil if it is not under it.
    public func name(of key: String, under prefix: String) -> String? {
        guard key.hasPrefix(prefix) else { return nil }
        let rest = key.dropFirst(prefix.count)
        return rest.isEmpty || rest.contains("/") ? nil : String(rest)
    }
}

/// Which address a migration destination listens on: its migration-role network when
/// that link is up, else a cluster network whose link is up, else its cluster address
/// (NetFT: reachable over any cluster network). Never the client network: only a
/// network given the migration role carries migration traffic besides the cluster ones.
public enum MigrationNetwork {
    public struct Choice: Equatable, Sendable {
        public var address: String
        /// The network's name, or `cluster-address`.
        public var network: String
        public var why: String
    }

    /// - Parameter links: the node's own view of its links (`alive/<node>`), network → up; absent means unknown (taken as up).
    public static func choose(networks: [NetworkAttachment], clusterAddress: String, links: [String: Bool]) -> Choice {
        let up = { (n: NetworkAttachment) in links[n.name] ?? true }
        if let m = networks.first(where: { $0.role == .migration && up($0) }) {
            return Choice(address: m.address, network: m.name, why: "migration network \(m.name)")
        }
        let downMigration = networks.filter { $0.role == .migration }.map(\.name)
        let prefix = downMigration.isEmpty ? "no migration network" : "migration network \(downMigration.joined(separator: ", ")) is down"
        if let c = networks.first(where: { $0.role == .cluster && up($0) }) {
            return Choice(address: c.address, network: c.name, why: "\(prefix); healthy cluster network \(c.name)")
        }
        return Choice(address: clusterAddress, network: "cluster-address", why: "\(prefix) and no cluster network link is up; the node's cluster address")
    }
}

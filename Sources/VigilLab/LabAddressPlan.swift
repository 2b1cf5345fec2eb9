/// Names and addresses of one lab, derived from its name, index and mode only
/// (docs/lab-and-config.md, "Lab address plan"). Pure: no I/O.
public struct LabAddressPlan: Sendable, Equatable {
    public let lab: String
    public let index: Int
    public let mode: LabMode

    public init(lab: String, index: Int, mode: LabMode) {
        self.lab = lab
        self.index = index
        self.mode = mode
    }

    /// Third octet base `S = L*8`.
    var subnetBase: Int { index * 8 }

    /// Last octet of a machine on the lab networks and in its cluster address.
    func hostOctet(_ host: LabHost) -> Int { host.isWitness ? 200 : host.index }

    /// `10.77.(S).0/21`: every lab address lies inside (namespace mode).
    public var block: String { "10.77.\(subnetBase).0/21" }

    /// The stable cluster address: a /32 on the host's loopback (namespaces), or `127.0.0.(10L+i)`
    /// (loopback mode; the witness of a 2-host lab is `127.0.0.(10L+9)`).
    public func clusterAddress(_ host: LabHost) -> String {
        switch mode {
        case .namespaces: "10.77.\(subnetBase + 6).\(hostOctet(host))"
        case .loopback: "127.0.0.\(10 * index + (host.isWitness ? 9 : host.index))"
        }
    }

    /// The host's address on a network (namespace mode); `/24`.
    public func address(_ host: LabHost, on net: LabNetwork) -> String {
        "10.77.\(subnetBase + net.subnetOffset).\(hostOctet(host))"
    }

    public func subnet(_ net: LabNetwork) -> String { "10.77.\(subnetBase + net.subnetOffset).0/24" }

    /// The root namespace's address on cluster1 and client (`.254`).
    public func rootAddress(on net: LabNetwork) -> String { "10.77.\(subnetBase + net.subnetOffset).254" }

    /// Networks the root namespace joins: cluster1 (the CLI path to cluster addresses) and client.
    public static let rootNetworks: [LabNetwork] = [.cluster1, .client]

    /// Networks a machine is attached to: all for hosts, the cluster networks for the witness.
    public func networks(of host: LabHost) -> [LabNetwork] {
        host.isWitness ? LabNetwork.allCases.filter(\.isCluster) : LabNetwork.allCases
    }

    // MARK: Names

    public var switchNamespace: String { "\(lab)-sw" }
    public func namespace(_ host: LabHost) -> String { host.isWitness ? "\(lab)-w" : "\(lab)-n\(host.index)" }
    /// Switch-side veth of a machine on a network (in the switch namespace).
    public func switchPort(_ host: LabHost, _ net: LabNetwork) -> String { "\(host.name)-\(net.bridge)" }
    /// Host-side veth name inside the host namespace: the network's name.
    public func hostDevice(_ net: LabNetwork) -> String { net.rawValue }
    /// Root-namespace veth.
    public func rootDevice(_ net: LabNetwork) -> String { "vl\(index)-\(net.bridge)" }
    /// Its peer in the switch namespace.
    public func rootPort(_ net: LabNetwork) -> String { "root-\(net.bridge)" }
    /// The bridge of partition side `group` (0 is the main bridge, which also holds the root port).
    public func bridge(_ net: LabNetwork, group: Int) -> String { group == 0 ? net.bridge : "\(net.bridge)p\(group)" }

    /// True when `name` is one of this lab's namespaces (exact pattern, so lab `demo` never matches `demo2-n1`
    /// nor lab `demo-n1`'s `demo-n1-n1`).
    public func ownsNamespace(_ name: String) -> Bool {
        guard name.hasPrefix(lab + "-") else { return false }
        let rest = name.dropFirst(lab.count + 1)
        if rest == "sw" || rest == "w" { return true }
        guard rest.first == "n", let i = Int(rest.dropFirst()), i >= 1, "n\(i)" == rest else { return false }
        return true
    }

    // MARK: Ports

    public static let etcdClientPort = 2379
    public static let etcdPeerPort = 2380
    public static let apiPort = 7480
    public static let heartbeatPort = 7481

    public func etcdClientURL(_ host: LabHost) -> String { "http://\(clusterAddress(host)):\(Self.etcdClientPort)" }
    public func etcdPeerURL(_ host: LabHost) -> String { "http://\(clusterAddress(host)):\(Self.etcdPeerPort)" }
    public func apiURL(_ host: LabHost) -> String { "http://\(clusterAddress(host)):\(Self.apiPort)" }
}

import Foundation

/// The lab's networks (namespace mode): a switch namespace `<lab>-sw` holds one bridge per
/// network; every machine (host or witness) gets a namespace and a veth pair per network,
/// switch side `n<i>-<br>` on the bridge, host side named after the network. The root
/// namespace joins cluster1 and client through `vl<L>-c1` / `vl<L>-cl`, routes each cluster
/// address via cluster1, and holds an `unreachable` route for the rest of the lab's /21.
///
/// Built with `ip -n NS -batch -`, one batch per namespace, so a lab of 9 hosts takes a few
/// dozen forks, not hundreds.
enum LabTopology {
    static let clientBridge = "brclient"

    // MARK: Queries

    /// Names from `ip netns list`.
    static func namespaces() throws -> [String] {
        try CommandRunner.check(["ip", "netns", "list"]).split(separator: "\n").compactMap {
            $0.split(separator: " ").first.map(String.init)
        }
    }

    /// Root-namespace interfaces whose veth peer lives in one of `namespaces` (by netns id), so
    /// `down` finds them without lab.json.
    static func rootLinks(peeredWith namespaces: [String]) throws -> [String] {
        let listed = try JSONSerialization.jsonObject(with: Data(try CommandRunner.check(["ip", "-j", "netns", "list"]).utf8)) as? [[String: Any]] ?? []
        let ids = Set(listed.compactMap { ns -> Int? in
            guard let name = ns["name"] as? String, namespaces.contains(name) else { return nil }
            return ns["id"] as? Int
        })
        guard !ids.isEmpty else { return [] }
        let links = try JSONSerialization.jsonObject(with: Data(try CommandRunner.check(["ip", "-j", "link", "show"]).utf8)) as? [[String: Any]] ?? []
        return links.compactMap { link in
            guard let id = link["link_netnsid"] as? Int, ids.contains(id) else { return nil }
            return link["ifname"] as? String
        }
    }

    /// Interface names in a namespace (nil: the root namespace).
    static func links(in namespace: String?) throws -> Set<String> {
        var args = ["ip"]
        if let namespace { args += ["-n", namespace] }
        let out = try CommandRunner.check(args + ["-o", "link", "show"])
        // "3: n1-c1@if2: <...>" → "n1-c1"
        return Set(out.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: ":", maxSplits: 2)
            guard fields.count >= 2 else { return nil }
            return fields[1].trimmingCharacters(in: .whitespaces).split(separator: "@").first.map(String.init)
        })
    }

    /// Refuses a lab whose /21 overlaps any route of the root namespace (all tables), naming the route.
    static func checkNoCollision(_ plan: LabAddressPlan) throws {
        let out = try CommandRunner.check(["ip", "-4", "-j", "route", "show", "table", "all"])
        guard let routes = try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]] else { return }
        let block = IPv4Prefix(plan.block)!
        for route in routes {
            guard let dst = route["dst"] as? String, dst != "default", let prefix = IPv4Prefix(dst) else { continue }
            if prefix.overlaps(block) {
                let dev = route["dev"] as? String ?? "?"
                throw LabError(.alreadyExists,
                    "lab index \(plan.index) uses \(plan.block), which collides with the route \(dst) dev \(dev) in the root namespace: pick another --index (0…\(LabSpec.maxIndex)), or run `vigil lab down` for the lab that owns it")
            }
        }
    }

    // MARK: Build

    /// Creates namespaces, bridges, veths, addresses, sysctls and host routes.
    static func build(_ record: LabRecord) throws {
        let plan = record.plan
        let machines = record.spec.machines
        let sw = plan.switchNamespace
        try CommandRunner.check(["ip", "netns", "add", sw])
        for m in machines {
            let ns = plan.namespace(m)
            try CommandRunner.check(["ip", "netns", "add", ns])
            // Before any device moves in, so every device inherits the defaults.
            try CommandRunner.check(["ip", "netns", "exec", ns, "sh", "-c", hostSysctls])
        }

        var root: [String] = []
        for net in LabAddressPlan.rootNetworks {
            let dev = plan.rootDevice(net)
            root += [
                "link add \(dev) type veth peer name \(plan.rootPort(net)) netns \(sw)",
                "addr add \(plan.rootAddress(on: net))/24 dev \(dev)",
                "link set \(dev) up",
            ]
        }
        for m in machines {
            root.append("route add \(plan.clusterAddress(m))/32 via \(plan.address(m, on: .cluster1)) dev \(plan.rootDevice(.cluster1)) onlink")
        }
        // Any other lab address fails here instead of following the default route off the machine.
        root.append("route add unreachable \(plan.block)")

        var swLines = ["link set lo up"]
        for net in LabNetwork.allCases {
            swLines += ["link add \(net.bridge) type bridge", "link set \(net.bridge) up"]
        }
        for m in machines {
            for net in plan.networks(of: m) {
                let port = plan.switchPort(m, net)
                swLines += [
                    "link add \(port) type veth peer name \(plan.hostDevice(net)) netns \(plan.namespace(m))",
                    "link set \(port) master \(net.bridge) up",
                ]
            }
        }
        try batch(nil, root)
        for net in LabAddressPlan.rootNetworks {
            swLines.append("link set \(plan.rootPort(net)) master \(net.bridge) up")
        }
        try batch(sw, swLines)
        for m in machines {
            try batch(plan.namespace(m), hostLines(m, record: record))
        }
    }

    /// Sysctls of a host namespace: skip routes over links without carrier (NetFT's static
    /// fallback), no forwarding, no reverse-path filter (replies may come back over the other
    /// cluster network while routes are being switched).
    static let hostSysctls = """
        set -e
        echo 1 > /proc/sys/net/ipv4/conf/all/ignore_routes_with_linkdown
        echo 1 > /proc/sys/net/ipv4/conf/default/ignore_routes_with_linkdown
        echo 0 > /proc/sys/net/ipv4/ip_forward
        echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter
        echo 0 > /proc/sys/net/ipv4/conf/default/rp_filter
        """

    static func hostLines(_ m: LabHost, record: LabRecord) -> [String] {
        let plan = record.plan
        let own = plan.clusterAddress(m)
        var lines = ["link set lo up", "addr add \(own)/32 dev lo"]
        for net in plan.networks(of: m) {
            let dev = plan.hostDevice(net)
            let address = plan.address(m, on: net)
            if net == .client {
                // VM taps join this bridge later; the host's client address lives on it.
                lines += [
                    "link add \(clientBridge) type bridge",
                    "link set \(dev) master \(clientBridge) up",
                    "addr add \(address)/24 dev \(clientBridge)",
                    "link set \(clientBridge) up",
                ]
            } else {
                lines += ["addr add \(address)/24 dev \(dev)", "link set \(dev) up"]
            }
        }
        lines += peerRoutes(m, record: record).map { "route add \($0)" }
        return lines
    }

    /// Host routes to every peer's cluster address: via cluster1 (metric 10), via cluster2 (metric 20),
    /// both with the own cluster address as source so connections survive a route switch.
    static func peerRoutes(_ m: LabHost, record: LabRecord) -> [String] {
        let plan = record.plan
        let own = plan.clusterAddress(m)
        return record.spec.machines.filter { $0 != m }.flatMap { peer in
            [(LabNetwork.cluster1, 10), (LabNetwork.cluster2, 20)].map { net, metric in
                "\(plan.clusterAddress(peer))/32 via \(plan.address(peer, on: net)) dev \(plan.hostDevice(net)) metric \(metric) src \(own) onlink"
            }
        }
    }

    /// Reinstalls the static host routes of every machine (`ip route replace`), undoing any route
    /// changes made since `up` (by a test, or later by the heartbeat service).
    static func resetRoutes(_ record: LabRecord) throws {
        for m in record.spec.machines {
            // Drop every route to a peer's cluster address, then add the static pair again.
            var lines = record.spec.machines.filter { $0 != m }.map { "route flush root \(record.plan.clusterAddress($0))/32" }
            lines += peerRoutes(m, record: record).map { "route add \($0)" }
            try batch(record.plan.namespace(m), lines)
        }
    }

    // MARK: Faults

    /// Puts every switch-side port where the lab's faults and partition say: cut `.carrier` → port
    /// down on its bridge; cut `.silent` → port up with no bridge (`nomaster`); otherwise up on the
    /// bridge of its partition side.
    ///
    /// Partition without a packet filter: side 0 keeps the main bridges (and the root namespace's
    /// ports); side k ≥ 1 moves its machines' ports, on every network, to bridges `<br>p<k>` made on
    /// demand. Each side then talks within itself and to no other side; carriers stay up, as in a
    /// real switch partition, so only heartbeats and timeouts notice. Healing moves the ports back.
    static func applyLinks(_ record: LabRecord) throws {
        let plan = record.plan
        let sw = plan.switchNamespace
        let existing = try links(in: sw)
        var lines: [String] = []
        var sideOf: [Int: Int] = [:]
        for (side, members) in record.partition.enumerated() {
            for index in members { sideOf[index] = side }
        }
        for side in 1..<max(1, record.partition.count) {
            for net in LabNetwork.allCases where !existing.contains(plan.bridge(net, group: side)) {
                let br = plan.bridge(net, group: side)
                lines += ["link add \(br) type bridge", "link set \(br) up"]
            }
        }
        for m in record.spec.machines {
            for net in plan.networks(of: m) {
                let port = plan.switchPort(m, net)
                let bridge = plan.bridge(net, group: sideOf[m.index] ?? 0)
                switch record.faults.last(where: { $0.host == m && $0.net == net })?.cut {
                case .carrier: lines += ["link set \(port) master \(bridge)", "link set \(port) down"]
                case .silent: lines += ["link set \(port) nomaster", "link set \(port) up"]
                case nil: lines += ["link set \(port) master \(bridge)", "link set \(port) up"]
                }
            }
        }
        try batch(sw, lines)
    }

    // MARK: Helpers

    /// `ip [-n NS] -batch -` with the lines on stdin.
    static func batch(_ namespace: String?, _ lines: [String]) throws {
        guard !lines.isEmpty else { return }
        var args = ["ip"]
        if let namespace { args += ["-n", namespace] }
        try CommandRunner.check(args + ["-batch", "-"], input: lines.joined(separator: "\n") + "\n")
    }
}

/// An IPv4 prefix, for the collision check.
struct IPv4Prefix: Equatable {
    var address: UInt32
    var length: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/")
        let octets = parts[0].split(separator: ".").compactMap { UInt32($0) }
        guard octets.count == 4, octets.allSatisfy({ $0 < 256 }) else { return nil }
        length = parts.count > 1 ? Int(parts[1]) ?? 32 : 32
        guard (0...32).contains(length) else { return nil }
        address = octets.reduce(0) { $0 << 8 | $1 }
    }

    func mask(_ len: Int) -> UInt32 { len == 0 ? 0 : ~UInt32(0) << (32 - len) }

    func overlaps(_ other: IPv4Prefix) -> Bool {
        let len = min(length, other.length)
        return address & mask(len) == other.address & mask(len)
    }
}

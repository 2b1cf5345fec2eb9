import Foundation
import Yams

/// The agent config `vigild --config FILE`, field for field as in docs/lab-and-config.md.
/// The lab only writes it; the agent owns its parsing and validation.
struct AgentConfigFile: Codable, Equatable {
    struct Etcd: Codable, Equatable {
        var endpoints: [String]
        var leaseTTL: Double
    }
    struct API: Codable, Equatable { var port: Int }
    struct Heartbeat: Codable, Equatable {
        var port: Int
        var interval: Double
        var missThreshold: Int
    }
    struct Network: Codable, Equatable {
        var name: String
        var role: String
        var address: String
        var prefix: Int
        var bridge: String?
    }
    struct Capacity: Codable, Equatable {
        var cpus: Int
        var memoryMiB: Int
    }

    var cluster: String
    var node: String
    var token: String
    var clusterKey: String
    var clusterAddress: String
    var stateDir: String
    var storageDir: String
    var etcd: Etcd
    var api: API
    var heartbeat: Heartbeat
    var networks: [Network]
    var capacity: Capacity
    /// Guest kernel and initramfs for VMs (guest/out of the repo), when found.
    var guest: Guest?
    /// Failover policy limit (`ha.maxFailovers`), when the lab sets one.
    var maxFailovers: Int?

    struct Guest: Codable, Equatable {
        var kernel: String
        var initrd: String
    }
}

/// The CLI's config (`client.yaml`).
struct ClientConfigFile: Codable, Equatable {
    var cluster: String
    var endpoints: [String]
    var token: String
}

enum LabConfigFiles {
    /// Where the CLI looks last for a client config; written for the default lab only.
    static let runClientConfig = "/run/vigil/client.yaml"
    static let defaultLab = "demo"

    /// etcd client endpoints for a host's agent: its own member first, else starting at a
    /// member chosen by host index so agents without a member spread over the members.
    static func etcdEndpoints(for host: LabHost, record: LabRecord) -> [String] {
        let members = record.spec.etcdMembers
        let start = members.firstIndex(of: host) ?? ((host.index - 1) % members.count)
        let ordered = members[start...] + members[..<start]
        return ordered.map(record.plan.etcdClientURL)
    }

    static func agentConfig(for host: LabHost, record: LabRecord) -> AgentConfigFile {
        let plan = record.plan
        let networks: [AgentConfigFile.Network]
        switch plan.mode {
        case .namespaces:
            networks = plan.networks(of: host).map { net in
                .init(name: net.rawValue, role: net.role, address: plan.address(host, on: net), prefix: 24,
                      bridge: net == .client ? LabTopology.clientBridge : nil)
            }
        case .loopback:
            // One cluster network: the host's own loopback address, so heartbeats still flow.
            networks = [.init(name: LabNetwork.cluster1.rawValue, role: "cluster", address: plan.clusterAddress(host), prefix: 8, bridge: nil)]
        }
        return AgentConfigFile(
            cluster: record.spec.name,
            node: host.name,
            token: record.token,
            clusterKey: record.clusterKey,
            clusterAddress: plan.clusterAddress(host),
            stateDir: record.hostDirectory(host),
            storageDir: record.directory + "/" + storageDirectoryName,
            etcd: .init(endpoints: etcdEndpoints(for: host, record: record), leaseTTL: record.spec.leaseTTL.seconds),
            api: .init(port: LabAddressPlan.apiPort),
            // 100 ms × 3: a lost network is steered around within ~0.3 s, so TCP between cluster
            // addresses stalls ~0.45 s; at 250 ms × 4 it stalled 1.7 s, close to a 2 s lease.
            heartbeat: .init(port: LabAddressPlan.heartbeatPort, interval: 0.1, missThreshold: 3),
            networks: networks,
            capacity: .init(cpus: record.spec.cpus, memoryMiB: record.spec.memoryMiB),
            guest: guestImage(record: record).map { .init(kernel: $0.kernel, initrd: $0.initrd) },
            maxFailovers: record.spec.maxFailovers)
    }

    /// The guest image built by guest/build.sh: `$VIGIL_GUEST_DIR`, else `guest/out` of the
    /// repository whose `.build/<config>/vigild` the lab runs. The uncompressed `vmlinux`
    /// boots ~3 s faster under TCG than `vmlinuz` (guest/README.md).
    static func guestImage(record: LabRecord) -> (kernel: String, initrd: String)? {
        var dirs: [String] = []
        if let d = ProcessInfo.processInfo.environment["VIGIL_GUEST_DIR"], !d.isEmpty { dirs.append(d) }
        if let vigild = record.vigildBinary {
            let repo = URL(fileURLWithPath: vigild).resolvingSymlinksInPath()
                .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            dirs.append(repo.appendingPathComponent("guest/out").path)
        }
        for d in dirs {
            let initrd = d + "/initramfs.cpio.gz"
            guard FileManager.default.fileExists(atPath: initrd) else { continue }
            for k in ["vmlinux", "vmlinuz"] where FileManager.default.fileExists(atPath: d + "/" + k) {
                return (d + "/" + k, initrd)
            }
        }
        return nil
    }

    static func clientConfig(record: LabRecord) -> ClientConfigFile {
        ClientConfigFile(cluster: record.spec.name, endpoints: record.spec.hosts.map(record.plan.apiURL), token: record.token)
    }

    /// YAML laid out as in docs/lab-and-config.md (flow style for lists and small maps); strings
    /// double-quoted where YAML could read them as something else (hex tokens as numbers, URLs).
    static func render(_ c: AgentConfigFile) -> String {
        let networks = c.networks.map { n in
            "  - {name: \(n.name), role: \(n.role), address: \(n.address), prefix: \(n.prefix)\(n.bridge.map { ", bridge: \($0)" } ?? "")}"
        }
        return ([
            "cluster: \(c.cluster)",
            "node: \(c.node)",
            "token: \(quoted(c.token))",
            "clusterKey: \(quoted(c.clusterKey))",
            "clusterAddress: \(c.clusterAddress)",
            "stateDir: \(quoted(c.stateDir))",
            "storageDir: \(quoted(c.storageDir))",
            "etcd:",
            "  endpoints: \(flowList(c.etcd.endpoints))",
            "  leaseTTL: \(c.etcd.leaseTTL)",
            "api:",
            "  port: \(c.api.port)",
            "heartbeat:",
            "  port: \(c.heartbeat.port)",
            "  interval: \(c.heartbeat.interval)",
            "  missThreshold: \(c.heartbeat.missThreshold)",
            "networks:",
        ] + networks + [
            "capacity: {cpus: \(c.capacity.cpus), memoryMiB: \(c.capacity.memoryMiB)}",
        ] + (c.guest.map { ["guest: {kernel: \(quoted($0.kernel)), initrd: \(quoted($0.initrd))}"] } ?? [])
          + (c.maxFailovers.map { ["ha: {maxFailovers: \($0)}"] } ?? [])
        ).joined(separator: "\n") + "\n"
    }

    static func render(_ c: ClientConfigFile) -> String {
        "cluster: \(c.cluster)\nendpoints: \(flowList(c.endpoints))\ntoken: \(quoted(c.token))\n"
    }

    static func quoted(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    static func flowList(_ items: [String]) -> String { "[" + items.map(quoted).joined(separator: ", ") + "]" }

    static func write(_ text: String, to path: String) throws {
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    /// Writes every host's vigild.yaml, the lab's client.yaml, and for lab `demo` (as root) /run/vigil/client.yaml.
    static func writeAll(record: LabRecord) throws {
        for host in record.spec.hosts {
            try write(render(agentConfig(for: host, record: record)), to: record.hostDirectory(host) + "/vigild.yaml")
        }
        let client = render(clientConfig(record: record))
        try write(client, to: record.directory + "/client.yaml")
        if record.spec.name == defaultLab && geteuid() == 0 {
            try FileManager.default.createDirectory(atPath: "/run/vigil", withIntermediateDirectories: true)
            try write(client, to: runClientConfig)
        }
    }

    /// Removes /run/vigil/client.yaml if it belongs to lab `name` (its cluster field says so).
    static func removeRunClientConfig(lab name: String) {
        guard name == defaultLab, let text = try? String(contentsOfFile: runClientConfig, encoding: .utf8),
              let config = try? YAMLDecoder().decode(ClientConfigFile.self, from: text), config.cluster == name
        else { return }
        try? FileManager.default.removeItem(atPath: runClientConfig)
    }

    /// The lab's cluster storage directory (VM disks), shared by its hosts as a SAN would be.
    static let storageDirectoryName = "storage"

    /// Random lower-case hex of `bytes` bytes.
    static func randomHex(bytes: Int) -> String {
        var rng = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: .min ... .max, using: &rng)) }.joined()
    }
}

extension Duration {
    /// Whole and fractional seconds as a Double (for YAML and etcd flags).
    var seconds: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }

    var milliseconds: Int { Int((seconds * 1000).rounded()) }
}

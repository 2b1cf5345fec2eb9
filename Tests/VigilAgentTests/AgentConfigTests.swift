import Testing
import VigilCore
@testable import VigilAgent

struct AgentConfigTests {
    static let valid = """
    cluster: demo
    node: n1
    token: "0123456789abcdef0123"
    clusterKey: "0123456789abcdef0123456789abcdef"
    clusterAddress: 10.77.6.1
    stateDir: /var/lib/vigil/n1
    etcd:
      endpoints: [http://10.77.6.1:2379, http://10.77.6.2:2379]
      leaseTTL: 2
    api: {port: 7480}
    heartbeat: {port: 7481, interval: 0.25, missThreshold: 4}
    networks:
      - {name: cluster1, role: cluster, address: 10.77.1.1, prefix: 24}
      - {name: client, role: client, address: 10.77.3.1, bridge: brclient}
    capacity: {cpus: 2, memoryMiB: 4096}
    """

    @Test func parsesAValidConfig() throws {
        let c = try AgentConfig.parse(yaml: Self.valid)
        #expect(c.node.rawValue == "n1")
        #expect(c.leaseTTL == .seconds(2))
        #expect(c.networks.count == 2 && c.networks[1].bridge == "brclient" && c.networks[1].prefix == 24)
        #expect(c.heartbeatInterval == .milliseconds(250))
        #expect(c.keys.alive(c.node) == "/vigil/demo/alive/n1")
    }

    @Test func readsTheFailoverPolicy() throws {
        let c = try AgentConfig.parse(yaml: Self.valid + "\nha: {maxFailovers: 5, failoverPeriod: 600, failbackDelay: 2.5}\n")
        #expect(c.ha.maxFailovers == 5 && c.ha.failoverPeriod == .seconds(600) && c.ha.failbackDelay == .milliseconds(2500))
        #expect(try AgentConfig.parse(yaml: Self.valid).ha == ClusterController.Settings())
    }

    @Test func flagsOverrideTheFile() throws {
        let c = try AgentConfig.parse(yaml: Self.valid, overrides: .init(node: "n9", apiPort: 9000, leaseTTL: 5))
        #expect(c.node.rawValue == "n9" && c.apiPort == 9000 && c.leaseTTL == .seconds(5))
    }

    /// Each bad value is refused with the name of its field.
    @Test(arguments: [
        ("node: n1", "node: N1", "node"),
        ("node: n1\n", "", "node"),
        ("token: \"0123456789abcdef0123\"", "token: short", "token"),
        ("clusterKey: \"0123456789abcdef0123456789abcdef\"", "clusterKey: \"xyz\"", "clusterKey"),
        ("clusterAddress: 10.77.6.1", "clusterAddress: 10.77.6", "clusterAddress"),
        ("stateDir: /var/lib/vigil/n1", "stateDir: relative/dir", "stateDir"),
        ("leaseTTL: 2", "leaseTTL: 0.5", "etcd.leaseTTL"),
        ("leaseTTL: 2", "leaseTTL: two", "etcd.leaseTTL"),
        ("http://10.77.6.2:2379]", "10.77.6.2:2379]", "etcd.endpoints[1]"),
        ("api: {port: 7480}", "api: {port: 70000}", "api.port"),
        ("api: {port: 7480}", "api: {prot: 7480}", "api.prot"),
        ("role: client", "role: clients", "networks[1].role"),
        ("interval: 0.25", "interval: 0", "heartbeat.interval"),
        ("cpus: 2", "cpus: 0", "capacity.cpus"),
        ("cluster: demo", "cluster: demo\ncolour: blue", "colour"),
        ("cluster: demo", "cluster: demo\nha: {maxFailovers: 0}", "ha.maxFailovers"),
        ("cluster: demo", "cluster: demo\nha: {failoverPeriod: 0.1}", "ha.failoverPeriod"),
        ("cluster: demo", "cluster: demo\nha: {failbak: 3}", "ha.failbak"),
    ])
    func refusesBadValuesNamingTheField(original: String, replacement: String, field: String) throws {
        let yaml = Self.valid.replacingOccurrences(of: original, with: replacement)
        #expect(yaml != Self.valid, "the test's substitution did not apply")
        do {
            _ = try AgentConfig.parse(yaml: yaml)
            Issue.record("accepted a bad \(field)")
        } catch let e as ConfigError {
            #expect(e.field == field, "\(e)")
        }
    }

    @Test func refusesNonYAMLAndMissingFile() {
        #expect(throws: ConfigError.self) { try AgentConfig.parse(yaml: "[1, 2") }
        #expect(throws: ConfigError.self) { try AgentConfig.parse(yaml: "- a\n- b") }
        #expect(throws: ConfigError.self) { try AgentConfig.load(path: "/nonexistent/vigild.yaml") }
    }
}

extension String {
    func replacingOccurrences(of a: String, with b: String) -> String {
        guard !a.isEmpty else { return self }
        var out = "", rest = Substring(self)
        while let r = rest.range(of: a) { out += rest[..<r.lowerBound] + b; rest = rest[r.upperBound...] }
        return out + rest
    }
}

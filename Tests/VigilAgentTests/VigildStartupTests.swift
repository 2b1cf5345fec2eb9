import Foundation
import Testing
import VigilStore
import VigilTestKit

/// The real `vigild` binary refuses bad starts with a message that names the problem,
/// and writes nothing to etcd when it does.
@Suite(.enabled(if: BuiltBinaries.haveAgent && Capabilities.hasEtcd, "needs the built vigild and etcd"), .serialized)
struct VigildStartupTests {
    let etcd: EtcdProcess
    let dir: String

    init() throws {
        etcd = try EtcdProcess()
        dir = NSTemporaryDirectory() + "vigild-start-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    func config(_ extra: String = "", node: String = "n1") -> String {
        """
        cluster: starttest
        node: \(node)
        token: "0123456789abcdef0123"
        clusterKey: "0123456789abcdef0123456789abcdef"
        clusterAddress: 127.0.0.1
        stateDir: \(dir)/state
        etcd: {endpoints: ["\(etcd.endpoint)"]}
        api: {port: \(try! freePort())}
        networks: [{name: cluster1, role: cluster, address: 127.0.0.1, prefix: 8}]
        \(extra)
        """
    }

    func start(_ yaml: String) throws -> ProcessResult {
        let path = dir + "/vigild-\(UUID().uuidString.prefix(6)).yaml"
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return try runProcess(BuiltBinaries.vigild, ["--config", path], timeout: 20)
    }

    func nothingWritten() async throws -> Bool {
        let c = try EtcdClient(endpoints: [etcd.endpoint])
        return try await c.getPrefix("/vigil/").kvs.isEmpty
    }

    @Test func missingQEMUIsAClearErrorAtStart() async throws {
        let r = try start(config("qemu: {binary: no-such-qemu-binary}"))
        #expect(r.status == 69)
        #expect(r.stderr.contains("QEMU binary missing") && r.stderr.contains("qemu.binary"), "\(r.stderr)")
        #expect(try await nothingWritten())
    }

    @Test(arguments: [
        ("node: N1", "node"), ("node: a_b", "node"), ("colour: blue", "colour"), ("qemu: {accel: fast}", "qemu.accel"),
    ])
    func badConfigIsRefusedNamingTheField(line: String, field: String) async throws {
        var yaml = config()
        if line.hasPrefix("node:") { yaml = config(node: String(line.dropFirst(6))) } else { yaml += "\n" + line }
        let r = try start(yaml)
        #expect(r.status == 78, "\(r.status): \(r.stderr)")
        #expect(r.stderr.contains("config field '\(field)'"), "\(r.stderr)")
        #expect(try await nothingWritten())
    }

    @Test func missingConfigFileIsRefused() throws {
        let r = try runProcess(BuiltBinaries.vigild, ["--config", dir + "/absent.yaml"], timeout: 10)
        #expect(r.status == 78 && r.stderr.contains("cannot read"), "\(r.stderr)")
    }
}

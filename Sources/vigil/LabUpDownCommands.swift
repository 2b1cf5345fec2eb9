import ArgumentParser
import Foundation
import VigilLab

struct LabUpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "up",
        abstract: "Make N test hosts with etcd members and agents (root; --loopback without).")

    @OptionGroup var options: LabOptions

    @Option(help: "Number of hosts (1…\(LabSpec.maxNodes)).")
    var nodes: Int = 3

    @Option(help: "Lab index L (0…\(LabSpec.maxIndex)): subnets 10.77.(8L+k).0/24, loopback 127.0.0.(10L+i).")
    var index: Int = 0

    @Flag(help: "Hosts on 127.0.0.x instead of network namespaces (no root needed, no link faults).")
    var loopback = false

    @Option(help: "Agent lease TTL in seconds.")
    var leaseTTL: Double = 2

    @Flag(help: "Start etcd only, no vigild.")
    var noAgents = false

    @Option(help: "vigild binary (default: next to this vigil).")
    var vigild: String?

    @Option(help: "etcd binary.")
    var etcd: String = "etcd"

    func run() async throws {
        var mode: LabMode = loopback ? .loopback : .namespaces
        if mode == .namespaces && !Lab.namespacesAvailable {
            FileHandle.standardError.write(Data(
                "vigil lab: network namespaces need root and a working `ip netns`; using loopback mode instead (hosts on 127.0.0.x, no link faults)\n".utf8))
            mode = .loopback
        }
        let vigildPath = noAgents ? nil : try vigild ?? defaultVigild()
        let spec = LabSpec(
            name: options.name, index: index, nodes: nodes, mode: mode,
            leaseTTL: .milliseconds(Int64((leaseTTL * 1000).rounded())), etcdPath: etcd, vigildPath: vigildPath)
        let lab = try labCall { try Lab.up(spec) }
        let status = try lab.status()
        try options.emit(status) {
            var lines = ["lab \(lab.name) is up: \(nodes) hosts, \(mode == .namespaces ? "namespaces \(lab.name)-n1…" : "loopback mode")"]
            lines += status.hosts.map { "  \($0.name)  \($0.clusterAddress)" }
            lines.append("etcd: \(lab.etcdEndpoints.joined(separator: ","))")
            if vigildPath != nil { lines.append("api:  \(lab.apiEndpoints.joined(separator: ","))") }
            lines.append("client config: \(lab.clientConfigPath)  (export VIGIL_CONFIG=\(lab.clientConfigPath))")
            lines.append("logs and state: \(lab.directory)")
            return lines.joined(separator: "\n")
        }
    }

    /// `vigild` in the directory of the running `vigil` executable.
    func defaultVigild() throws -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent("vigild").path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            FileHandle.standardError.write(Data(
                "vigil lab: no vigild next to vigil (\(path)): build it (`swift build --product vigild`), pass --vigild PATH, or use --no-agents\n".utf8))
            throw ExitCode.failure
        }
        return path
    }
}

struct LabDownCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "down",
        abstract: "Remove everything a lab made (also its leftovers after a crash); idempotent.")

    @OptionGroup var options: LabOptions

    func run() async throws {
        let report = try labCall { try Lab.down(name: options.name) }
        try options.emit(report) {
            if report.wasAbsent { return "lab \(options.name): nothing to remove" }
            return "lab \(options.name) removed: \(report.deletedNamespaces.count) namespaces, \(report.killedPids.count) processes"
        }
    }
}

struct LabStatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Hosts, namespaces, processes and faults of a lab.")

    @OptionGroup var options: LabOptions

    func run() async throws {
        let status = try labCall { try options.load().status() }
        try options.emit(status) {
            var lines = ["lab \(status.name) (index \(status.index), \(status.mode.rawValue)) at \(status.directory)"]
            for h in status.hosts {
                var row = "  \(h.name.padding(toLength: 4, withPad: " ", startingAt: 0)) \(h.clusterAddress.padding(toLength: 15, withPad: " ", startingAt: 0))"
                if let ns = h.namespace { row += "  ns \(ns) \(h.namespaceExists == true ? "ok" : "MISSING")" }
                if let s = h.etcdState { row += "  etcd \(s)\(h.etcdPid.map { " (\($0))" } ?? "")" }
                if let s = h.vigildState { row += "  vigild \(s)\(h.vigildPid.map { " (\($0))" } ?? "")" }
                if let s = h.watchdogState { row += "  watchdog \(s)\(h.watchdogPid.map { " (\($0))" } ?? "")" }
                lines.append(row)
            }
            for f in status.faults { lines.append("  cut: \(f.host) \(f.net) (\(f.cut.rawValue))") }
            if !status.partition.isEmpty {
                lines.append("  partition: " + status.partition.map { $0.map { LabHost($0).name }.joined(separator: ",") }.joined(separator: " | "))
            }
            return lines.joined(separator: "\n")
        }
    }
}

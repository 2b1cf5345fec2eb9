import Foundation
import Testing
import VigilTestKit
import VigilWatchdog
@testable import VigilLab

/// Every agent host of a lab runs its own vigil-watchdog, started before its vigild, on the
/// host's state directory; `down` removes it. Lab index 19 is these tests' (docs/lab-and-config.md).
@Suite(.serialized) struct WatchdogLabTests {
    static let index = 19

    static func temporaryBase() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("vigil-wdlab-\(getpid())-\(UInt32.random(in: 0...UInt32.max))").path
    }

    /// A temporary bin directory as `up` expects it: `vigild` (a link to `vigild`) and, unless
    /// `withWatchdog` is false, the built `vigil-watchdog` beside it.
    static func binDirectory(vigild: String, withWatchdog: Bool = true) throws -> String {
        let bin = temporaryBase() + "-bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: bin + "/vigild", withDestinationPath: vigild)
        if withWatchdog {
            try FileManager.default.createSymbolicLink(atPath: bin + "/vigil-watchdog", withDestinationPath: BuiltBinaries.vigilWatchdog)
        }
        return bin
    }

    /// Field `n` (1-based, as in proc(5)) of /proc/PID/stat.
    static func statField(_ pid: Int32, _ n: Int) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return n - 3 < fields.count ? String(fields[n - 3]) : nil
    }

    /// Each host's watchdog runs, is armed by its vigild, and started no later than vigild.
    static func checkWatchdogs(_ lab: Lab) async throws -> [Int32] {
        var pids: [Int32] = []
        for host in lab.hosts {
            let pid = try #require(lab.pid(host: host, process: .watchdog), "no watchdog on \(host): \(lab.logFile(host: host, process: .watchdog))")
            // vigild arms it with its fence deadline as soon as it holds a lease.
            let client = WatchdogClient(socketPath: lab.record.watchdogSocket(host))
            var status = try await client.status()
            _ = try await eventually(timeout: .seconds(10), every: .milliseconds(100)) {
                status = try await client.status(); return status.state == .armed
            }
            #expect(status.pid == pid && status.state == .armed && status.holder == host.name, "\(host): \(status)")
            #expect(try lab.status().hosts.first { $0.name == host.name }?.watchdogState == "running")
            let vigild = try #require(lab.pid(host: host, process: .vigild))
            let started = (statField(pid, 22).flatMap { UInt64($0) }, statField(vigild, 22).flatMap { UInt64($0) })
            #expect(started.0 != nil && started.0! <= started.1!, "\(host): the watchdog must start before vigild")
            pids.append(pid)
        }
        return pids
    }

    @Test(.enabled(if: Capabilities.hasNetns && Capabilities.hasEtcd && BuiltBinaries.haveAgent && BuiltBinaries.haveWatchdog))
    func everyAgentHostRunsAWatchdogAtHighPriorityAndDownRemovesItRequiresNetns() async throws {
        let spec = LabSpec(name: "w" + LabConfigFiles.randomHex(bytes: 3), index: Self.index, nodes: 2, vigildPath: BuiltBinaries.vigild)
        let lab = try await Lab.upOffPool(spec)
        defer { _ = try? lab.down() }
        let pids = try await Self.checkWatchdogs(lab)
        for pid in pids {
            #expect(Self.statField(pid, 19) == "-15", "the watchdog raised its own priority (root)")
        }
        let report = try await lab.off { try $0.down() }
        #expect(Set(pids).isSubset(of: Set(report.killedPids)))
        #expect(pids.allSatisfy { !LabDaemons.isAlive($0) }, "down leaves no watchdog behind")
    }

    @Test(.enabled(if: Capabilities.hasEtcd && BuiltBinaries.haveAgent && BuiltBinaries.haveWatchdog))
    func loopbackLabRunsAWatchdogPerHostRequiresEtcd() async throws {
        let base = Self.temporaryBase()
        defer { try? FileManager.default.removeItem(atPath: base) }
        let spec = LabSpec(name: "wloop", index: Self.index, nodes: 2, mode: .loopback, vigildPath: BuiltBinaries.vigild, baseDirectory: base)
        let lab = try await Lab.upOffPool(spec)
        defer { _ = try? lab.down() }
        let pids = try await Self.checkWatchdogs(lab)
        try await lab.off { try $0.down() }
        #expect(pids.allSatisfy { !LabDaemons.isAlive($0) })
    }

    @Test(.enabled(if: Capabilities.hasEtcd))
    func aMissingWatchdogBinaryIsNamedBeforeAnythingStartsRequiresEtcd() throws {
        let base = Self.temporaryBase()
        let bin = try Self.binDirectory(vigild: "/bin/true", withWatchdog: false)
        defer { for dir in [base, bin] { try? FileManager.default.removeItem(atPath: dir) } }
        let spec = LabSpec(name: "wmissing", index: Self.index, nodes: 1, mode: .loopback, vigildPath: bin + "/vigild", baseDirectory: base)
        let error = #expect(throws: LabError.self) { try Lab.up(spec) }
        #expect(error?.code == .missingBinary)
        #expect(error?.message.contains("vigil-watchdog not found at \(bin)/vigil-watchdog") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: base + "/wmissing"), "nothing claimed or started")
    }
}

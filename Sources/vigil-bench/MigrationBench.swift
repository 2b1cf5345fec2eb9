import Foundation
import Logging
import VigilClient
import VigilCore
import VigilLab
import VigilQEMU

/// `migrate.*`: Vigil's live migration of a guest (idle, dirtying 64 and 256 MiB/s) against a
/// bare QEMU migration of the same guest — the very QEMU argv Vigil used, read from /proc —
/// driven by hand over QMP, in the same lab, over the same network (cluster1):
/// - `migrate.{idle,64M,256M}`: the peer uses Vigil's migration parameters (the orchestration's cost);
/// - `migrate.tuned.{64M,256M}`: the peer uses QEMU's defaults (128 MiB/s, 300 ms; no auto-converge).
/// Total time: request → guest running on the destination, including the destination QEMU's start.
/// Downtime: QEMU's own figure from the source; for Vigil plus its switch-over (ownership CAS, then `cont`).
struct MigrationBench: Bench {
    let name = "migrate"

    struct Sample {
        var totalS: Double
        var downtimeMs: Double
        var passes: Double
        var converged: Bool
        /// The guest's own pause: QEMU's STOP stamp on the source to its RESUME stamp on the destination.
        var pauseMs: Double = .nan
    }

    static let workloads: [(name: String, rate: Int)] = [("idle", 0), ("64M", 64), ("256M", 256)]

    func run(quick: Bool) async throws -> [BenchRecord] {
        guard geteuid() == 0, Lab.namespacesAvailable else { throw BenchSkip(reason: "needs root and network namespaces") }
        let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        let vigild = binDir + "/vigild"
        guard FileManager.default.isExecutableFile(atPath: vigild) else { throw BenchSkip(reason: "vigild not built next to vigil-bench (\(vigild))") }
        let runs = quick ? 1 : 3
        let lab = try Lab.up(LabSpec(name: "benchmig", index: 18, nodes: 3, vigildPath: vigild, cpus: 4, memoryMiB: 4096))
        defer { _ = try? lab.down() }
        let api = APIClient(config: try ClientConfig.parse(file: lab.clientConfigPath), timeout: .seconds(10))
        let created: VMInfo = try await api.post("/v1/vms", CreateVMRequest(name: "bench", cpus: 1, memoryMiB: 256, diskBytes: 16 << 20, node: "n1", start: true))
        let address = try created.spec.address ?? { throw BenchSkip(reason: "no guest address") }()
        let prober = LabHost(3)
        try await waitForGuest(lab, from: prober, address: address)

        // Vigil, ping-pong between n1 and n2.
        var vigil: [String: [Sample]] = [:]
        var at = 1
        for w in Self.workloads {
            try setDirty(lab, from: prober, address: address, rate: w.rate)
            try await Task.sleep(for: .seconds(2))
            for _ in 0..<runs {
                let to = at == 1 ? 2 : 1
                let s = try await vigilMigrate(api, to: "n\(to)")
                print(String(format: "  vigil  %-5@ n%d→n%d total %.3f s, downtime %.0f ms, guest pause %.1f ms, passes %.0f%@", w.name as NSString, at, to, s.totalS, s.downtimeMs, s.pauseMs, s.passes, s.converged ? "" : " (did not converge)"))
                vigil[w.name, default: []].append(s)
                if s.converged { at = to }
                try await waitForGuest(lab, from: prober, address: address)
                try await Task.sleep(for: .seconds(1))
            }
        }
        // The same QEMU command line, by hand.
        let info: VMInfo = try await api.get("/v1/vms/bench")
        guard let pid = info.runtime?.pid, let argv = commandLine(pid) else { throw BenchSkip(reason: "could not read the QEMU command line") }
        let _: VMInfo = try await api.post("/v1/vms/bench/kill", Optional<StopVMRequest>.none)
        for _ in 0..<200 {
            let v: VMInfo = try await api.get("/v1/vms/bench")
            if v.state == "stopped" { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let logger = Logger(label: "bench")
        var bare = try await BareQEMU.launch(lab, argv: argv, host: 1, slot: 0, incoming: nil, logger: logger)
        defer { bare.terminate() }
        try await waitForGuest(lab, from: prober, address: address)
        var same: [String: [Sample]] = [:], defaults: [String: [Sample]] = [:]
        var slot = 1
        for w in Self.workloads {
            try setDirty(lab, from: prober, address: address, rate: w.rate)
            try await Task.sleep(for: .seconds(2))
            for _ in 0..<runs {
                for vigilParameters in [true, false] {
                    let to = LabHost(bare.host.index == 1 ? 2 : 1)
                    let (s, next) = try await bareMigrate(lab, from: bare, to: to, argv: argv, slot: slot, vigilParameters: vigilParameters, logger: logger)
                    slot += 1
                    print(String(format: "  bare   %-5@ %@ total %.3f s, downtime %.0f ms, guest pause %.1f ms, passes %.0f%@", w.name as NSString,
                                 (vigilParameters ? "Vigil's parameters " : "QEMU defaults      ") as NSString, s.totalS, s.downtimeMs, s.pauseMs, s.passes, s.converged ? "" : " (did not converge in 60 s, cancelled)"))
                    if vigilParameters { same[w.name, default: []].append(s) } else { defaults[w.name, default: []].append(s) }
                    bare = next
                    do { try await waitForGuest(lab, from: prober, address: address, timeout: .seconds(30)) } catch {
                        print("  warning: after this bare migration the guest did not answer within 30 s; stopping the bare runs")
                        break
                    }
                    try await Task.sleep(for: .seconds(1))
                }
            }
        }
        bare.terminate()

        var records: [BenchRecord] = []
        for w in Self.workloads {
            let v = vigil[w.name] ?? [], p = same[w.name] ?? [], d = defaults[w.name] ?? []
            func med(_ xs: [Sample], _ f: (Sample) -> Double) -> Double { median(xs.filter(\.converged).map(f)) }
            let vt = med(v, \.totalS), pt = med(p, \.totalS), vd = med(v, \.downtimeMs), pd = med(p, \.downtimeMs)
            records.append(BenchRecord(bench: "migrate.\(w.name)", metric: "total_s", value: vt, peer: "qemu_by_hand_same_params", peerValue: pt,
                                       ratio: vt / pt, goal: "ratio <= 1.1 (lower is better)", runs: runs))
            records.append(BenchRecord(bench: "migrate.\(w.name)", metric: "downtime_ms", value: vd, peer: "qemu_by_hand_same_params", peerValue: pd,
                                       ratio: vd / max(pd, 1), goal: "ratio <= 1.1 (lower is better); Vigil's includes its switch-over", runs: runs))
            let vp = med(v, \.pauseMs), pp = med(p, \.pauseMs)
            records.append(BenchRecord(bench: "migrate.\(w.name)", metric: "guest_pause_ms", value: vp, peer: "qemu_by_hand_same_params", peerValue: pp,
                                       ratio: vp / max(pp, 1), goal: "ratio <= 1.1 (lower is better); STOP on source to RESUME on destination", runs: runs))
            records.append(BenchRecord(bench: "migrate.\(w.name)", metric: "passes", value: med(v, \.passes), peer: "qemu_by_hand_same_params", peerValue: med(p, \.passes),
                                       ratio: med(v, \.passes) / max(med(p, \.passes), 1), goal: "reported", runs: runs))
            if w.rate > 0 {
                let converged = d.filter(\.converged).count
                // A peer that never converged is counted at its 60 s cut-off.
                let dt = median(d.map { $0.converged ? $0.totalS : 60 })
                records.append(BenchRecord(bench: "migrate.tuned.\(w.name)", metric: "total_s", value: vt, peer: "qemu_defaults_128MiBs_300ms\(converged < d.count ? "_\(d.count - converged)_of_\(d.count)_not_converged_in_60s" : "")",
                                           peerValue: dt, ratio: vt / dt, goal: "ratio <= 0.5 (lower is better)", runs: runs))
                records.append(BenchRecord(bench: "migrate.tuned.\(w.name)", metric: "downtime_ms", value: vd, peer: "qemu_defaults_128MiBs_300ms", peerValue: med(d, \.downtimeMs),
                                           ratio: vd / max(med(d, \.downtimeMs), 1), goal: "Vigil within its configured limit (300 ms, up to 2000 ms with convergence control)", runs: runs))
            }
        }
        return records
    }

    func vigilMigrate(_ api: APIClient, to: String) async throws -> Sample {
        let t0 = ContinuousClock.now
        let m: MigrationRecord = try await api.post("/v1/vms/bench/migrate", MigrateRequest(to: to))
        var doneAt: ContinuousClock.Instant?
        while true {
            let r: MigrationRecord = try await api.get("/v1/vms/bench/migration")
            guard r.id == m.id else { throw BenchSkip(reason: "migration replaced") }
            if r.phase == .done, doneAt == nil { doneAt = .now }
            if r.phase.isFinal && r.phase != .done { return Sample(totalS: seconds(ContinuousClock.now - t0), downtimeMs: 0, passes: Double(r.progress?.passes ?? 0), converged: false) }
            if let doneAt, (r.progress?.downtimeMs != nil && r.switchoverMs != nil && r.guestPauseMs != nil) || ContinuousClock.now - doneAt > .seconds(3) {
                return Sample(totalS: seconds(doneAt - t0), downtimeMs: Double((r.progress?.downtimeMs ?? 0) + (r.switchoverMs ?? 0)),
                              passes: Double(r.progress?.passes ?? 0), converged: true, pauseMs: r.guestPauseMs ?? .nan)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// One bare migration from `source` to a new QEMU on `to`; returns the sample and the QEMU now running the guest.
    func bareMigrate(_ lab: Lab, from source: BareQEMU, to: LabHost, argv: [String], slot: Int, vigilParameters: Bool, logger: Logger) async throws -> (Sample, BareQEMU) {
        let t0 = ContinuousClock.now
        let address = lab.plan.address(to, on: .cluster1)
        let uri = "tcp:\(address):\(49000 + slot)"
        let dest = try await BareQEMU.launch(lab, argv: argv, host: to, slot: slot, incoming: uri, logger: logger)
        if vigilParameters {
            for q in [source.qmp, dest.qmp] { try await q.migrateSetCapabilities(["auto-converge": true, "multifd": false]) }
            try await source.qmp.execute("migrate-set-parameters", arguments: ["max-bandwidth": .int(1 << 40), "downtime-limit": 300,
                                                                               "cpu-throttle-initial": 1, "cpu-throttle-increment": 1, "max-cpu-throttle": 1])
        }
        let since = Date()
        async let stopped = source.qmp.firstEvent("STOP", since: since, timeout: .seconds(65))
        async let resumed = dest.qmp.firstEvent("RESUME", since: since, timeout: .seconds(65))
        try await source.qmp.migrate(uri: uri)
        let deadline = t0 + .seconds(60)
        while true {
            let info = try await source.qmp.queryMigrate()
            if info.status == .completed {
                var s = Sample(totalS: seconds(ContinuousClock.now - t0), downtimeMs: Double(info.downtime?.components.seconds ?? 0) * 1000 + Double((info.downtime?.components.attoseconds ?? 0) / 1_000_000_000_000_000),
                               passes: Double(info.dirtySyncCount ?? 0), converged: true)
                if let a = await stopped, let b = await resumed { s.pauseMs = b.timeIntervalSince(a) * 1000 }
                source.terminate()
                return (s, dest)
            }
            if info.status == .failed { dest.terminate(); throw BenchSkip(reason: "bare migration failed: \(info.errorDescription ?? "?")") }
            if ContinuousClock.now > deadline {
                try await source.qmp.migrateCancel()
                for _ in 0..<200 where (try? await source.qmp.queryMigrate().status) != .cancelled { try await Task.sleep(for: .milliseconds(20)) }
                dest.terminate()
                return (Sample(totalS: 60, downtimeMs: 0, passes: Double(info.dirtySyncCount ?? 0), converged: false), source)
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    func setDirty(_ lab: Lab, from host: LabHost, address: String, rate: Int) throws {
        _ = try lab.exec(host: host, ["curl", "-s", "-m", "2", "http://\(address)/dirty?rate=\(rate)&mem=64"])
    }

    func waitForGuest(_ lab: Lab, from host: LabHost, address: String, timeout: Duration = .seconds(120)) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let r = try lab.exec(host: host, ["curl", "-s", "-m", "0.5", "-o", "/dev/null", "-w", "%{http_code}", "http://\(address)/"])
            if r.stdout == "200" { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchSkip(reason: "guest at \(address) never answered")
    }

    func commandLine(_ pid: Int32) -> [String]? {
        guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        return d.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    func median(_ xs: [Double]) -> Double { let s = xs.filter { !$0.isNaN }.sorted(); return s.isEmpty ? .nan : s[s.count / 2] }
}

/// A QEMU started by hand in a lab host's namespace with Vigil's argv (its own QMP socket,
/// pidfile and serial log; the same tap name on the host's client bridge).
final class BareQEMU: @unchecked Sendable {
    let process: Process
    let qmp: QMPClient
    let host: LabHost

    init(process: Process, qmp: QMPClient, host: LabHost) { self.process = process; self.qmp = qmp; self.host = host }

    static func launch(_ lab: Lab, argv original: [String], host: LabHost, slot: Int, incoming: String?, logger: Logger) async throws -> BareQEMU {
        let dir = "/tmp/vigil-bench-migrate/\(slot)"
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var argv: [String] = []
        var i = 0
        while i < original.count {
            let a = original[i]
            let next = i + 1 < original.count ? original[i + 1] : ""
            switch a {
            case "-qmp": argv += [a, "unix:\(dir)/qmp.sock,server=on,wait=off"]; i += 2; continue
            case "-pidfile": argv += [a, "\(dir)/qemu.pid"]; i += 2; continue
            case "-incoming": i += 2; continue
            case "-S": i += 1; continue
            case "-chardev" where next.hasPrefix("file,"): argv += [a, "file,id=ser0,path=\(dir)/serial.log,append=on"]; i += 2; continue
            default: argv.append(a); i += 1
            }
        }
        if let incoming { argv += ["-incoming", incoming] }
        if let tap = argv.first(where: { $0.hasPrefix("tap,") })?.split(separator: ",").first(where: { $0.hasPrefix("ifname=") }).map({ String($0.dropFirst(7)) }) {
            _ = try? lab.exec(host: host, ["ip", "link", "del", tap])
            _ = try lab.exec(host: host, ["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
            _ = try lab.exec(host: host, ["ip", "link", "set", tap, "master", "brclient", "up"])
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        p.arguments = ["netns", "exec", lab.namespace(host)!, "nice", "-n", "10"] + argv
        p.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            if FileManager.default.fileExists(atPath: "\(dir)/qmp.sock"), let qmp = try? await QMPClient.connect(socketPath: "\(dir)/qmp.sock", timeout: .seconds(2), logger: logger) {
                return BareQEMU(process: p, qmp: qmp, host: host)
            }
            if !p.isRunning { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        p.terminate()
        throw BenchSkip(reason: "bare QEMU did not start on \(host)")
    }

    func terminate() {
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }
}

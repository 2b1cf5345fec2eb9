import ArgumentParser
import Foundation
import VigilClient
import VigilCore

/// `vigil vm migrate VM [--to NODE]` and `--cancel`: live migration with a progress bar
/// (JSON lines with --json).
struct VMMigrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate", abstract: "Live-migrate a running VM to another node (or --cancel a migration).",
        discussion: "Waits until it is done, showing progress; exits 0 when the VM runs on the destination, 1 when it failed or was cancelled (the VM then still runs on its source), 5 with --no-wait.")
    @OptionGroup var options: ClusterOptions
    @Argument var name: String
    @Option(help: "Destination node; the planner chooses when omitted.") var to: String?
    @Flag(help: "Cancel the VM's migration in progress; the VM stays on its source.") var cancel = false
    @Flag(help: "No convergence control: no CPU throttling, no larger downtime limit.") var noConverge = false
    @Option(help: "Bandwidth cap in MiB/s (default: no cap).") var bandwidth: Int?
    @Option(help: "Downtime limit to aim at first, ms (default 300).") var downtime: Int?
    @Option(help: "Largest downtime limit convergence control may raise to, ms (default 2000).") var maxDowntime: Int?
    @Option(help: "Cancel the migration if it has not completed after this many seconds (default 120).") var timeLimit: Int?
    @Option(help: "multifd channels (default 0: one stream).") var multifd: Int?
    @Flag(help: "Return once the request is accepted.") var noWait = false

    func run() async throws {
        try await options.run { client in
            let vm = try VMName(name).rawValue
            if cancel {
                let m: MigrationRecord = try await client.send(.DELETE, "/v1/vms/\(vm)/migrate", body: nil)
                if noWait { if options.json { Output.printJSON(m) } else { print("cancelling \(vm)'s migration to \(m.destination)") }; return }
                try await MigrationWatch.follow(client, vm: vm, id: m.id, json: options.json, success: .cancelled)
                return
            }
            let req = MigrateRequest(to: to, convergence: noConverge ? false : nil, bandwidthMiBs: bandwidth, downtimeLimitMs: downtime,
                                     maxDowntimeMs: maxDowntime, timeLimitSeconds: timeLimit, multifdChannels: multifd)
            if let p = req.policy().problem() { throw ValidationError(p) }
            let m: MigrationRecord = try await client.post("/v1/vms/\(vm)/migrate", req)
            if noWait {
                if options.json { Output.printJSON(m) } else { print("migration of \(vm) from \(m.source) to \(m.destination) requested") }
                throw ExitCode(5)
            }
            if !options.json { FileHandle.standardError.write(Data("migrating \(vm) from \(m.source) to \(m.destination)\n".utf8)) }
            try await MigrationWatch.follow(client, vm: vm, id: m.id, json: options.json)
        }
    }
}

/// Follows a migration record until it is final: a progress bar on stderr, or a JSON line per change.
enum MigrationWatch {
    struct Line: Encodable {
        var vm: String, phase: String, source: String, destination: String
        var passes: Int64?, sentMiB: Int64?, remainingMiB: Int64?, totalMiB: Int64?, dirtyMiBs: Int64?, bandwidthMiBs: Int64?
        var expectedDowntimeMs: Int64?, downtimeMs: Int64?, switchoverMs: Int64?, throttlePercent: Int?, elapsedMs: Int64?
        var guestPauseMs: Double?
        var steps: [String]?, reason: String?
    }

    static func line(_ m: MigrationRecord) -> Line {
        let p = m.progress
        return Line(vm: m.vm.rawValue, phase: m.phase.rawValue, source: m.source.rawValue, destination: m.destination.rawValue,
                    passes: p?.passes, sentMiB: p.map { $0.transferredBytes >> 20 }, remainingMiB: p.map { $0.remainingBytes >> 20 },
                    totalMiB: p.map { $0.totalBytes >> 20 }, dirtyMiBs: p.map { $0.dirtyRate >> 20 }, bandwidthMiBs: p.map { $0.bandwidth >> 20 },
                    expectedDowntimeMs: p?.expectedDowntimeMs, downtimeMs: p?.downtimeMs, switchoverMs: m.switchoverMs,
                    throttlePercent: p?.throttlePercent, elapsedMs: p?.elapsedMs, guestPauseMs: m.guestPauseMs, steps: m.steps.isEmpty ? nil : m.steps, reason: m.reason)
    }

    static func bar(_ m: MigrationRecord) -> String {
        guard let p = m.progress else { return "  \(m.vm): \(m.phase.rawValue)" }
        let width = 30, filled = Int(p.fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return "  \(m.vm) [\(bar)] \(Int(p.fraction * 100))% \(m.phase.rawValue) pass \(p.passes), \(p.transferredBytes >> 20) MiB sent, \(p.remainingBytes >> 20) MiB left, dirty \(p.dirtyRate >> 20) MiB/s, \(p.bandwidth >> 20) MiB/s\(p.throttlePercent.map { $0 > 1 ? ", throttle \($0)%" : "" } ?? ""), expected downtime \(p.expectedDowntimeMs.map { "\($0) ms" } ?? "?")"
    }

    /// Returns when it ends in `success`; exits 1 when it ends otherwise.
    static func follow(_ client: APIClient, vm: String, id: String, json: Bool, success: MigrationPhase = .done, timeout: Duration = .seconds(3600)) async throws {
        let start = ContinuousClock.now
        var lastPrinted = ""
        var stepsShown = 0
        var doneAt: ContinuousClock.Instant?
        let tty = isatty(2) == 1
        while true {
            let m: MigrationRecord = try await client.get("/v1/vms/\(vm)/migration")
            guard m.id == id else { throw ClientError.api(status: 409, code: "conflict", message: "\(vm)'s migration was replaced by another one (\(m.id))") }
            if json {
                let l = line(m)
                let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
                let text = String(decoding: (try? enc.encode(l)) ?? Data(), as: UTF8.self)
                if text != lastPrinted { Output.printJSONLine(l); lastPrinted = text }
            } else {
                for s in m.steps.dropFirst(stepsShown) { FileHandle.standardError.write(Data("\(tty ? "\r\u{1B}[K" : "")  convergence: \(s)\n".utf8)) }
                stepsShown = m.steps.count
                let b = bar(m)
                if b != lastPrinted { FileHandle.standardError.write(Data((tty ? "\r\u{1B}[K" + b : b + "\n").utf8)); lastPrinted = b }
            }
            if m.phase == .done, m.progress?.downtimeMs == nil || m.switchoverMs == nil || m.guestPauseMs == nil, ContinuousClock.now - (doneAt ?? .now) < .seconds(3) {
                // The source adds QEMU's downtime, the destination its switch-over time, right after `done`.
                if doneAt == nil { doneAt = .now }
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            if m.phase.isFinal {
                if !json {
                    if tty { FileHandle.standardError.write(Data("\n".utf8)) }
                    switch m.phase {
                    case .done:
                        let d = m.progress?.downtimeMs.map { "\($0) ms" } ?? "?"
                        print("\(vm) now runs on \(m.destination): \(m.progress?.passes ?? 0) passes, \(((m.progress?.transferredBytes ?? 0) >> 20)) MiB sent in \(m.progress?.elapsedMs ?? 0) ms, downtime \(d) + switch-over \(m.switchoverMs.map { "\($0) ms" } ?? "?")\(m.guestPauseMs.map { String(format: "; the guest was paused %.1f ms", $0) } ?? "")")
                    default:
                        print("\(vm) stays on \(m.source): migration \(m.phase.rawValue): \(m.reason ?? "no reason recorded")")
                    }
                }
                if m.phase == success { return }
                throw ExitCode(1)
            }
            if ContinuousClock.now - start > timeout { throw ClientError.api(status: 504, code: "timeout", message: "\(vm)'s migration is still \(m.phase.rawValue)") }
            try await Task.sleep(for: .milliseconds(200))
        }
    }
}

/// `vigil node drain|resume NODE`.
struct NodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "node", abstract: "Drain a node for maintenance, or resume it.",
                                                    subcommands: [NodeDrain.self, NodeResume.self])
}

struct NodeDrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain", abstract: "Pause a node (no new VMs) and live-migrate its running VMs away.",
        discussion: "Refused, with nothing changed, when some VMs would not fit elsewhere; --force moves what fits and says what stays. Exits 1 if a migration failed.")
    @OptionGroup var options: ClusterOptions
    @Argument var name: String
    @Flag(help: "Drain even if some VMs must stay (they are listed).") var force = false
    @Flag(help: "Return once the migrations are requested.") var noWait = false

    func run() async throws {
        try await options.run { client in
            let node = try NodeName(name).rawValue
            let plan: DrainPlan = try await client.post("/v1/nodes/\(node)/drain", DrainRequest(force: force))
            if !options.json {
                print("\(node) paused; migrating \(plan.moves.count) VM(s)\(plan.moves.isEmpty ? "" : ": " + plan.moves.map { "\($0.vm) → \($0.to)" }.joined(separator: ", "))")
                for s in plan.stays { print("  staying on \(node): \(s.vm) — \(s.reason)") }
            } else { Output.printJSONLine(plan) }
            if noWait { return }
            var failed: [String] = []
            var pending = Set(plan.moves.map(\.vm.rawValue))
            var last: [String: String] = [:]
            let start = ContinuousClock.now
            while !pending.isEmpty {
                for vm in pending.sorted() {
                    guard let m: MigrationRecord = try? await client.get("/v1/vms/\(vm)/migration") else { continue }
                    let l = MigrationWatch.bar(m)
                    if last[vm] != l {
                        last[vm] = l
                        if options.json { Output.printJSONLine(MigrationWatch.line(m)) } else { FileHandle.standardError.write(Data((l + "\n").utf8)) }
                    }
                    if m.phase.isFinal {
                        pending.remove(vm)
                        if m.phase != .done { failed.append("\(vm): \(m.phase.rawValue) — \(m.reason ?? "")") }
                    }
                }
                if ContinuousClock.now - start > .seconds(3600) { break }
                try await Task.sleep(for: .milliseconds(300))
            }
            if !options.json {
                print(failed.isEmpty ? "\(node) drained: \(plan.moves.count) VM(s) moved\(plan.stays.isEmpty ? "" : ", \(plan.stays.count) stayed")"
                                     : "\(node) paused, but \(failed.count) migration(s) did not complete: \(failed.joined(separator: "; "))")
            }
            if !failed.isEmpty { throw ExitCode(1) }
        }
    }
}

struct NodeResume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Let a paused node take new VMs again.")
    @OptionGroup var options: ClusterOptions
    @Argument var name: String
    func run() async throws {
        try await options.run { client in
            let node = try NodeName(name).rawValue
            let r: NodeRecord = try await client.post("/v1/nodes/\(node)/resume", Optional<DrainRequest>.none)
            if options.json { Output.printJSON(r) } else { print("\(node) resumed (\(r.adminState.rawValue))") }
        }
    }
}

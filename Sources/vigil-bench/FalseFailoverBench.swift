import Foundation
import VigilClient
import VigilCore
import VigilLab

/// `failover.false`: nothing failed, so nothing may move. A 3-host lab runs one busy
/// guest per host (each dirtying memory as fast as TCG lets it, which loads both cores)
/// while every host's cluster links flap in turn (down 500 ms every 2 s, silently, then
/// with carrier loss). Counts node losses, failovers, fences and leader changes: the
/// goal is 0. The peer column is the number of link flaps survived.
struct FalseFailoverBench: Bench {
    let name = "failover.false"

    func run(quick: Bool) async throws -> [BenchRecord] {
        guard geteuid() == 0, Lab.namespacesAvailable else { throw BenchSkip(reason: "needs root and network namespaces") }
        let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        let vigild = binDir + "/vigild"
        guard FileManager.default.isExecutableFile(atPath: vigild) else { throw BenchSkip(reason: "vigild not built next to vigil-bench") }
        let lab = try Lab.up(LabSpec(name: "benchff", index: 8, nodes: 3, vigildPath: vigild, cpus: 4, memoryMiB: 1024))
        defer { _ = try? lab.down() }
        let api = APIClient(config: try ClientConfig.parse(file: lab.clientConfigPath))
        var addresses: [(String, LabHost)] = []
        for h in lab.hosts {
            let v: VMInfo = try await api.post("/v1/vms", CreateVMRequest(name: "busy\(h.index)", cpus: 1, memoryMiB: 192, diskBytes: 16 << 20,
                                                                         haPriority: .high, node: h.name, start: true))
            guard let a = v.spec.address else { throw BenchSkip(reason: "no guest address") }
            addresses.append((a, h))
        }
        for (a, h) in addresses {
            let probe = lab.hosts.first { $0 != h }!
            let deadline = ContinuousClock.now + .seconds(120)
            while try lab.exec(host: probe, ["curl", "-s", "-m", "1", "http://\(a)/dirty?rate=1024&mem=96"]).stdout.isEmpty {
                if ContinuousClock.now > deadline { throw BenchSkip(reason: "guest \(a) never answered") }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        let startPage: EventPage = try await api.get("/v1/events?limit=1000")
        let after = startPage.events.last?.id
        let cycles = quick ? 4 : 30
        var flaps = 0
        let load0 = loadAverage()
        for i in 0..<cycles {
            let host = lab.hosts[i % lab.hosts.count]
            let net: LabNetwork = i % 2 == 0 ? .cluster1 : .cluster2
            try lab.cut(host: host, net: net, silent: i % 4 < 2)
            try await Task.sleep(for: .milliseconds(500))
            try lab.restore(host: host, net: net)
            flaps += 1
            try await Task.sleep(for: .milliseconds(1500))
        }
        try await Task.sleep(for: .seconds(3))
        let page: EventPage = try await api.get("/v1/events?limit=1000" + (after.map { "&after=\($0.rawValue)" } ?? ""))
        let bad: Set<EventKind> = [.nodeLost, .vmFailover, .vmFenced, .leaderElected, .vmCrashed]
        let falseMoves = page.events.filter { bad.contains($0.event.kind) }
        for e in falseMoves { print("  FALSE: \(e.event.kind): \(e.event.message)") }
        print(String(format: "  %d link flaps over %d s with 3 busy guests (load average %.1f → %.1f): %d false failover events",
                     flaps, cycles * 2, load0, loadAverage(), falseMoves.count))
        return [BenchRecord(bench: "failover.false", metric: "events", value: Double(falseMoves.count), peer: "link_flaps", peerValue: Double(flaps),
                            ratio: Double(falseMoves.count) / Double(max(flaps, 1)), goal: "0 events (lower is better)", runs: flaps)]
    }

    func loadAverage() -> Double {
        let text = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? ""
        return Double(text.split(separator: " ").first ?? "") ?? 0
    }
}

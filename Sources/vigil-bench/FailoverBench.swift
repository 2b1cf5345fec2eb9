import Foundation
import VigilClient
import VigilCore
import VigilLab

/// `failover.restart` / `failover.serving`: a whole host dies (vigild, its QEMUs, its
/// etcd member: SIGKILL); time until its HA VM's QEMU runs on a survivor (read from
/// /proc every 10 ms) and until the guest answers HTTP there. Runs alternate between a
/// dead host that held the etcd leader (a new etcd leader renews every lease, which
/// delays detection) and one that did not; leadership is moved with etcd's own
/// transfer-leadership call so both cases get the same number of runs.
/// The peer figure is the lease TTL: detection cannot beat it.
struct FailoverBench: Bench {
    let name = "failover"

    func run(quick: Bool) async throws -> [BenchRecord] {
        guard geteuid() == 0, Lab.namespacesAvailable else { throw BenchSkip(reason: "needs root and network namespaces") }
        let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        let vigild = binDir + "/vigild"
        guard FileManager.default.isExecutableFile(atPath: vigild) else {
            throw BenchSkip(reason: "vigild not built next to vigil-bench (\(vigild))")
        }
        // 20 by default: 10 with the etcd leader on the dead host, 10 without.
        let runs = quick ? 2 : Int(ProcessInfo.processInfo.environment["VIGIL_BENCH_RUNS"] ?? "") ?? 20
        let lab = try Lab.up(LabSpec(name: "benchfo", index: 8, nodes: 3, vigildPath: vigild, cpus: 4, memoryMiB: 1024,
                                     maxFailovers: 1000))  // every run is a failover of the same VM
        defer { _ = try? lab.down() }
        let ttl = Double(lab.spec.leaseTTL.components.seconds)
        let api = APIClient(config: try ClientConfig.parse(file: lab.clientConfigPath))
        let created: VMInfo = try await api.post("/v1/vms", CreateVMRequest(name: "fo", cpus: 1, memoryMiB: 128, diskBytes: 16 << 20, haPriority: .high))
        let _: VMInfo = try await api.post("/v1/vms/fo/start", Optional<StopVMRequest>.none)
        let address = try created.spec.address ?? { throw BenchSkip(reason: "no guest address") }()
        var restart: [Bool: [Double]] = [true: [], false: []], serving: [Bool: [Double]] = [true: [], false: []]
        for i in 0..<runs {
            let owner = try await waitRunning(lab, api)
            let probe = lab.hosts.first { $0 != owner }!
            try await waitForGuest(lab, from: probe, address: address)
            // Even runs: the owner holds the etcd leader; odd runs: another host does.
            let wantLeader = i % 2 == 0
            try await placeEtcdLeader(lab, on: wantLeader ? owner : lab.hosts.first { $0 != owner }!)
            try await Task.sleep(for: .milliseconds(1500))  // renewals settle after the transfer
            let t0 = ContinuousClock.now
            try lab.killHost(host: owner)
            var newOwner: LabHost?
            while newOwner == nil {
                if ContinuousClock.now - t0 > .seconds(60) {
                    let v: VMInfo? = try? await api.get("/v1/vms/fo")
                    throw BenchSkip(reason: "no failover within 60 s (VM: \(v.map { "\($0.state) on \($0.placement?.node?.rawValue ?? "-") epoch \($0.placement?.epoch ?? 0): \($0.placement?.reason ?? "")" } ?? "API did not answer"))")
                }
                newOwner = qemuHost(lab, vm: "fo").flatMap { $0 != owner ? $0 : nil }
                if newOwner == nil { try await Task.sleep(for: .milliseconds(10)) }
            }
            let tRestart = seconds(ContinuousClock.now - t0)
            try await waitForGuest(lab, from: lab.hosts.first { $0 != owner && $0 != newOwner }!, address: address)
            let tServing = seconds(ContinuousClock.now - t0)
            restart[wantLeader]!.append(tRestart); serving[wantLeader]!.append(tServing)
            print(String(format: "  run %2d: %@ held the etcd leader: %@; QEMU on %@ after %.2f s, guest answers after %.2f s",
                         i + 1, owner.name, wantLeader ? "yes" : "no ", newOwner!.name, tRestart, tServing))
            // Bring the dead host back for the next run.
            // A rebooted host: etcd member, watchdog (before vigild: no VM starts without it), agent.
            _ = try lab.startEtcd(host: owner)
            _ = try lab.startWatchdog(host: owner)
            _ = try lab.startVigild(host: owner)
            try lab.waitForAgents(timeout: .seconds(30))
        }
        var out: [BenchRecord] = []
        for leader in [false, true] {
            let label = leader ? "etcd_leader_host" : "other_host"
            let r = restart[leader]!, s = serving[leader]!
            guard !r.isEmpty else { continue }
            out.append(BenchRecord(bench: "failover.restart.\(label)", metric: "p50_s", value: pct(r, 0.5), peer: "lease_ttl", peerValue: ttl,
                                   ratio: pct(r, 0.5) / ttl, goal: "<= TTL + 1 s (lower is better)", runs: r.count))
            out.append(BenchRecord(bench: "failover.restart.\(label)", metric: "p99_s", value: pct(r, 0.99), peer: "lease_ttl", peerValue: ttl,
                                   ratio: pct(r, 0.99) / ttl, goal: "<= TTL + 1 s (lower is better)", runs: r.count))
            out.append(BenchRecord(bench: "failover.serving.\(label)", metric: "p50_s", value: pct(s, 0.5), peer: "lease_ttl", peerValue: ttl,
                                   ratio: pct(s, 0.5) / ttl, goal: "reported (lower is better)", runs: s.count))
            out.append(BenchRecord(bench: "failover.serving.\(label)", metric: "p99_s", value: pct(s, 0.99), peer: "lease_ttl", peerValue: ttl,
                                   ratio: pct(s, 0.99) / ttl, goal: "reported (lower is better)", runs: s.count))
        }
        return out
    }

    /// The host whose namespace runs the VM's QEMU, from /proc.
    func qemuHost(_ lab: Lab, vm: String) -> LabHost? { lab.runningQEMUs()[vm]?.first }

    func waitRunning(_ lab: Lab, _ api: APIClient) async throws -> LabHost {
        for _ in 0..<600 {
            let v: VMInfo = try await api.get("/v1/vms/fo")
            if v.state == "running", let n = v.placement?.node, let h = LabHost(parsing: n.rawValue) { return h }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchSkip(reason: "VM fo never ran")
    }

    /// Make `host`'s member the etcd leader.
    func placeEtcdLeader(_ lab: Lab, on host: LabHost) async throws {
        var ids: [LabHost: String] = [:]
        var leaderID = ""
        for m in lab.spec.etcdMembers {
            let s = try etcdStatus(lab, m)
            ids[m] = s.member; leaderID = s.leader
        }
        guard let current = ids.first(where: { $0.value == leaderID })?.key, let target = ids[host] else {
            throw BenchSkip(reason: "cannot tell which etcd member leads")
        }
        if current == host { return }
        let url = lab.plan.etcdClientURL(current) + "/v3/maintenance/transfer-leadership"
        _ = try lab.exec(host: current, ["curl", "-s", "-m", "3", "-X", "POST", "-d", "{\"targetID\":\"\(target)\"}", url])
        for _ in 0..<50 {
            if try etcdStatus(lab, host).leader == target { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchSkip(reason: "etcd leadership did not move to \(host)")
    }

    func etcdStatus(_ lab: Lab, _ member: LabHost) throws -> (member: String, leader: String) {
        let url = lab.plan.etcdClientURL(member) + "/v3/maintenance/status"
        let r = try lab.exec(host: member, ["curl", "-s", "-m", "2", "-X", "POST", "-d", "{}", url])
        struct Status: Decodable { struct Header: Decodable { var member_id: String }; var header: Header; var leader: String }
        guard let s = try? JSONDecoder().decode(Status.self, from: Data(r.stdout.utf8)) else {
            throw BenchSkip(reason: "etcd status of \(member) unreadable: \(r.stdout.prefix(200))")
        }
        return (s.header.member_id, s.leader)
    }

    func waitForGuest(_ lab: Lab, from host: LabHost, address: String) async throws {
        let deadline = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < deadline {
            let r = try lab.exec(host: host, ["curl", "-s", "-m", "0.5", "-o", "/dev/null", "-w", "%{http_code}", "http://\(address)/"])
            if r.stdout == "200" { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchSkip(reason: "guest at \(address) never answered")
    }

    func pct(_ xs: [Double], _ p: Double) -> Double {
        let s = xs.sorted()
        return s.isEmpty ? 0 : s[min(s.count - 1, Int((Double(s.count) * p).rounded(.up)) - 1)]
    }
    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
}

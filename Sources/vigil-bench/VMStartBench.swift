import Foundation
import VigilClient
import VigilCore
import VigilLab

/// `vm.start`: `vigil vm start` → the guest's HTTP answers, against starting the very
/// same QEMU command line by hand (read back from /proc), on a 3-host lab. Both are
/// timed to the first answer of `GET /` from another host's namespace, polled alike.
struct VMStartBench: Bench {
    let name = "vm.start"

    func run(quick: Bool) async throws -> [BenchRecord] {
        guard geteuid() == 0, Lab.namespacesAvailable else { throw BenchSkip(reason: "needs root and network namespaces") }
        let binDir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
        let vigild = binDir + "/vigild"
        guard FileManager.default.isExecutableFile(atPath: vigild) else {
            throw BenchSkip(reason: "vigild not built next to vigil-bench (\(vigild)): swift build -c release --product vigild")
        }
        let runs = quick ? 2 : 7
        let lab = try Lab.up(LabSpec(name: "benchvm", index: 8, nodes: 3, vigildPath: vigild))
        defer { _ = try? lab.down() }
        let api = APIClient(config: try ClientConfig.parse(file: lab.clientConfigPath))
        let created: VMInfo = try await api.post("/v1/vms", CreateVMRequest(name: "bench", cpus: 1, memoryMiB: 256, diskBytes: 16 << 20, node: "n1"))
        let address = try created.spec.address ?? { throw BenchSkip(reason: "no guest address (no client network)") }()
        let owner = LabHost(1), prober = LabHost(2)
        var vigil: [Double] = [], byHand: [Double] = []
        for i in 0..<runs {
            // Vigil: the API call the CLI makes, then the same wait the peer gets.
            let t0 = ContinuousClock.now
            let _: VMInfo = try await api.post("/v1/vms/bench/start", Optional<StopVMRequest>.none)
            try await waitForGuest(lab, from: prober, address: address)
            vigil.append(seconds(ContinuousClock.now - t0))
            let info: VMInfo = try await api.get("/v1/vms/bench")
            guard let pid = info.runtime?.pid, let argv = commandLine(pid) else { throw BenchSkip(reason: "could not read the QEMU command line") }
            let _: VMInfo = try await api.post("/v1/vms/bench/kill", Optional<StopVMRequest>.none)
            try await waitStopped(api)

            // By hand: the same argv, in the same namespace, with the same tap on the same bridge.
            let tap = argv.first { $0.hasPrefix("tap,") }.flatMap { $0.split(separator: ",").first { $0.hasPrefix("ifname=") } }.map { String($0.dropFirst(7)) }
            if let tap {
                _ = try lab.exec(host: owner, ["ip", "tuntap", "add", "dev", tap, "mode", "tap"])
                _ = try lab.exec(host: owner, ["ip", "link", "set", tap, "master", "brclient", "up"])
            }
            let ns = lab.namespace(owner)!
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
            p.arguments = ["netns", "exec", ns, "nice", "-n", "10"] + argv
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            let t1 = ContinuousClock.now
            try p.run()
            try await waitForGuest(lab, from: prober, address: address)
            byHand.append(seconds(ContinuousClock.now - t1))
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            if let tap { _ = try lab.exec(host: owner, ["ip", "link", "del", tap]) }
            print(String(format: "  run %d: vigil %.2f s, by hand %.2f s", i + 1, vigil.last!, byHand.last!))
        }
        let v = median(vigil), h = median(byHand)
        return [BenchRecord(bench: "vm.start", metric: "median_s", value: v, peer: "qemu_by_hand", peerValue: h,
                            ratio: v / h, goal: "ratio <= 1.1 (lower is better)", runs: runs)]
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

    func waitStopped(_ api: APIClient) async throws {
        for _ in 0..<400 {
            let v: VMInfo = try await api.get("/v1/vms/bench")
            if v.state == "stopped" { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw BenchSkip(reason: "VM did not stop")
    }

    func commandLine(_ pid: Int32) -> [String]? {
        guard let d = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        return d.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
    }

    func seconds(_ d: Duration) -> Double { Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18 }
    func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s.isEmpty ? 0 : s[s.count / 2] }
}

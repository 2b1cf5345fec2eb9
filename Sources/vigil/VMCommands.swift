import ArgumentParser
import Foundation
import VigilClient
import VigilCore
import VigilDisk

/// `vigil vm …`: the VM lifecycle, through any node's API.
struct VMCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vm", abstract: "Create, start, stop, kill, delete, list and show virtual machines.",
        subcommands: [VMCreate.self, VMList.self, VMShow.self, VMStart.self, VMStop.self, VMKill.self, VMDelete.self, VMMigrate.self])
}

struct VMCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a VM (and its disk); --start to start it.")
    @OptionGroup var options: ClusterOptions
    @Argument(help: "VM name: lower-case letters, digits, '-'.") var name: String
    @Option(help: "Virtual CPUs.") var cpus: Int = 1
    @Option(help: "Memory, e.g. 256M, 1G.") var memory: String = "256M"
    @Option(help: "Disk size, e.g. 64M, 10G.") var disk: String = "64M"
    @Option(help: "HA priority: high, medium, low, off.") var haPriority: String = "medium"
    @Option(help: "Place on this node when it has room.") var node: String?
    @Option(help: "Anti-affinity group: VMs of one group never share a node.") var antiAffinity: String?
    @Flag(help: "Start it right away.") var start = false
    @Flag(help: "After a failover, move back to its node once that node has been up for a while (a restart there).") var failback = false
    @Flag(help: "With --start: return at once instead of waiting until it runs.") var noWait = false

    func run() async throws {
        try await options.run { client in
            let req = try request()
            let info: VMInfo = try await client.post("/v1/vms", req)
            if start && !noWait {
                let final = try await VMWait.until(client, name: info.spec.name.rawValue, json: options.json) { $0.state == "running" || $0.state == "pending" }
                try VMWait.finish(final, options: options)
            } else if options.json { Output.printJSON(info) } else { print("created \(info.spec.name) (\(info.spec.address ?? "no address"))") }
        }
    }

    func request() throws -> CreateVMRequest {
        guard let prio = HAPriority(rawValue: haPriority) else { throw ValidationError("--ha-priority must be high, medium, low or off, got '\(haPriority)'") }
        let mem: UInt64, disk: UInt64
        do { mem = try DiskSize.parse(memory); disk = try DiskSize.parse(self.disk) }
        catch { throw ValidationError("\(error)") }
        guard mem % (1 << 20) == 0 else { throw ValidationError("--memory must be a whole number of MiB, got \(memory)") }
        let req = CreateVMRequest(name: name, cpus: cpus, memoryMiB: Int(mem >> 20), diskBytes: Int64(clamping: disk),
                                  haPriority: prio, node: node, antiAffinityGroup: antiAffinity, start: start,
                                  failback: failback ? true : nil)
        if let p = req.problem() { throw ValidationError(p) }
        return req
    }
}

struct VMList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List VMs with their state and node.")
    @OptionGroup var options: ClusterOptions
    func run() async throws {
        try await options.run { client in
            let vms: [VMInfo] = try await client.get("/v1/vms")
            if options.json { Output.printJSON(vms); return }
            print(Output.table(["VM", "STATE", "NODE", "EPOCH", "CPUS", "MEMORY", "HA", "ADDRESS", "PID", "NOTE"], vms.map { v in
                [v.spec.name.rawValue, v.state, v.placement?.node?.rawValue ?? "-", "\(v.placement?.epoch ?? 0)", "\(v.spec.cpus)",
                 "\(v.spec.memoryMiB) MiB", v.spec.haPriority.rawValue, v.spec.address ?? "-", v.runtime?.pid.map(String.init) ?? "-",
                 v.placement?.reason ?? v.runtime?.message ?? ""]
            }))
        }
    }
}

struct VMShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show one VM in full.")
    @OptionGroup var options: ClusterOptions
    @Argument var name: String
    func run() async throws {
        try await options.run { client in
            let v: VMInfo = try await client.get("/v1/vms/\(try VMName(name).rawValue)")
            if options.json { Output.printJSON(v); return }
            print("""
            vm:        \(v.spec.name)
            state:     \(v.state)\(v.placement?.reason.map { " — \($0)" } ?? "")
            node:      \(v.placement?.node?.rawValue ?? "-") (epoch \(v.placement?.epoch ?? 0))
            cpus:      \(v.spec.cpus)
            memory:    \(v.spec.memoryMiB) MiB
            disks:     \(v.spec.disks.map { "\($0.name) \($0.sizeBytes >> 20) MiB \($0.format) (\($0.file))" }.joined(separator: ", "))
            ha:        \(v.spec.haPriority.rawValue)\(v.spec.failback == true ? ", failback" : "")\(v.spec.antiAffinityGroup.map { ", anti-affinity \($0)" } ?? "")
            failovers: \(v.placement?.failovers?.count ?? 0) recent\(v.placement?.home.map { ", home node \($0)" } ?? "")
            address:   \(v.spec.address ?? "-")  mac \(v.spec.mac)
            runtime:   \(v.runtime.map { "\($0.state.rawValue) on \($0.node), pid \($0.pid.map(String.init) ?? "-"), \($0.accel), restarts \($0.restarts)" } ?? "-")
            """)
        }
    }
}

struct VMStart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "start", abstract: "Start a VM; waits until it runs (or says why it is pending).")
    @OptionGroup var options: ClusterOptions
    @Argument var name: String
    @Flag(help: "Return at once.") var noWait = false
    @Option(help: "Seconds to wait.") var timeout: Int = 120
    func run() async throws {
        try await options.run { client in
            let n = try VMName(name).rawValue
            let v: VMInfo = try await client.post("/v1/vms/\(n)/start", Optional<StopVMRequest>.none)
            if noWait { if options.json { Output.printJSON(v) }; return }
            let final = try await VMWait.until(client, name: n, json: options.json, timeout: timeout) { $0.state == "running" || $0.state == "pending" || $0.state == "failed" }
            try VMWait.finish(final, options: options)
        }
    }
}

struct VMStop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "Clean ACPI shutdown, then a hard stop after --grace seconds.")
    @OptionGroup var options: ClusterOptions
    @Argument var name: String
    @Option(help: "Seconds to wait for the guest to power off before a hard stop.") var grace: Int = 30
    @Flag(help: "Return at once.") var noWait = false
    func validate() throws { guard (0...3600).contains(grace) else { throw ValidationError("--grace must be 0…3600") } }
    func run() async throws { try await VMPower.stop(options: options, name: name, grace: grace, noWait: noWait) }
}

struct VMKill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "Hard stop (SIGKILL of its QEMU) right away.")
    @OptionGroup var options: ClusterOptions
    @Argument var name: String
    @Flag(help: "Return at once.") var noWait = false
    func run() async throws { try await VMPower.stop(options: options, name: name, grace: 0, noWait: noWait) }
}

struct VMDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a stopped VM and its disk.")
    @OptionGroup var options: ClusterOptions
    @Argument var name: String
    func run() async throws {
        try await options.run { client in
            let n = try VMName(name).rawValue
            try await client.delete("/v1/vms/\(n)")
            if options.json { Output.printJSON(["deleted": n]) } else { print("deleted \(n)") }
        }
    }
}

enum VMPower {
    static func stop(options: ClusterOptions, name: String, grace: Int, noWait: Bool) async throws {
        try await options.run { client in
            let n = try VMName(name).rawValue
            let path = grace == 0 ? "/v1/vms/\(n)/kill" : "/v1/vms/\(n)/stop"
            let v: VMInfo = try await client.post(path, grace == 0 ? nil : StopVMRequest(graceSeconds: grace))
            if noWait { if options.json { Output.printJSON(v) }; return }
            let final = try await VMWait.until(client, name: n, json: options.json, timeout: grace + 60) { $0.state == "stopped" }
            try VMWait.finish(final, options: options)
        }
    }
}

/// Polls a VM until a condition holds, printing state changes (JSON lines with --json).
enum VMWait {
    static func until(_ client: APIClient, name: String, json: Bool, timeout: Int = 120, _ done: (VMInfo) -> Bool) async throws -> VMInfo {
        let start = ContinuousClock.now
        var last = ""
        while true {
            let v: VMInfo = try await client.get("/v1/vms/\(name)")
            if v.state != last {
                last = v.state
                let secs = (ContinuousClock.now - start).components.seconds
                if json { Output.printJSONLine(["vm": name, "state": v.state, "node": v.placement?.node?.rawValue ?? "", "elapsed_s": "\(secs)"]) }
                else { FileHandle.standardError.write(Data("  \(name): \(v.state)\(v.placement?.node.map { " on \($0)" } ?? "")\n".utf8)) }
            }
            if done(v) { return v }
            if ContinuousClock.now - start > .seconds(timeout) {
                throw ClientError.api(status: 504, code: "timeout", message: "\(name) is still \(v.state) after \(timeout) s")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
    }

    static func finish(_ v: VMInfo, options: ClusterOptions) throws {
        if options.json { Output.printJSON(v) }
        else { print("\(v.spec.name): \(v.state)\(v.placement?.node.map { " on \($0)" } ?? "")\(v.spec.address.map { ", address \($0)" } ?? "")") }
        if v.state == "pending" || v.state == "failed" {
            FileHandle.standardError.write(Data("vigil: \(v.spec.name) is \(v.state): \(v.placement?.reason ?? "no reason recorded")\n".utf8))
            throw ExitCode(5)
        }
    }
}

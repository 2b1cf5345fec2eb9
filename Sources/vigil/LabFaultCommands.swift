import ArgumentParser
import Foundation
import VigilLab

struct LabCutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cut",
        abstract: "Cut a host's link on a network: carrier loss, or --silent (carrier stays up, nothing passes).")

    @OptionGroup var options: LabOptions
    @Argument(help: "Host (n1, 2, w).") var host: LabHost
    @Argument(help: "Network: cluster1 cluster2 client storage1 storage2 (or c1 c2 cl s1 s2).") var net: LabNetwork
    @Flag(help: "Detach the switch-side veth from its bridge instead of setting it down.") var silent = false

    func run() async throws {
        try options.perform("cut") { try $0.cut(host: host, net: net, silent: silent) }
    }
}

struct LabRestoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "restore", abstract: "Undo a cut.")

    @OptionGroup var options: LabOptions
    @Argument(help: "Host.") var host: LabHost
    @Argument(help: "Network.") var net: LabNetwork

    func run() async throws {
        try options.perform("restore") { try $0.restore(host: host, net: net) }
    }
}

struct LabPartitionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "partition",
        abstract: "Split hosts into sides that only reach themselves, e.g. \"n1,n2|n3\" (w: the witness).")

    @OptionGroup var options: LabOptions
    @Argument(help: "Sides separated by |, hosts by commas.") var sides: String

    func run() async throws {
        var parsed: [[Int]] = []
        for side in sides.split(separator: "|") {
            parsed.append(try side.split(separator: ",").map { word in
                guard let host = LabHost(parsing: word.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("'\(word)' is not a host (n1, 2, w)")
                }
                return host.index
            })
        }
        try options.perform("partition") { try $0.partition(parsed) }
    }
}

struct LabHealCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "heal", abstract: "End a partition (cuts stay).")

    @OptionGroup var options: LabOptions

    func run() async throws {
        try options.perform("heal") { try $0.heal() }
    }
}

/// What `kill` hits: one process, or every process of the host.
enum LabKillTarget: String, ExpressibleByArgument, CaseIterable {
    case vigild, etcd, host
}

struct LabKillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill",
        abstract: "kill -9 a host's vigild or etcd member, or every process of the host (default).")

    @OptionGroup var options: LabOptions
    @Argument(help: "Host.") var host: LabHost
    @Argument(help: "vigild, etcd or host.") var target: LabKillTarget = .host

    func run() async throws {
        try options.perform("kill") { lab in
            switch target {
            case .host: try lab.killHost(host: host)
            case .vigild: try lab.signal(host: host, process: .vigild, SIGKILL)
            case .etcd: try lab.signal(host: host, process: .etcd, SIGKILL)
            }
        }
    }
}

/// HOST and vigild|etcd, for `stop` and `cont`.
struct LabProcessTarget: ParsableArguments {
    @OptionGroup var options: LabOptions
    @Argument(help: "Host.") var host: LabHost
    @Argument(help: "vigild, etcd or watchdog.") var process: LabProcess

    func send(_ signal: Int32, action: String) throws {
        try options.perform(action) { try $0.signal(host: host, process: process, signal) }
    }
}

struct LabStopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stop", abstract: "SIGSTOP a host's vigild or etcd member.")
    @OptionGroup var target: LabProcessTarget
    func run() async throws { try target.send(SIGSTOP, action: "stop") }
}

struct LabContCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "cont", abstract: "SIGCONT a stopped vigild or etcd member.")
    @OptionGroup var target: LabProcessTarget
    func run() async throws { try target.send(SIGCONT, action: "cont") }
}

struct LabExecCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec",
        abstract: "Run a command in a host's namespace: vigil lab exec n1 -- ip route")

    @OptionGroup var options: LabOptions
    @Argument(help: "Host.") var host: LabHost
    @Argument(parsing: .postTerminator, help: "The command, after --.") var command: [String] = []

    func run() async throws {
        guard !command.isEmpty else { throw ValidationError("give the command after --, e.g. vigil lab exec n1 -- ip route") }
        let result = try labCall { try options.load().exec(host: host, command) }
        if options.json {
            try options.emit(result) { "" }
        } else {
            FileHandle.standardOutput.write(Data(result.stdout.utf8))
            FileHandle.standardError.write(Data(result.stderr.utf8))
        }
        if result.status != 0 { throw ExitCode(result.status) }
    }
}

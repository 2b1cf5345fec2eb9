import ArgumentParser
import Foundation
import VigilLab

/// `vigil lab …`: test hosts on this machine. Thin: parsing and printing; the work is in VigilLab.
struct LabCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lab",
        abstract: "Test hosts on this machine (network namespaces).",
        subcommands: [
            LabUpCommand.self, LabDownCommand.self, LabStatusCommand.self,
            LabCutCommand.self, LabRestoreCommand.self, LabPartitionCommand.self, LabHealCommand.self,
            LabKillCommand.self, LabStopCommand.self, LabContCommand.self, LabExecCommand.self,
        ]
    )
}

/// `--name` and `--json`, shared by every lab subcommand.
struct LabOptions: ParsableArguments {
    @Option(help: "Lab name.")
    var name: String = "demo"

    @Flag(help: "Print JSON.")
    var json = false

    func load() throws -> Lab { try Lab.load(name: name) }

    /// Loads the lab, runs one fault action on it, and prints `{"ok": true, …}` with --json.
    func perform(_ action: String, _ body: (Lab) throws -> Void) throws {
        try labCall { try body(load()) }
        try emit(LabDone(lab: name, action: action)) { "" }
    }

    /// Prints `value` as JSON with --json, else `text()`.
    func emit<T: Encodable>(_ value: T, _ text: () -> String) throws {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(value), as: UTF8.self))
        } else {
            let t = text()
            if !t.isEmpty { print(t) }
        }
    }
}

/// `{"ok": true, ...}` for commands that have nothing else to say.
struct LabDone: Encodable {
    var ok = true
    var lab: String
    var action: String
}

extension LabHost: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

extension LabNetwork: ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }
}

extension LabProcess: ExpressibleByArgument {}

/// Runs a lab call, turning a `LabError` into a plain message and exit code 1.
func labCall<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as LabError {
        FileHandle.standardError.write(Data("vigil lab: \(error.message)\n".utf8))
        throw ExitCode.failure
    }
}

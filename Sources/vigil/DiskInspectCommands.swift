import ArgumentParser
import VigilDisk

/// `vigil disk info PATH`: format, sizes, block and sector sizes, allocation, log state. Never writes.
struct DiskInfoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "info", abstract: "Show what an image is (read-only).")

    @Argument(help: "Image path.") var path: String
    @Option(help: "vhdx or raw; detected when omitted.") var format: String?
    @OptionGroup var output: DiskOutputOptions

    func run() async throws {
        try await output.run {
            let info = try DiskInfo.inspect(path: path, format: try format.map(parseFormat))
            try output.emit(info, text: info.text)
        }
    }
}

/// `vigil disk check PATH [--repair]`: exit 0 when clean, 1 when problems remain.
struct DiskCheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check header CRCs, region overlaps, the log, metadata and BAT entries.",
        discussion: "--repair only does what loses nothing: replays a valid log and rewrites a damaged header or region table copy from the good one.")

    @Argument(help: "Image path.") var path: String
    @Option(help: "vhdx or raw; detected when omitted.") var format: String?
    @Flag(help: "Fix what can be fixed safely.") var repair = false
    @OptionGroup var output: DiskOutputOptions

    func run() async throws {
        try await output.run {
            let report = DiskChecker.check(path: path, format: try format.map(parseFormat), repair: repair)
            var lines = report.repaired.map { "repaired: \($0)" } + report.problems.map { "problem: \($0)" }
            lines.append(report.ok ? "\(path): ok" : "\(path): \(report.problems.count) problem(s)\(report.repairable ? "; `--repair` can fix them" : "")")
            try output.emit(report, text: lines.joined(separator: "\n"))
            if !report.ok { throw ExitCode(1) }
        }
    }
}

import ArgumentParser
import Foundation

/// `vigil-bench [NAME…] [--quick] [--json FILE]`: side-by-side benchmarks (BENCHMARKS.md).
@main
struct VigilBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vigil-bench", abstract: "Run Vigil's benchmarks side by side with their peers.")

    /// Every benchmark the executable knows; add new ones here.
    static let all: [any Bench] = BenchRegistry.all

    @Argument(help: "Benchmarks to run (prefix match); all when empty.") var names: [String] = []
    @Flag(help: "Smoke size, for CI (timings not judged).") var quick = false
    @Option(help: "Write one JSON object per line to this file.") var json: String?

    func run() async throws {
        let selected = Self.all.filter { b in names.isEmpty || names.contains { b.name.hasPrefix($0) } }
        if selected.isEmpty { throw ValidationError("no benchmark matches \(names); known: \(Self.all.map(\.name).joined(separator: ", "))") }
        var records: [BenchRecord] = []
        for bench in selected {
            print("== \(bench.name)")
            do {
                let rows = try await bench.run(quick: quick)
                for r in rows {
                    print(String(format: "  %-34@ %-10@ %12.4f  %-14@ %12.4f  ratio %6.3f  goal %@", r.bench as NSString, r.metric as NSString, r.value, r.peer as NSString, r.peerValue, r.ratio, r.goal as NSString))
                }
                records += rows
            } catch let skip as BenchSkip {
                print("  skipped: \(skip.reason)")
            }
        }
        if let json {
            let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
            let lines = try records.map { String(decoding: try enc.encode($0), as: UTF8.self) }
            try (lines.joined(separator: "\n") + "\n").write(toFile: json, atomically: true, encoding: .utf8)
        }
    }
}

import Foundation

/// One measured figure, side by side with its peer (see BENCHMARKS.md).
struct BenchRecord: Codable, Sendable {
    var bench: String
    var metric: String
    var value: Double
    var peer: String
    var peerValue: Double
    var ratio: Double
    var goal: String
    var runs: Int
    var machine: String = BenchRecord.machineDescription
    var at: String = ISO8601DateFormatter().string(from: Date())

    enum CodingKeys: String, CodingKey {
        case bench, metric, value, peer, peerValue = "peer_value", ratio, goal, runs, machine, at
    }

    static let machineDescription: String = {
        "\(ProcessInfo.processInfo.activeProcessorCount) cores, TCG"
    }()
}

/// A benchmark: `run` returns its records, or throws `BenchSkip` with the reason it cannot run here.
protocol Bench: Sendable {
    var name: String { get }
    func run(quick: Bool) async throws -> [BenchRecord]
}

struct BenchSkip: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}

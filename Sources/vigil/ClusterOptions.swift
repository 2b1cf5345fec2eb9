import ArgumentParser
import Foundation
import VigilClient
import VigilCore

/// Options every cluster command shares: where the cluster is, and output format.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Client config file (default: $VIGIL_CONFIG, ~/.config/vigil/client.yaml, /run/vigil/client.yaml).")
    var config: String?
    @Option(name: .customLong("endpoint"), help: "API endpoint http://HOST:PORT (repeatable); overrides the config's.")
    var endpoints: [String] = []
    @Option(help: "Bearer token; overrides the config's.")
    var token: String?
    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func client() throws -> APIClient {
        var cfg: ClientConfig
        if !endpoints.isEmpty, let token {
            cfg = ClientConfig(endpoints: endpoints, token: token)
        } else {
            cfg = try ClientConfig.load(path: config)
            if !endpoints.isEmpty { cfg.endpoints = endpoints }
            if let token { cfg.token = token }
        }
        try cfg.validate(source: "command line")
        return APIClient(config: cfg)
    }

    /// Run `body`; on failure print the error (as JSON too with --json) and exit non-zero.
    func run(_ body: (APIClient) async throws -> Void) async throws {
        do {
            try await body(try client())
        } catch let e as ClientError {
            fail(code: e.code, message: e.description, exit: e.exitCode)
        } catch let e as InvalidName {
            fail(code: "bad_request", message: e.description, exit: 64)
        }
    }

    func fail(code: String, message: String, exit: Int32) -> Never {
        if json { Output.printJSON(APIErrorBody(code: code, message: message)) }
        FileHandle.standardError.write(Data("vigil: \(message)\n".utf8))
        Foundation.exit(exit)
    }
}

enum Output {
    static func printJSON<T: Encodable>(_ value: T) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        if let d = try? enc.encode(value) { print(String(decoding: d, as: UTF8.self)) }
    }

    static func printJSONLine<T: Encodable>(_ value: T) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if let d = try? enc.encode(value) { print(String(decoding: d, as: UTF8.self)) }
        fflush(nil)
    }

    /// A plain text table, columns padded to their widest cell.
    static func table(_ header: [String], _ rows: [[String]]) -> String {
        let widths = header.indices.map { i in ([header[i]] + rows.map { i < $0.count ? $0[i] : "" }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in c.padding(toLength: widths[i], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }

    static func time(_ millis: Int64) -> String {
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS"
        f.timeZone = TimeZone(identifier: "UTC")
        return f.string(from: Date(timeIntervalSince1970: Double(millis) / 1000))
    }
}

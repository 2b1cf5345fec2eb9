import Foundation
import Yams

/// Where the CLI finds the cluster: API endpoints and the bearer token
/// (docs/lab-and-config.md).
public struct ClientConfig: Codable, Equatable, Sendable {
    public var cluster: String?
    public var endpoints: [String]
    public var token: String

    public init(cluster: String? = nil, endpoints: [String], token: String) {
        self.cluster = cluster; self.endpoints = endpoints; self.token = token
    }

    /// Where `vigil lab up` writes the default lab's client config.
    public static let labDefaultPath = "/run/vigil/client.yaml"

    /// The config files tried in order when no `--config` is given.
    public static func searchPaths(environment: [String: String] = ProcessInfo.processInfo.environment) -> [String] {
        var paths: [String] = []
        if let p = environment["VIGIL_CONFIG"], !p.isEmpty { paths.append(p) }
        if let home = environment["HOME"] { paths.append(home + "/.config/vigil/client.yaml") }
        paths.append(labDefaultPath)
        return paths
    }

    /// Load from `path`, or from the first search path that exists.
    public static func load(path: String? = nil) throws -> ClientConfig {
        if let path { return try parse(file: path) }
        let env = ProcessInfo.processInfo.environment
        for p in searchPaths(environment: env) where FileManager.default.fileExists(atPath: p) {
            return try parse(file: p)
        }
        throw ClientError.config("no client config found (looked in \(searchPaths(environment: env).joined(separator: ", "))); run 'vigil lab up' or pass --config FILE, or --endpoint and --token")
    }

    public static func parse(file: String) throws -> ClientConfig {
        guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { throw ClientError.config("cannot read client config '\(file)'") }
        let c: ClientConfig
        do { c = try YAMLDecoder().decode(ClientConfig.self, from: text) }
        catch { throw ClientError.config("client config '\(file)' is not valid: \(error)") }
        try c.validate(source: file)
        return c
    }

    public func validate(source: String) throws {
        if endpoints.isEmpty { throw ClientError.config("\(source): 'endpoints' is empty") }
        for e in endpoints {
            guard let u = URL(string: e), u.scheme == "http" || u.scheme == "https", u.host != nil else {
                throw ClientError.config("\(source): endpoint '\(e)' is not http://HOST:PORT")
            }
        }
        if token.isEmpty { throw ClientError.config("\(source): 'token' is empty") }
    }
}

/// Why a CLI request failed; `exitCode` is what `vigil` exits with.
public enum ClientError: Error, CustomStringConvertible, Sendable {
    case config(String)
    /// No endpoint answered at all.
    case noNodeAnswered(endpoints: [String], last: String)
    /// A node answered with an API error.
    case api(status: Int, code: String, message: String)
    case badResponse(String)

    public var description: String {
        switch self {
        case let .config(m): return m
        case let .noNodeAnswered(eps, last): return "no Vigil node answered at \(eps.joined(separator: ", ")) (last error: \(last)); is the cluster running?"
        case let .api(status, code, message): return "\(message) (HTTP \(status), \(code))"
        case let .badResponse(m): return "unexpected answer: \(m)"
        }
    }

    public var code: String {
        switch self {
        case .config: return "config"
        case .noNodeAnswered: return "unreachable"
        case let .api(_, code, _): return code
        case .badResponse: return "bad_response"
        }
    }

    public var exitCode: Int32 {
        switch self {
        case .config: return 64
        case .noNodeAnswered: return 3
        case let .api(_, code, _): return code == "no_quorum" ? 2 : 1
        case .badResponse: return 1
        }
    }
}

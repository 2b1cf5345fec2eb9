import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOFoundationCompat
import VigilCore

/// Talks to any node's REST API: tries the endpoints in order until one answers.
public struct APIClient: Sendable {
    public let config: ClientConfig
    public let timeout: Duration

    public init(config: ClientConfig, timeout: Duration = .seconds(5)) {
        self.config = config; self.timeout = timeout
    }

    /// GET `path` (with query) and decode the answer.
    public func get<T: Decodable>(_ path: String, as: T.Type = T.self) async throws -> T {
        try await send(.GET, path, body: nil)
    }

    /// POST a JSON body (or none) and decode the answer.
    public func post<T: Decodable, B: Encodable>(_ path: String, _ body: B?, as: T.Type = T.self) async throws -> T {
        try await send(.POST, path, body: try body.map { try JSONEncoder().encode($0) })
    }

    /// DELETE; succeeds on any 2xx.
    public func delete(_ path: String) async throws {
        _ = try await raw(.DELETE, path, body: nil)
    }

    public func send<T: Decodable>(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> T {
        let (endpoint, data) = try await raw(method, path, body: body)
        do { return try JSONDecoder().decode(T.self, from: data) }
        catch { throw ClientError.badResponse("\(endpoint)\(path): \(error)") }
    }

    /// Send to the first endpoint that answers; returns it and the 2xx body.
    public func raw(_ method: HTTPMethod, _ path: String, body: Data?) async throws -> (String, Data) {
        var last = ""
        for endpoint in config.endpoints {
            var req = HTTPClientRequest(url: endpoint.trimmingSuffix("/") + path)
            req.method = method
            req.headers.add(name: "Authorization", value: "Bearer \(config.token)")
            if let body {
                req.headers.add(name: "Content-Type", value: "application/json")
                req.body = .bytes(ByteBuffer(data: body))
            }
            let response: HTTPClientResponse
            let data: Data
            do {
                response = try await HTTPClient.shared.execute(req, timeout: .milliseconds(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000))
                data = Data(buffer: try await response.body.collect(upTo: 64 << 20))
            } catch {
                last = "\(endpoint): \(error)"
                continue
            }
            if (200..<300).contains(Int(response.status.code)) { return (endpoint, data) }
            if let e = try? JSONDecoder().decode(APIErrorBody.self, from: data) {
                // Another node may have quorum when this one does not.
                if e.error.code == "no_quorum" || e.error.code == "store_unreachable" { last = "\(endpoint): \(e.error.message)"; continue }
                throw ClientError.api(status: Int(response.status.code), code: e.error.code, message: e.error.message)
            }
            throw ClientError.badResponse("\(endpoint)\(path): HTTP \(response.status.code)")
        }
        if last.contains("no quorum") || last.contains("no_quorum") {
            throw ClientError.api(status: 503, code: "no_quorum", message: "the cluster has no quorum: \(last)")
        }
        throw ClientError.noNodeAnswered(endpoints: config.endpoints, last: last)
    }
}

extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) : self }
}

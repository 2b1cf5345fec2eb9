import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import Synchronization

/// A client for etcd v3 through its JSON gateway, failing over between members.
///
/// Each request goes to the member that answered last; when it does not connect or
/// answer in time the next member is tried, within the request's overall timeout.
/// Connections are kept alive (a new connection per request costs ~6 ms, a request
/// on a kept one ~0.5 ms).
public final class EtcdClient: Sendable {
    public let endpoints: [String]
    public let requestTimeout: Duration
    let http: HTTPClient
    let logger: Logger
    private let preferred = Mutex(0)

    /// - Parameters:
    ///   - endpoints: member client URLs, e.g. `http://10.77.6.1:2379`; the first is preferred.
    ///   - requestTimeout: overall time a request may take across all members.
    public init(endpoints: [String], requestTimeout: Duration = .seconds(2), logger: Logger = Logger(label: "vigil.etcd")) throws {
        guard !endpoints.isEmpty else { throw EtcdError(.rejected, "no etcd endpoints given") }
        for e in endpoints {
            guard let u = URL(string: e), u.scheme == "http", u.host != nil, u.port != nil, u.path.isEmpty || u.path == "/" else {
                throw EtcdError(.rejected, "bad etcd endpoint '\(e)': expected http://HOST:PORT")
            }
        }
        self.endpoints = endpoints.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }
        self.requestTimeout = requestTimeout
        self.logger = logger
        // The process-wide client: nothing to shut down, connections pooled per member.
        // Per-request deadlines bound connecting as well as answering.
        http = HTTPClient.shared
    }

    var preferredIndex: Int { preferred.withLock { $0 } }
    func prefer(_ index: Int) { preferred.withLock { $0 = index } }

    /// POST a JSON request to `path` on a member, failing over; decode the answer.
    func call<Req: Encodable & Sendable, Resp: Decodable>(
        _ path: String, _ body: Req, as: Resp.Type = Resp.self, timeout: Duration? = nil
    ) async throws -> Resp {
        let total = timeout ?? requestTimeout
        let payload = try JSONEncoder().encode(body)
        let clock = ContinuousClock()
        let deadline = clock.now + total
        let start = preferredIndex
        var sawTimeout = false
        var lastProblem = ""
        for attempt in 0..<endpoints.count {
            let index = (start + attempt) % endpoints.count
            let left = deadline - clock.now
            if left <= .zero { sawTimeout = true; break }
            // Share what is left among the members not yet tried, but give each a fair chance.
            let remainingMembers = endpoints.count - attempt
            let slice = max(left / remainingMembers, min(left, .milliseconds(300)))
            do {
                let resp: Resp = try await post(endpoints[index] + path, payload, timeout: slice)
                if index != start { prefer(index) }
                return resp
            } catch let e as EtcdError where e.code == .noQuorum || e.code == .unreachable {
                if e.code == .noQuorum { sawTimeout = true }
                lastProblem = "\(endpoints[index]): \(e.message)"
                logger.debug("etcd member failed; trying the next", metadata: ["etcd.endpoint": "\(endpoints[index])", "error": "\(e.message)"])
                continue
            }
        }
        if sawTimeout {
            throw EtcdError(.noQuorum, "no etcd member answered \(path) within \(total) (last: \(lastProblem)); the cluster may have lost quorum")
        }
        throw EtcdError(.unreachable, "no etcd member reachable at \(endpoints.joined(separator: ", ")) (last: \(lastProblem))")
    }

    func post<Resp: Decodable>(_ url: String, _ payload: Data, timeout: Duration) async throws -> Resp {
        var req = HTTPClientRequest(url: url)
        req.method = .POST
        req.headers.add(name: "Content-Type", value: "application/json")
        req.body = .bytes(ByteBuffer(data: payload))
        let response: HTTPClientResponse
        let body: ByteBuffer
        do {
            response = try await http.execute(req, timeout: .nanoseconds(Int64(timeout.nanoseconds)))
            body = try await response.body.collect(upTo: 64 << 20)
        } catch {
            throw Self.classify(error)
        }
        let data = Data(buffer: body)
        guard response.status == .ok else {
            throw Self.serverError(status: Int(response.status.code), data: data)
        }
        do { return try JSONDecoder().decode(Resp.self, from: data) }
        catch { throw EtcdError(.badResponse, "cannot decode \(Resp.self) from \(String(decoding: data.prefix(200), as: UTF8.self))") }
    }

    /// Transport failures: a deadline means the member is slow or lost quorum; anything else, unreachable.
    static func classify(_ error: Error) -> EtcdError {
        if let e = error as? EtcdError { return e }
        if let h = error as? HTTPClientError {
            if h == .deadlineExceeded || h == .readTimeout { return EtcdError(.noQuorum, "timed out") }
            return EtcdError(.unreachable, "\(h)")
        }
        return EtcdError(.unreachable, "\(error)")
    }

    /// Map the gateway's error body to a typed error.
    static func serverError(status: Int, data: Data) -> EtcdError {
        let body = try? JSONDecoder().decode(WireErrorBody.self, from: data)
        let message = body?.message ?? body?.error ?? String(decoding: data.prefix(200), as: UTF8.self)
        return errorFromMessage(message, grpcCode: body?.code, status: status)
    }

    static func errorFromMessage(_ message: String, grpcCode: Int?, status: Int) -> EtcdError {
        if message.contains("lease not found") { return EtcdError(.leaseNotFound, message) }
        if message.contains("compacted") { return EtcdError(.compacted, message) }
        if message.contains("no leader") || message.contains("timed out") || message.contains("leader changed")
            || message.contains("not capable") || grpcCode == 14 || grpcCode == 4 {
            return EtcdError(.noQuorum, message)
        }
        return EtcdError(.rejected, "HTTP \(status): \(message)")
    }
}

extension Duration {
    var nanoseconds: Int64 {
        let (s, atto) = components
        return s * 1_000_000_000 + atto / 1_000_000_000
    }
}

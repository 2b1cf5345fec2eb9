import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat

/// Watches that survive disconnects and member restarts.
extension EtcdClient {
    /// Watch every key with `prefix`, starting at `fromRevision` (0: from now), calling
    /// `onBatch` for each batch of changes in revision order. When the connection drops
    /// or the member restarts, it reconnects (to any member) and resumes right after the
    /// last revision delivered, so no change is missed or repeated. Runs until the task
    /// is cancelled or `onBatch` throws; throws `.compacted` when the history it needs is
    /// gone (re-read the keys, then watch from the read's revision + 1).
    public func watch(prefix: String, fromRevision: Int64 = 0,
                      onBatch: @Sendable (WatchBatch) async throws -> Void) async throws {
        var next = fromRevision
        var failures = 0
        var endpointIndex = preferredIndex
        while !Task.isCancelled {
            let endpoint = endpoints[endpointIndex % endpoints.count]
            do {
                try await watchOnce(endpoint: endpoint, prefix: prefix, from: next) { batch in
                    failures = 0
                    if let last = batch.events.last { next = last.kv.modRevision + 1 }
                    else if batch.revision > 0 && next > 0 { next = max(next, batch.revision + 1) }
                    try await onBatch(batch)
                } onCreated: { revision in
                    // Starting "from now": pin the start so a reconnect resumes after it.
                    if next == 0 { next = revision + 1 }
                }
                // The server ended the stream cleanly (e.g. shutting down): reconnect.
            } catch let e as EtcdError where e.code == .compacted || e.code == .rejected {
                throw e
            } catch is CancellationError {
                return
            } catch let e as WatchCallbackError {
                throw e.underlying
            } catch {
                logger.debug("etcd watch broke; resuming", metadata: ["etcd.endpoint": "\(endpoint)", "error": "\(error)", "etcd.next": "\(next)"])
            }
            failures += 1
            endpointIndex += 1
            let backoff = Duration.milliseconds(min(1000, 100 * failures))
            try? await Task.sleep(for: backoff)
        }
    }

    private struct WatchCallbackError: Error { var underlying: Error }

    private func watchOnce(endpoint: String, prefix: String, from: Int64,
                           onBatch: (WatchBatch) async throws -> Void,
                           onCreated: (Int64) -> Void) async throws {
        let create = WireWatchCreate(key: WireBytes(prefix), range_end: WireBytes(bytes: prefixEnd(prefix)),
                                     start_revision: from > 0 ? WireInt(from) : nil, progress_notify: true)
        var req = HTTPClientRequest(url: endpoint + "/v3/watch")
        req.method = .POST
        req.headers.add(name: "Content-Type", value: "application/json")
        req.body = .bytes(ByteBuffer(data: try JSONEncoder().encode(WireWatchRequest(create_request: create))))
        let response: HTTPClientResponse
        do { response = try await http.execute(req, timeout: .seconds(2)) }
        catch { throw Self.classify(error) }
        guard response.status == .ok else {
            let body = try await response.body.collect(upTo: 1 << 20)
            throw Self.serverError(status: Int(response.status.code), data: Data(buffer: body))
        }
        var pending = [UInt8]()
        for try await chunk in response.body {
            pending += chunk.readableBytesView
            while let nl = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(pending[..<nl])
                pending.removeSubrange(...nl)
                if line.allSatisfy({ $0 == 32 || $0 == 13 }) { continue }
                try await handleWatchLine(line, onBatch: onBatch, onCreated: onCreated)
            }
        }
    }

    private func handleWatchLine(_ line: [UInt8], onBatch: (WatchBatch) async throws -> Void,
                                 onCreated: (Int64) -> Void) async throws {
        let msg: WireWatchResponse
        do { msg = try JSONDecoder().decode(WireWatchResponse.self, from: Data(line)) }
        catch { throw EtcdError(.badResponse, "bad watch line: \(String(decoding: line.prefix(200), as: UTF8.self))") }
        if let e = msg.error {
            throw Self.errorFromMessage(e.message ?? "watch failed", grpcCode: e.grpc_code, status: e.http_code ?? 500)
        }
        guard let r = msg.result else { return }
        let revision = r.header?.revision?.value ?? 0
        if let compact = r.compact_revision?.value, compact > 0 {
            throw EtcdError(.compacted, "watch start revision was compacted; oldest available is \(compact)", compactRevision: compact)
        }
        if r.canceled == true {
            throw EtcdError(.unreachable, "watch canceled by server: \(r.cancel_reason ?? "no reason")")
        }
        if r.created == true { onCreated(revision); return }
        let events = (r.events ?? []).compactMap { e -> WatchEvent? in
            guard let kv = e.kv else { return nil }
            return WatchEvent(kind: e.type == "DELETE" ? .delete : .put, kv: KeyValue(kv))
        }
        do { try await onBatch(WatchBatch(revision: revision, events: events)) }
        catch { throw WatchCallbackError(underlying: error) }
    }
}

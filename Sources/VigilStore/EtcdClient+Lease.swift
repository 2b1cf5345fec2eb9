/// Leases: grant, keep alive, revoke, time to live.
extension EtcdClient {
    /// A lease granted by etcd.
    public struct Lease: Sendable, Equatable {
        public var id: Int64
        public var ttl: Int64
    }

    /// Grant a lease of `ttl` seconds (etcd's unit).
    public func grantLease(ttl: Int64) async throws -> Lease {
        let resp: WireLeaseGrantResponse = try await call("/v3/lease/grant", WireLeaseGrantRequest(TTL: WireInt(ttl), ID: WireInt(0)))
        if let e = resp.error, !e.isEmpty { throw EtcdError(.rejected, e) }
        guard let id = resp.ID?.value, id != 0 else { throw EtcdError(.badResponse, "lease grant returned no ID") }
        return Lease(id: id, ttl: resp.TTL?.value ?? ttl)
    }

    /// Renew a lease once; returns the TTL etcd reset it to. Throws `.leaseNotFound`
    /// when it has expired or was revoked.
    @discardableResult
    public func keepAlive(_ id: Int64, timeout: Duration? = nil) async throws -> Int64 {
        let resp: WireLeaseKeepAliveResponse = try await call("/v3/lease/keepalive", WireLeaseIDRequest(ID: WireInt(id)), timeout: timeout)
        if let e = resp.error {
            throw Self.errorFromMessage(e.message ?? "keepalive failed", grpcCode: e.grpc_code, status: e.http_code ?? 500)
        }
        let ttl = resp.result?.TTL?.value ?? 0
        // A lease that no longer exists answers with TTL 0 (and no error).
        guard ttl > 0 else { throw EtcdError(.leaseNotFound, "lease \(String(id, radix: 16)) not found (expired or revoked)") }
        return ttl
    }

    /// Revoke a lease: every key bound to it is deleted at once.
    public func revokeLease(_ id: Int64) async throws {
        let _: WireEmptyResponse = try await call("/v3/lease/revoke", WireLeaseIDRequest(ID: WireInt(id)))
    }

    /// The seconds left on a lease, or throws `.leaseNotFound`.
    public func timeToLive(_ id: Int64) async throws -> (ttl: Int64, granted: Int64, keys: [String]) {
        let resp: WireLeaseTTLResponse = try await call("/v3/lease/timetolive", WireLeaseTTLRequest(ID: WireInt(id), keys: true))
        let ttl = resp.TTL?.value ?? -1
        guard ttl >= 0 else { throw EtcdError(.leaseNotFound, "lease \(String(id, radix: 16)) not found") }
        return (ttl, resp.grantedTTL?.value ?? 0, (resp.keys ?? []).map(\.string))
    }
}

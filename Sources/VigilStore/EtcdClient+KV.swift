/// Key-value operations: range, put, delete, compare-and-swap transactions.
extension EtcdClient {
    /// Read one key.
    public func get(_ key: String) async throws -> KeyValue? {
        try await range(WireRangeRequest(key: WireBytes(key))).kvs.first
    }

    /// Read every key with this prefix, in key order.
    public func getPrefix(_ prefix: String, limit: Int64 = 0) async throws -> RangeResult {
        try await range(WireRangeRequest(key: WireBytes(prefix), range_end: WireBytes(bytes: prefixEnd(prefix)),
                                         limit: limit == 0 ? nil : WireInt(limit)))
    }

    /// Read keys in [from, to) in key order.
    public func getRange(from: String, to: String, limit: Int64 = 0, descending: Bool = false) async throws -> RangeResult {
        try await range(WireRangeRequest(key: WireBytes(from), range_end: WireBytes(to),
                                         limit: limit == 0 ? nil : WireInt(limit),
                                         sort_order: descending ? "DESCEND" : nil, sort_target: descending ? "KEY" : nil))
    }

    func range(_ r: WireRangeRequest, timeout: Duration? = nil) async throws -> RangeResult {
        let resp: WireRangeResponse = try await call("/v3/kv/range", r, timeout: timeout)
        return RangeResult(kvs: (resp.kvs ?? []).map(KeyValue.init), revision: resp.header?.revision?.value ?? 0,
                           count: resp.count?.value ?? 0)
    }

    /// Write a key; returns the store revision after the write.
    @discardableResult
    public func put(_ key: String, _ value: [UInt8], lease: Int64 = 0) async throws -> Int64 {
        let resp: WirePutResponse = try await call("/v3/kv/put", WirePutRequest(key: WireBytes(key), value: WireBytes(bytes: value), lease: lease == 0 ? nil : WireInt(lease)))
        return resp.header?.revision?.value ?? 0
    }

    @discardableResult
    public func put(_ key: String, _ value: String, lease: Int64 = 0) async throws -> Int64 {
        try await put(key, Array(value.utf8), lease: lease)
    }

    @discardableResult
    public func putJSON<T: Encodable>(_ key: String, _ value: T, lease: Int64 = 0) async throws -> Int64 {
        try await put(key, try EtcdJSON.encode(value), lease: lease)
    }

    /// Delete one key; returns how many were deleted (0 or 1).
    @discardableResult
    public func delete(_ key: String) async throws -> Int64 {
        let resp: WireDeleteResponse = try await call("/v3/kv/deleterange", WireDeleteRequest(key: WireBytes(key)))
        return resp.deleted?.value ?? 0
    }

    /// Delete every key with this prefix.
    @discardableResult
    public func deletePrefix(_ prefix: String) async throws -> Int64 {
        let resp: WireDeleteResponse = try await call("/v3/kv/deleterange", WireDeleteRequest(key: WireBytes(prefix), range_end: WireBytes(bytes: prefixEnd(prefix))))
        return resp.deleted?.value ?? 0
    }

    /// Delete keys in [from, to).
    @discardableResult
    public func deleteRange(from: String, to: String) async throws -> Int64 {
        let resp: WireDeleteResponse = try await call("/v3/kv/deleterange", WireDeleteRequest(key: WireBytes(from), range_end: WireBytes(to)))
        return resp.deleted?.value ?? 0
    }

    /// A transaction: if every compare holds, run `then`, else `orElse`.
    public func txn(_ compares: [Compare], then: [TxnOp], orElse: [TxnOp] = []) async throws -> TxnResult {
        let req = WireTxnRequest(compare: compares.map(\.wire), success: then.map(\.wire), failure: orElse.map(\.wire))
        let resp: WireTxnResponse = try await call("/v3/kv/txn", req)
        let ranges = (resp.responses ?? []).compactMap { $0.response_range }.map { ($0.kvs ?? []).map(KeyValue.init) }
        return TxnResult(succeeded: resp.succeeded ?? false, revision: resp.header?.revision?.value ?? 0, ranges: ranges)
    }

    /// Compare-and-swap: run `then` if every compare holds, else throw `.compareFailed`.
    @discardableResult
    public func compareAndSwap(_ compares: [Compare], then: [TxnOp]) async throws -> Int64 {
        let r = try await txn(compares, then: then)
        guard r.succeeded else {
            throw EtcdError(.compareFailed, "compare failed on \(compares.map(\.key).joined(separator: ", "))")
        }
        return r.revision
    }
}

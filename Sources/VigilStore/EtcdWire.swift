import Foundation

// The etcd v3 JSON gateway's shapes (grpc-gateway): bytes are base64, 64-bit
// integers are strings, absent fields mean false/zero/empty.

/// A 64-bit integer that the gateway writes as a string (and accepts as one).
struct WireInt: Codable, Equatable, Sendable {
    var value: Int64
    init(_ v: Int64) { value = v }
    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let s = try? c.decode(String.self), let v = Int64(s) { value = v }
        else { value = try c.decode(Int64.self) }
    }
    func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(String(value)) }
}

/// Bytes, base64 on the wire.
struct WireBytes: Codable, Equatable, Sendable {
    var data: [UInt8]
    init(_ s: String) { data = Array(s.utf8) }
    init(bytes: [UInt8]) { data = bytes }
    init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        guard let d = Data(base64Encoded: s) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not base64"))
        }
        data = Array(d)
    }
    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer(); try c.encode(Data(data).base64EncodedString())
    }
    var string: String { String(decoding: data, as: UTF8.self) }
}

struct WireHeader: Codable, Sendable {
    var revision: WireInt?
    var raft_term: WireInt?
}

struct WireKV: Codable, Sendable {
    var key: WireBytes
    var value: WireBytes?
    var create_revision: WireInt?
    var mod_revision: WireInt?
    var version: WireInt?
    var lease: WireInt?
}

struct WireRangeRequest: Codable, Sendable {
    var key: WireBytes
    var range_end: WireBytes?
    var limit: WireInt?
    var revision: WireInt?
    var sort_order: String?
    var sort_target: String?
    var keys_only: Bool?
    var count_only: Bool?
}

struct WireRangeResponse: Codable, Sendable {
    var header: WireHeader?
    var kvs: [WireKV]?
    var more: Bool?
    var count: WireInt?
}

struct WirePutRequest: Codable, Sendable {
    var key: WireBytes
    var value: WireBytes
    var lease: WireInt?
}

struct WirePutResponse: Codable, Sendable { var header: WireHeader? }

struct WireDeleteRequest: Codable, Sendable {
    var key: WireBytes
    var range_end: WireBytes?
}

struct WireDeleteResponse: Codable, Sendable {
    var header: WireHeader?
    var deleted: WireInt?
}

struct WireCompare: Codable, Sendable {
    var result: String
    var target: String
    var key: WireBytes
    var range_end: WireBytes?
    var version: WireInt?
    var create_revision: WireInt?
    var mod_revision: WireInt?
    var value: WireBytes?
    var lease: WireInt?
}

struct WireRequestOp: Codable, Sendable {
    var request_range: WireRangeRequest?
    var request_put: WirePutRequest?
    var request_delete_range: WireDeleteRequest?
}

struct WireResponseOp: Codable, Sendable {
    var response_range: WireRangeResponse?
    var response_put: WirePutResponse?
    var response_delete_range: WireDeleteResponse?
}

struct WireTxnRequest: Codable, Sendable {
    var compare: [WireCompare]
    var success: [WireRequestOp]
    var failure: [WireRequestOp]
}

struct WireTxnResponse: Codable, Sendable {
    var header: WireHeader?
    var succeeded: Bool?
    var responses: [WireResponseOp]?
}

struct WireLeaseGrantRequest: Codable, Sendable { var TTL: WireInt; var ID: WireInt }
struct WireLeaseGrantResponse: Codable, Sendable {
    var header: WireHeader?
    var ID: WireInt?
    var TTL: WireInt?
    var error: String?
}
struct WireLeaseIDRequest: Codable, Sendable { var ID: WireInt }
struct WireLeaseTTLRequest: Codable, Sendable { var ID: WireInt; var keys: Bool? }
struct WireLeaseKeepAliveResult: Codable, Sendable {
    var header: WireHeader?
    var ID: WireInt?
    var TTL: WireInt?
}
struct WireLeaseKeepAliveResponse: Codable, Sendable {
    var result: WireLeaseKeepAliveResult?
    var error: WireStreamError?
}
struct WireLeaseTTLResponse: Codable, Sendable {
    var header: WireHeader?
    var ID: WireInt?
    var TTL: WireInt?
    var grantedTTL: WireInt?
    var keys: [WireBytes]?
}
struct WireEmptyResponse: Codable, Sendable { var header: WireHeader? }

struct WireWatchCreate: Codable, Sendable {
    var key: WireBytes
    var range_end: WireBytes?
    var start_revision: WireInt?
    var progress_notify: Bool?
    var prev_kv: Bool?
}
struct WireWatchRequest: Codable, Sendable { var create_request: WireWatchCreate }
struct WireWatchEvent: Codable, Sendable {
    var type: String?
    var kv: WireKV?
    var prev_kv: WireKV?
}
struct WireWatchResult: Codable, Sendable {
    var header: WireHeader?
    var watch_id: WireInt?
    var created: Bool?
    var canceled: Bool?
    var compact_revision: WireInt?
    var cancel_reason: String?
    var events: [WireWatchEvent]?
}
struct WireWatchResponse: Codable, Sendable {
    var result: WireWatchResult?
    var error: WireStreamError?
}

/// The gateway's error body (`{"error": "...", "code": N, "message": "..."}`).
struct WireStreamError: Codable, Sendable {
    var grpc_code: Int?
    var http_code: Int?
    var message: String?
    var http_status: String?
}
struct WireErrorBody: Codable, Sendable {
    var error: String?
    var code: Int?
    var message: String?
}

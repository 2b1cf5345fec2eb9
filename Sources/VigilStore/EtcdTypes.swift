import Foundation

/// A key and its value as read from etcd, with its revisions.
public struct KeyValue: Sendable, Equatable {
    public var key: String
    public var value: [UInt8]
    public var createRevision: Int64
    public var modRevision: Int64
    public var version: Int64
    public var lease: Int64

    public var string: String { String(decoding: value, as: UTF8.self) }

    /// Decode the value as JSON.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do { return try JSONDecoder().decode(T.self, from: Data(value)) }
        catch { throw EtcdError(.badResponse, "value of \(key) is not a valid \(T.self): \(error)") }
    }

    init(_ w: WireKV) {
        key = w.key.string
        value = w.value?.data ?? []
        createRevision = w.create_revision?.value ?? 0
        modRevision = w.mod_revision?.value ?? 0
        version = w.version?.value ?? 0
        lease = w.lease?.value ?? 0
    }
}

/// The answer to a range read: the keys and the store revision it was read at.
public struct RangeResult: Sendable, Equatable {
    public var kvs: [KeyValue]
    public var revision: Int64
    public var count: Int64
}

/// One compare of a transaction (`If` part of compare-and-swap).
public struct Compare: Sendable {
    enum Target: String { case version = "VERSION", create = "CREATE", mod = "MOD", value = "VALUE", lease = "LEASE" }
    var key: String
    var target: Target
    var op: String
    var number: Int64 = 0
    var bytes: [UInt8] = []

    /// The key's last modification is exactly `revision` (0: the key does not exist).
    public static func modRevision(_ key: String, equals revision: Int64) -> Compare {
        Compare(key: key, target: .mod, op: "EQUAL", number: revision)
    }
    /// The key does not exist.
    public static func absent(_ key: String) -> Compare {
        Compare(key: key, target: .create, op: "EQUAL", number: 0)
    }
    /// The key exists.
    public static func present(_ key: String) -> Compare {
        Compare(key: key, target: .create, op: "GREATER", number: 0)
    }
    /// The key's value equals `value`.
    public static func value(_ key: String, equals value: String) -> Compare {
        Compare(key: key, target: .value, op: "EQUAL", bytes: Array(value.utf8))
    }
    /// The key is bound to `lease`.
    public static func lease(_ key: String, equals lease: Int64) -> Compare {
        Compare(key: key, target: .lease, op: "EQUAL", number: lease)
    }

    var wire: WireCompare {
        var c = WireCompare(result: op, target: target.rawValue, key: WireBytes(key))
        switch target {
        case .version: c.version = WireInt(number)
        case .create: c.create_revision = WireInt(number)
        case .mod: c.mod_revision = WireInt(number)
        case .lease: c.lease = WireInt(number)
        case .value: c.value = WireBytes(bytes: bytes)
        }
        return c
    }
}

/// One operation of a transaction's `Then` or `Else` branch.
public enum TxnOp: Sendable {
    case put(key: String, value: [UInt8], lease: Int64 = 0)
    case delete(key: String)
    case deletePrefix(String)
    case get(key: String)
    case getPrefix(String)

    public static func put(_ key: String, _ value: String, lease: Int64 = 0) -> TxnOp {
        .put(key: key, value: Array(value.utf8), lease: lease)
    }
    public static func putJSON<T: Encodable>(_ key: String, _ value: T, lease: Int64 = 0) throws -> TxnOp {
        .put(key: key, value: try EtcdJSON.encode(value), lease: lease)
    }

    var wire: WireRequestOp {
        switch self {
        case let .put(k, v, lease):
            return WireRequestOp(request_put: WirePutRequest(key: WireBytes(k), value: WireBytes(bytes: v), lease: lease == 0 ? nil : WireInt(lease)))
        case let .delete(k):
            return WireRequestOp(request_delete_range: WireDeleteRequest(key: WireBytes(k)))
        case let .deletePrefix(p):
            return WireRequestOp(request_delete_range: WireDeleteRequest(key: WireBytes(p), range_end: WireBytes(bytes: prefixEnd(p))))
        case let .get(k):
            return WireRequestOp(request_range: WireRangeRequest(key: WireBytes(k)))
        case let .getPrefix(p):
            return WireRequestOp(request_range: WireRangeRequest(key: WireBytes(p), range_end: WireBytes(bytes: prefixEnd(p))))
        }
    }
}

/// The outcome of a transaction: which branch ran, and the ranges it read.
public struct TxnResult: Sendable {
    public var succeeded: Bool
    public var revision: Int64
    /// For each `get`/`getPrefix` op of the branch that ran, its key-values, in order.
    public var ranges: [[KeyValue]]
}

/// A change seen by a watch.
public struct WatchEvent: Sendable, Equatable {
    public enum Kind: String, Sendable { case put, delete }
    public var kind: Kind
    public var kv: KeyValue
}

/// A batch of watch events at one revision, or a progress notice.
public struct WatchBatch: Sendable, Equatable {
    public var revision: Int64
    public var events: [WatchEvent]
}

public enum EtcdJSON {
    public static func encode<T: Encodable>(_ value: T) throws -> [UInt8] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return Array(try enc.encode(value))
    }
}

/// The smallest key greater than every key with this prefix (etcd's range_end for a prefix).
func prefixEnd(_ prefix: String) -> [UInt8] {
    var bytes = Array(prefix.utf8)
    while let last = bytes.last {
        if last < 0xff { bytes[bytes.count - 1] = last + 1; return bytes }
        bytes.removeLast()
    }
    return [0]
}

/// The range end covering every key with this prefix, as a string (keys here are ASCII).
public func rangeEnd(ofPrefix prefix: String) -> String {
    String(decoding: prefixEnd(prefix), as: UTF8.self)
}

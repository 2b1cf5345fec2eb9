/// The kind of an entry in the cluster event log. A string so that logs written
/// by newer versions still decode.
public struct EventKind: RawRepresentable, Hashable, Codable, Sendable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let leaderElected = EventKind(rawValue: "leader.elected")
    public static let nodeJoined = EventKind(rawValue: "node.joined")
    public static let nodeLost = EventKind(rawValue: "node.lost")
    public static let nodeStarted = EventKind(rawValue: "node.started")
    public static let nodeLeaving = EventKind(rawValue: "node.leaving")
    public static let quorumLost = EventKind(rawValue: "node.quorum-lost")
    public static let quorumRegained = EventKind(rawValue: "node.quorum-regained")
}

public enum Severity: String, Codable, Sendable, Comparable {
    case info, warning, error
    public static func < (a: Self, b: Self) -> Bool {
        let order: [Severity] = [.info, .warning, .error]
        return order.firstIndex(of: a)! < order.firstIndex(of: b)!
    }
}

/// An entry of `events/`: what the cluster decided and why.
public struct ClusterEvent: Codable, Equatable, Sendable {
    /// Wall-clock milliseconds since 1970, stamped by the shell that writes it.
    public var atMillis: Int64
    public var kind: EventKind
    public var severity: Severity
    /// The node that recorded it.
    public var reporter: NodeName
    /// The node it is about, if any.
    public var node: NodeName?
    public var vm: String?
    public var message: String

    public init(atMillis: Int64 = 0, kind: EventKind, severity: Severity, reporter: NodeName,
                node: NodeName? = nil, vm: String? = nil, message: String) {
        self.atMillis = atMillis; self.kind = kind; self.severity = severity; self.reporter = reporter
        self.node = node; self.vm = vm; self.message = message
    }
}

/// The key suffix of an event: sortable by time, unique per reporter.
public struct EventID: Hashable, Comparable, Codable, Sendable {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(atMillis: Int64, reporter: NodeName, sequence: UInt64) {
        rawValue = Self.pad(atMillis, 15) + "-" + Self.pad(Int64(sequence % 1_000_000_000), 9) + "-" + reporter.rawValue
    }
    public static func < (a: Self, b: Self) -> Bool { a.rawValue < b.rawValue }
    public init(from decoder: Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(rawValue) }
    static func pad(_ v: Int64, _ width: Int) -> String {
        let s = String(max(v, 0)); return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}

/// An event with its id, as the API returns it.
public struct StoredEvent: Codable, Equatable, Sendable {
    public var id: EventID
    public var event: ClusterEvent
    public init(id: EventID, event: ClusterEvent) { self.id = id; self.event = event }
}

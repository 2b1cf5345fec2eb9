import NIOCore
import VigilCore

/// Orders one sender's heartbeats on one network. `incarnation` is fixed for a run of the
/// sender's heartbeat service and grows across restarts (its wall-clock start in
/// nanoseconds), `number` counts that run's send rounds. A receiver ignores any sequence
/// not greater than the highest it has accepted (replays, reordering, duplicates).
public struct HeartbeatSequence: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var incarnation: UInt64
    public var number: UInt64
    public init(incarnation: UInt64, number: UInt64) { self.incarnation = incarnation; self.number = number }
    public static func < (a: Self, b: Self) -> Bool {
        (a.incarnation, a.number) < (b.incarnation, b.number)
    }
    /// True when `next` directly follows this one in the same run.
    public func isFollowed(by next: Self) -> Bool {
        next.incarnation == incarnation && next.number == number &+ 1
    }
    public var description: String { "\(incarnation).\(number)" }
}

/// One heartbeat datagram.
///
/// Wire format (big-endian), version 1:
///
///     magic "VGHB" (4) | version (1)
///     cluster length (1) | cluster (UTF-8)
///     sender length (1)  | sender node (UTF-8)
///     network length (1) | sender's network name (UTF-8)
///     incarnation (8) | sequence number (8) | sender's monotonic send time, ns (8)
///     HMAC-SHA256 over every byte before it (32)
public struct HeartbeatMessage: Equatable, Sendable {
    public static let magic: [UInt8] = Array("VGHB".utf8)
    public static let currentVersion: UInt8 = 1
    public static let macLength = 32
    /// Longest datagram we produce: three names of at most 255 bytes plus fixed fields.
    public static let maximumLength = 4 + 1 + 3 * 256 + 24 + macLength

    public var version: UInt8
    public var cluster: ClusterName
    public var sender: NodeName
    /// The name of the network the sender sent it on (its own config's name).
    public var network: String
    public var sequence: HeartbeatSequence
    /// The sender's monotonic clock at send time, nanoseconds (for round-trip echo).
    public var sentAt: UInt64

    public init(version: UInt8 = HeartbeatMessage.currentVersion, cluster: ClusterName, sender: NodeName,
                network: String, sequence: HeartbeatSequence, sentAt: UInt64) {
        self.version = version; self.cluster = cluster; self.sender = sender
        self.network = network; self.sequence = sequence; self.sentAt = sentAt
    }
}

/// Why a datagram was not accepted. A struct around a private code, so new reasons break
/// no caller; compare with the static members.
public struct HeartbeatDecodeError: Error, Hashable, Sendable, CustomStringConvertible {
    private enum Code: Hashable, Sendable { case truncated, badMagic, unsupportedVersion, authenticationFailed, malformed, wrongCluster }
    private let code: Code
    private init(_ code: Code) { self.code = code }

    /// Shorter than its fields say.
    public static let truncated = Self(.truncated)
    /// Not a Vigil heartbeat at all.
    public static let badMagic = Self(.badMagic)
    public static let unsupportedVersion = Self(.unsupportedVersion)
    /// The HMAC does not verify under our key: tampered, or another key.
    public static let authenticationFailed = Self(.authenticationFailed)
    /// Authenticated but a field is invalid (a bad name, trailing bytes).
    public static let malformed = Self(.malformed)
    /// Authenticated but from another cluster sharing the key.
    public static let wrongCluster = Self(.wrongCluster)

    public var description: String {
        switch code {
        case .truncated: "heartbeat truncated"
        case .badMagic: "not a heartbeat (bad magic)"
        case .unsupportedVersion: "unsupported heartbeat version"
        case .authenticationFailed: "heartbeat failed authentication (wrong clusterKey or tampered)"
        case .malformed: "heartbeat malformed"
        case .wrongCluster: "heartbeat from another cluster"
        }
    }
}

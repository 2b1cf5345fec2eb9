import Foundation
import VigilCore

// The watchdog protocol: newline-delimited JSON over a unix stream socket
// (`<stateDir>/watchdog.sock`). Each request line gets exactly one reply line, in order.
//
//   → {"op":"pet","deadlineNanos":123456789,"holder":"n1"}
//   ← {"ok":true,"status":{"pid":42,"state":"armed","deadlineNanos":123456789,"holder":"n1",
//                          "fencing":false,"fences":0,"killed":0,"nowNanos":123000000}}
//   → {"op":"disarm"}
//   ← {"ok":false,"error":{"code":"fencing","message":"…"},"status":{…}}
//
// Deadlines are absolute CLOCK_MONOTONIC nanoseconds, so repeating a request (after a
// reconnect) means the same thing: every request is idempotent.

/// What vigild (or a tool, or a test) asks of vigil-watchdog.
public enum WatchdogRequest: Sendable, Equatable {
    /// "My lease holds until `deadline`": arms the watchdog or moves its deadline (earlier too).
    case pet(deadline: MonotonicInstant, holder: String)
    /// Ends fencing after vigild has taken a fresh lease, and watches `deadline`.
    case rearm(deadline: MonotonicInstant, holder: String)
    /// Stop watching: vigild leaves the cluster with nothing to protect.
    case disarm
    /// Just the status.
    case status
}

/// The watchdog's state as every reply reports it.
public struct WatchdogStatus: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable {
        case disarmed, armed, fencing
    }

    /// The watchdog's pid (a change means it restarted).
    public var pid: Int32
    public var state: State
    /// The deadline watched (armed) or enforced (fencing); nil when disarmed.
    public var deadlineNanos: UInt64?
    public var holder: String?
    /// True while fencing: the deadline passed and QEMUs found are killed.
    public var fencing: Bool
    /// How many times a deadline has passed since the watchdog started.
    public var fences: Int
    /// How many QEMUs it has killed since it started.
    public var killed: Int
    /// The watchdog's CLOCK_MONOTONIC when it replied.
    public var nowNanos: UInt64

    public init(pid: Int32, state: State, deadlineNanos: UInt64?, holder: String?, fencing: Bool, fences: Int, killed: Int, nowNanos: UInt64) {
        self.pid = pid
        self.state = state
        self.deadlineNanos = deadlineNanos
        self.holder = holder
        self.fencing = fencing
        self.fences = fences
        self.killed = killed
        self.nowNanos = nowNanos
    }

    public var deadline: MonotonicInstant? { deadlineNanos.map(MonotonicInstant.init(nanoseconds:)) }
    public var now: MonotonicInstant { MonotonicInstant(nanoseconds: nowNanos) }
}

/// One reply line.
public struct WatchdogReply: Codable, Sendable, Equatable {
    public struct Failure: Codable, Sendable, Equatable {
        /// `fencing` (request refused: the deadline passed, only `rearm` helps) or `badRequest`.
        public var code: String
        public var message: String
    }

    public var ok: Bool
    public var error: Failure?
    public var status: WatchdogStatus

    public static func success(_ status: WatchdogStatus) -> Self { Self(ok: true, error: nil, status: status) }
    public static func failure(_ code: String, _ message: String, _ status: WatchdogStatus) -> Self {
        Self(ok: false, error: Failure(code: code, message: message), status: status)
    }
}

/// JSON lines for both directions.
public enum WatchdogCodec {
    /// The flat JSON shape of a request.
    private struct WireRequest: Codable {
        var op: String
        var deadlineNanos: UInt64?
        var holder: String?
    }

    public struct DecodingFailure: Error, CustomStringConvertible {
        public var description: String
    }

    public static func encode(_ request: WatchdogRequest) -> [UInt8] {
        let wire = switch request {
        case let .pet(deadline, holder): WireRequest(op: "pet", deadlineNanos: deadline.nanoseconds, holder: holder)
        case let .rearm(deadline, holder): WireRequest(op: "rearm", deadlineNanos: deadline.nanoseconds, holder: holder)
        case .disarm: WireRequest(op: "disarm")
        case .status: WireRequest(op: "status")
        }
        return line(wire)
    }

    public static func decodeRequest(_ line: [UInt8]) throws -> WatchdogRequest {
        let wire: WireRequest
        do {
            wire = try JSONDecoder().decode(WireRequest.self, from: Data(line))
        } catch {
            throw DecodingFailure(description: "not a request object {\"op\":…}: \(error)")
        }
        func deadlineAndHolder() throws -> (MonotonicInstant, String) {
            guard let nanos = wire.deadlineNanos, let holder = wire.holder, !holder.isEmpty else {
                throw DecodingFailure(description: "'\(wire.op)' needs deadlineNanos (CLOCK_MONOTONIC ns) and a non-empty holder")
            }
            return (MonotonicInstant(nanoseconds: nanos), holder)
        }
        switch wire.op {
        case "pet":
            let (deadline, holder) = try deadlineAndHolder()
            return .pet(deadline: deadline, holder: holder)
        case "rearm":
            let (deadline, holder) = try deadlineAndHolder()
            return .rearm(deadline: deadline, holder: holder)
        case "disarm": return .disarm
        case "status": return .status
        default:
            throw DecodingFailure(description: "unknown op '\(wire.op)': use pet, rearm, disarm or status")
        }
    }

    public static func encode(_ reply: WatchdogReply) -> [UInt8] { line(reply) }

    public static func decodeReply(_ line: [UInt8]) throws -> WatchdogReply {
        do {
            return try JSONDecoder().decode(WatchdogReply.self, from: Data(line))
        } catch {
            throw DecodingFailure(description: "not a watchdog reply: \(error)")
        }
    }

    private static func line(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding these plain structs cannot fail.
        return Array(try! encoder.encode(value)) + [UInt8(ascii: "\n")]
    }
}

import Foundation

/// One message from QEMU to us: the greeting, a command's reply, or an event.
public enum QMPMessage: Sendable, Equatable {
    case greeting(QMPGreeting)
    /// `id` is what the command carried (nil if it had none, or for a reply to unparsable input).
    case reply(id: QMPValue?, result: Result<QMPValue, QMPError>)
    case event(QMPEvent)
}

/// The first line QEMU sends: `{"QMP": {"version": …, "capabilities": […]}}`.
public struct QMPGreeting: Sendable, Equatable {
    public var major: Int
    public var minor: Int
    public var micro: Int
    /// Optional capabilities QEMU offers (`oob`); we enable none.
    public var capabilities: [String]

    public init(major: Int, minor: Int, micro: Int, capabilities: [String] = []) {
        self.major = major
        self.minor = minor
        self.micro = micro
        self.capabilities = capabilities
    }

    public var version: String { "\(major).\(minor).\(micro)" }
}

/// An asynchronous QMP event (`SHUTDOWN`, `STOP`, `MIGRATION`, …).
public struct QMPEvent: Sendable, Equatable {
    public var name: Name
    /// The event's `data` object, `.null` when it has none.
    public var data: QMPValue
    /// When QEMU emitted it (host wall clock), if it said.
    public var timestamp: Date?

    public init(name: Name, data: QMPValue = .null, timestamp: Date? = nil) {
        self.name = name
        self.data = data
        self.timestamp = timestamp
    }

    /// An event name; unknown names are kept as they are.
    public struct Name: QMPName {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }

        /// QEMU is exiting; `data.guest` says whether the guest asked (power off) or the host did (quit, signal).
        public static let shutdown: Name = "SHUTDOWN"
        public static let powerdown: Name = "POWERDOWN"
        public static let reset: Name = "RESET"
        public static let stop: Name = "STOP"
        public static let resume: Name = "RESUME"
        public static let guestPanicked: Name = "GUEST_PANICKED"
        /// Migration state change; `data.status` is a `MigrationStatus` raw value.
        public static let migration: Name = "MIGRATION"
        /// A pass over dirty memory finished; `data.pass` counts them. Needs the `events` capability.
        public static let migrationPass: Name = "MIGRATION_PASS"
        public static let blockIOError: Name = "BLOCK_IO_ERROR"
    }
}

/// A name QMP defines as an enum (run states, event names, migration states). Kept as
/// a string so a value a newer QEMU adds is carried, not rejected.
public protocol QMPName: RawRepresentable, Hashable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral
where RawValue == String {
    init(rawValue: String)
}

extension QMPName {
    public init(stringLiteral value: String) { self.init(rawValue: value) }
    public var description: String { rawValue }
}

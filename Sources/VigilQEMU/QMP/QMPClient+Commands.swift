/// Typed helpers for the commands the agent uses.
extension QMPClient {
    /// `query-status`.
    public func queryStatus() async throws -> QMPStatus {
        let value = try await execute("query-status")
        guard let status = value["status"]?.stringValue else {
            throw QMPError(.protocolViolation, "query-status without status: \(value)", command: "query-status")
        }
        return QMPStatus(runState: QMPRunState(rawValue: status), running: value["running"]?.boolValue ?? (status == "running"))
    }

    /// ACPI power button: the guest shuts down cleanly, then QEMU exits (with `-no-reboot`
    /// and no `-no-shutdown`). Returns once QEMU accepted the request, not when it exited.
    public func systemPowerdown() async throws { try await execute("system_powerdown") }

    /// QEMU exits at once (no guest shutdown). The reply may or may not arrive before
    /// the connection closes; both count as success.
    public func quit() async throws {
        do {
            try await execute("quit")
        } catch let error as QMPError where error.code == .connectionClosed {
            return
        }
    }

    /// Pauses the guest's CPUs.
    public func stop() async throws { try await execute("stop") }

    /// Resumes the guest's CPUs.
    public func cont() async throws { try await execute("cont") }
}

/// `query-status`'s answer.
public struct QMPStatus: Sendable, Equatable {
    public var runState: QMPRunState
    /// Whether guest CPUs run.
    public var running: Bool

    public init(runState: QMPRunState, running: Bool) {
        self.runState = runState
        self.running = running
    }
}

/// QEMU's `RunState`; unknown values are kept.
public struct QMPRunState: QMPName {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let running: QMPRunState = "running"
    public static let paused: QMPRunState = "paused"
    /// Started with `-S` and not continued yet.
    public static let prelaunch: QMPRunState = "prelaunch"
    /// Destination waiting for an incoming migration.
    public static let inmigrate: QMPRunState = "inmigrate"
    /// Source after a completed migration (the guest now runs elsewhere).
    public static let postmigrate: QMPRunState = "postmigrate"
    public static let finishMigrate: QMPRunState = "finish-migrate"
    /// The guest shut down but QEMU stays (`-no-shutdown`).
    public static let shutdown: QMPRunState = "shutdown"
    public static let guestPanicked: QMPRunState = "guest-panicked"
    public static let internalError: QMPRunState = "internal-error"
    public static let ioError: QMPRunState = "io-error"
    public static let suspended: QMPRunState = "suspended"
    public static let watchdog: QMPRunState = "watchdog"
    public static let debug: QMPRunState = "debug"
    public static let restoreVM: QMPRunState = "restore-vm"
    public static let saveVM: QMPRunState = "save-vm"
}

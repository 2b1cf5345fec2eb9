/// Why a QMP exchange failed. Callers switch on `code`; new codes break no caller.
///
/// `.commandFailed` carries QEMU's own error `class` (`GenericError`,
/// `CommandNotFound`, `DeviceNotActive`, …) and `desc`; `.connectionClosed` means the
/// socket closed under us, which for a running VM almost always means QEMU died.
public struct QMPError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Equatable, Sendable {
        /// QEMU answered the command with an error (see `errorClass`, `message`).
        case commandFailed
        /// The connection closed (QEMU exited or was killed, or we closed it).
        case connectionClosed
        /// No answer (or no greeting) within the allowed time.
        case timedOut
        /// QEMU sent something that is not QMP (bad JSON, unknown shape, line too long).
        case protocolViolation
        /// The socket could not be connected (no such file, refused).
        case connectFailed
    }

    public var code: Code
    /// QMP's error class for `.commandFailed`; empty otherwise.
    public var errorClass: String
    /// QEMU's `desc`, or what went wrong locally.
    public var message: String
    /// The command this error answers, when there is one.
    public var command: String?

    public init(_ code: Code, _ message: String, errorClass: String = "", command: String? = nil) {
        self.code = code
        self.message = message
        self.errorClass = errorClass
        self.command = command
    }

    public var description: String {
        var s = "QMP \(code.rawValue)"
        if let command { s += " (\(command))" }
        if !errorClass.isEmpty { s += " \(errorClass)" }
        return s + ": \(message)"
    }

    func forCommand(_ command: String) -> QMPError {
        var copy = self
        copy.command = command
        return copy
    }
}

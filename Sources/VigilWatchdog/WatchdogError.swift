/// Why a watchdog request or the watchdog itself failed. Match on `code`
/// (`catch let e as WatchdogError where e.code == .fencing`); new codes break no caller.
public struct WatchdogError: Error, Sendable, Equatable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// No socket file: vigil-watchdog is not running (or uses another `--socket`).
        public static let socketMissing = Code("socketMissing")
        /// The socket file exists but nobody accepts on it (the watchdog died).
        public static let notListening = Code("notListening")
        /// No reply in time: the watchdog is stopped or starved.
        public static let timedOut = Code("timedOut")
        /// The connection broke twice in a row (the watchdog restarted and died again?).
        public static let connectionLost = Code("connectionLost")
        /// Refused: the deadline passed and the watchdog is fencing; only `rearm` ends it.
        public static let fencing = Code("fencing")
        /// The other side sent something that is not the protocol.
        public static let protocolViolation = Code("protocolViolation")
        /// Socket setup failed (path too long, bind failed, …).
        public static let socketFailed = Code("socketFailed")
        /// Another vigil-watchdog already serves this socket.
        public static let alreadyRunning = Code("alreadyRunning")
    }

    public var code: Code
    public var message: String
    /// The watchdog's status with a `.fencing` refusal.
    public var status: WatchdogStatus?

    public init(_ code: Code, _ message: String, status: WatchdogStatus? = nil) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String { "watchdog \(code): \(message)" }
}

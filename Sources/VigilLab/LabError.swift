/// Every failure of the lab, with a message that says what was wrong and what to do.
/// Callers match on `code`; new codes break no caller.
public struct LabError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        private let raw: String
        private init(_ raw: String) { self.raw = raw }
        public var description: String { raw }

        /// Bad name, node count, index or timing.
        public static let invalidSpec = Code("invalidSpec")
        /// The lab (or leftovers of it) already exists, or its addresses collide with routes or another lab.
        public static let alreadyExists = Code("alreadyExists")
        /// No lab.json for that name.
        public static let notFound = Code("notFound")
        /// Namespaces need root and a working `ip netns`.
        public static let needsNetns = Code("needsNetns")
        /// Link faults and host namespaces do not exist in loopback mode.
        public static let unsupportedInLoopback = Code("unsupportedInLoopback")
        /// A host, network or process the lab does not have.
        public static let noSuchTarget = Code("noSuchTarget")
        /// A command the lab ran failed.
        public static let commandFailed = Code("commandFailed")
        /// etcd or an agent did not become ready in time.
        public static let notReady = Code("notReady")
        /// A binary was not found.
        public static let missingBinary = Code("missingBinary")
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

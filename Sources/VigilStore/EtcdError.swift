/// Why an etcd request failed. Callers switch on `code`; new codes break no caller.
public struct EtcdError: Error, Equatable, CustomStringConvertible, Sendable {
    public enum Code: String, Equatable, Sendable {
        /// No endpoint accepted a connection.
        case unreachable
        /// An endpoint answered too slowly or said it has no leader: likely no quorum.
        case noQuorum
        /// A compare-and-swap transaction's compare failed.
        case compareFailed
        /// The lease does not exist (expired or revoked).
        case leaseNotFound
        /// The revision asked for was compacted away.
        case compacted
        /// etcd refused the request (bad argument and similar).
        case rejected
        /// The answer could not be understood.
        case badResponse
    }
    public var code: Code
    public var message: String
    /// For `.compacted`: the oldest revision still available.
    public var compactRevision: Int64?

    public init(_ code: Code, _ message: String, compactRevision: Int64? = nil) {
        self.code = code; self.message = message; self.compactRevision = compactRevision
    }
    public var description: String { "etcd \(code.rawValue): \(message)" }
}

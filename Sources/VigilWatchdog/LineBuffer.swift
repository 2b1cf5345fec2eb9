/// Splits a byte stream into newline-terminated lines (the watchdog protocol's framing),
/// for both ends. A line longer than `limit` is a broken or hostile peer: it throws.
struct LineBuffer {
    let limit: Int
    private var bytes: [UInt8] = []
    private var scanned = 0

    init(limit: Int = 64 * 1024) { self.limit = limit }

    struct LineTooLong: Error, CustomStringConvertible {
        var limit: Int
        var description: String { "a line longer than \(limit) bytes without a newline" }
    }

    mutating func append(_ more: some Sequence<UInt8>) throws {
        bytes.append(contentsOf: more)
        if bytes.count > limit, !bytes[scanned...].contains(UInt8(ascii: "\n")) { throw LineTooLong(limit: limit) }
    }

    /// The next complete line without its newline, or nil until one has arrived.
    mutating func nextLine() -> [UInt8]? {
        guard let newline = bytes[scanned...].firstIndex(of: UInt8(ascii: "\n")) else {
            scanned = bytes.count
            return nil
        }
        let line = Array(bytes[..<newline])
        bytes.removeSubrange(...newline)
        scanned = 0
        return line
    }
}

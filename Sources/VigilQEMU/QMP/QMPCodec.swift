import Foundation

/// Splits QMP's byte stream into messages. QMP is newline-delimited JSON (QEMU ends
/// each line with `\r\n`; JSON strings never contain a raw newline). No I/O here:
/// feed bytes in any chunking, take messages out.
///
/// Leaves alone: what a message means for pending commands (`QMPConnectionState`).
public struct QMPMessageDecoder: Sendable {
    /// A line longer than this is a protocol violation (a runaway peer, not QEMU).
    public static let maximumLineLength = 16 << 20

    private var buffer: [UInt8] = []
    private var start = 0
    /// Bytes from `start` already known to hold no newline.
    private var scanned = 0

    public init() {}

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        buffer.append(contentsOf: bytes)
    }

    /// The next complete message, or nil when more bytes are needed. Blank lines are skipped.
    public mutating func next() throws(QMPError) -> QMPMessage? {
        while true {
            var newline: Int?
            var i = start + scanned
            while i < buffer.count {
                if buffer[i] == UInt8(ascii: "\n") { newline = i; break }
                i += 1
            }
            guard let end = newline else {
                scanned = buffer.count - start
                if scanned > Self.maximumLineLength {
                    throw QMPError(.protocolViolation, "QMP line longer than \(Self.maximumLineLength) bytes")
                }
                compact()
                return nil
            }
            let line = buffer[start..<end]
            start = end + 1
            scanned = 0
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
            let message = try Self.decode(line: line)
            compact()
            return message
        }
    }

    /// Bytes received but not yet part of a complete line.
    public var pendingByteCount: Int { buffer.count - start }

    private mutating func compact() {
        if start == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            start = 0
        } else if start > 4096 && start * 2 > buffer.count {
            buffer.removeSubrange(0..<start)
            start = 0
        }
    }

    /// Decodes one line (without its newline) into a message.
    public static func decode(line: some Collection<UInt8>) throws(QMPError) -> QMPMessage {
        let value: QMPValue
        do {
            value = try JSONDecoder().decode(QMPValue.self, from: Data(line))
        } catch {
            let text = String(decoding: line.prefix(200), as: UTF8.self)
            throw QMPError(.protocolViolation, "not JSON: \(text)")
        }
        return try message(from: value)
    }

    static func message(from value: QMPValue) throws(QMPError) -> QMPMessage {
        guard case .object(let o) = value else {
            throw QMPError(.protocolViolation, "QMP message is not an object")
        }
        if let greeting = o["QMP"] {
            let version = greeting["version"]?["qemu"]
            let caps = greeting["capabilities"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return .greeting(QMPGreeting(
                major: Int(version?["major"]?.int64Value ?? 0),
                minor: Int(version?["minor"]?.int64Value ?? 0),
                micro: Int(version?["micro"]?.int64Value ?? 0),
                capabilities: caps))
        }
        if let result = o["return"] {
            return .reply(id: o["id"], result: .success(result))
        }
        if let error = o["error"] {
            let failure = QMPError(
                .commandFailed, error["desc"]?.stringValue ?? "(no description)",
                errorClass: error["class"]?.stringValue ?? "GenericError")
            return .reply(id: o["id"], result: .failure(failure))
        }
        if let name = o["event"]?.stringValue {
            var timestamp: Date?
            if let ts = o["timestamp"], let s = ts["seconds"]?.int64Value, let us = ts["microseconds"]?.int64Value {
                timestamp = Date(timeIntervalSince1970: Double(s) + Double(us) / 1_000_000)
            }
            return .event(QMPEvent(name: QMPEvent.Name(rawValue: name), data: o["data"] ?? .null, timestamp: timestamp))
        }
        throw QMPError(.protocolViolation, "unknown QMP message with keys \(o.keys.sorted())")
    }
}

/// Encodes commands as QMP wants them: one JSON object and a newline.
public enum QMPCommandEncoder {
    public static func encode(_ command: String, arguments: [String: QMPValue]? = nil, id: QMPValue? = nil) -> [UInt8] {
        var object: [String: QMPValue] = ["execute": .string(command)]
        if let arguments { object["arguments"] = .object(arguments) }
        if let id { object["id"] = id }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a QMPValue cannot fail: every case maps to JSON (non-finite doubles excepted).
        guard let data = try? encoder.encode(QMPValue.object(object)) else {
            preconditionFailure("QMP command \(command) has a non-finite number in its arguments")
        }
        return Array(data) + [UInt8(ascii: "\n")]
    }
}

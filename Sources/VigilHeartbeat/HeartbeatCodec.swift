import Crypto
import NIOCore
import VigilCore

/// Encodes and authenticates heartbeats, and verifies and decodes them. Knows the key
/// and the cluster; keeps no state (replays are the state machine's business).
public struct HeartbeatCodec: Sendable {
    public let key: HeartbeatKey
    public let cluster: ClusterName

    public init(key: HeartbeatKey, cluster: ClusterName) { self.key = key; self.cluster = cluster }

    /// Appends the encoded, authenticated message to `buffer`.
    public func encode(_ message: HeartbeatMessage, into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeBytes(HeartbeatMessage.magic)
        buffer.writeInteger(message.version)
        Self.writeName(message.cluster.rawValue, into: &buffer)
        Self.writeName(message.sender.rawValue, into: &buffer)
        Self.writeName(message.network, into: &buffer)
        buffer.writeInteger(message.sequence.incarnation)
        buffer.writeInteger(message.sequence.number)
        buffer.writeInteger(message.sentAt)
        let body = buffer.getBytes(at: start, length: buffer.writerIndex - start)!
        let mac = HMAC<SHA256>.authenticationCode(for: body, using: key.symmetricKey)
        _ = mac.withUnsafeBytes { buffer.writeBytes($0) }
    }

    public func encode(_ message: HeartbeatMessage, allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 64 + message.network.utf8.count + message.sender.rawValue.utf8.count)
        encode(message, into: &buffer)
        return buffer
    }

    /// Decodes one whole datagram. The MAC (the last 32 bytes) is verified, in constant
    /// time, before any field after the version is read.
    public func decode(_ datagram: ByteBuffer) throws(HeartbeatDecodeError) -> HeartbeatMessage {
        var buffer = datagram
        let headerLength = HeartbeatMessage.magic.count + 1
        guard buffer.readableBytes >= headerLength + HeartbeatMessage.macLength else {
            if buffer.readableBytes >= 4, buffer.getBytes(at: buffer.readerIndex, length: 4)! != HeartbeatMessage.magic {
                throw .badMagic
            }
            throw .truncated
        }
        guard buffer.readBytes(length: 4)! == HeartbeatMessage.magic else { throw .badMagic }
        let version: UInt8 = buffer.readInteger()!
        guard version == HeartbeatMessage.currentVersion else { throw .unsupportedVersion }

        let bodyLength = datagram.readableBytes - HeartbeatMessage.macLength
        let bytes = datagram.getBytes(at: datagram.readerIndex, length: datagram.readableBytes)!
        let mac = Array(bytes[bodyLength...])
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: bytes[..<bodyLength], using: key.symmetricKey) else {
            throw .authenticationFailed
        }

        // Authenticated: from here a bad field is our peer's bug, not an attack.
        buffer = datagram.getSlice(at: datagram.readerIndex + headerLength, length: bodyLength - headerLength)!
        let clusterRaw = try Self.readName(&buffer)
        let senderRaw = try Self.readName(&buffer)
        let network = try Self.readName(&buffer)
        guard let incarnation: UInt64 = buffer.readInteger(),
              let number: UInt64 = buffer.readInteger(),
              let sentAt: UInt64 = buffer.readInteger() else { throw .truncated }
        guard buffer.readableBytes == 0, !network.isEmpty,
              let cluster = try? ClusterName(clusterRaw),
              let sender = try? NodeName(senderRaw) else { throw .malformed }
        guard cluster == self.cluster else { throw .wrongCluster }
        return HeartbeatMessage(version: version, cluster: cluster, sender: sender, network: network,
                                sequence: HeartbeatSequence(incarnation: incarnation, number: number), sentAt: sentAt)
    }

    private static func writeName(_ name: String, into buffer: inout ByteBuffer) {
        let bytes = Array(name.utf8.prefix(255))
        buffer.writeInteger(UInt8(bytes.count))
        buffer.writeBytes(bytes)
    }

    private static func readName(_ buffer: inout ByteBuffer) throws(HeartbeatDecodeError) -> String {
        guard let length: UInt8 = buffer.readInteger() else { throw .truncated }
        guard let s = buffer.readString(length: Int(length)) else { throw .truncated }
        return s
    }
}

import NIOCore
import Testing
import VigilCore
@testable import VigilHeartbeat

@Suite struct HeartbeatCodecTests {
    static let key = try! HeartbeatKey(hex: "a9b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90")
    static let codec = HeartbeatCodec(key: key, cluster: try! ClusterName("demo"))
    static let message = HeartbeatMessage(cluster: try! ClusterName("demo"), sender: try! NodeName("n2"), network: "cluster1",
                                          sequence: HeartbeatSequence(incarnation: 0x0102_0304_0506_0708, number: 42),
                                          sentAt: 0x1122_3344_5566_7788)

    @Test func roundTripGivesTheSameMessage() throws {
        let bytes = Self.codec.encode(Self.message)
        #expect(try Self.codec.decode(bytes) == Self.message)
    }

    @Test func layoutIsMagicVersionNamesNumbersThenMAC() {
        let bytes = Array(Self.codec.encode(Self.message).readableBytesView)
        var expected: [UInt8] = Array("VGHB".utf8) + [1]
        expected += [4] + Array("demo".utf8) + [2] + Array("n2".utf8) + [8] + Array("cluster1".utf8)
        expected += [1, 2, 3, 4, 5, 6, 7, 8] + [0, 0, 0, 0, 0, 0, 0, 42] + [0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]
        #expect(bytes.count == expected.count + 32)
        #expect(Array(bytes.prefix(expected.count)) == expected)
    }

    @Test func everyTruncationIsRejected() {
        let bytes = Self.codec.encode(Self.message)
        for length in 0..<bytes.readableBytes {
            let prefix = bytes.getSlice(at: bytes.readerIndex, length: length)!
            #expect(throws: HeartbeatDecodeError.self, "prefix of \(length) bytes") { try Self.codec.decode(prefix) }
            if length >= 4 + 1 + 32 {
                #expect(throws: HeartbeatDecodeError.authenticationFailed) { try Self.codec.decode(prefix) }
            }
        }
    }

    @Test func everyFlippedBitIsRejected() {
        let bytes = Array(Self.codec.encode(Self.message).readableBytesView)
        for index in bytes.indices {
            for bit in 0..<8 {
                var tampered = bytes
                tampered[index] ^= 1 << bit
                let expected: HeartbeatDecodeError = index < 4 ? .badMagic : index == 4 ? .unsupportedVersion : .authenticationFailed
                #expect(throws: expected, "byte \(index) bit \(bit)") { try Self.codec.decode(ByteBuffer(bytes: tampered)) }
            }
        }
    }

    @Test func appendedByteFailsAuthentication() {
        var bytes = Self.codec.encode(Self.message)
        bytes.writeInteger(UInt8(0))
        #expect(throws: HeartbeatDecodeError.authenticationFailed) { try Self.codec.decode(bytes) }
    }

    @Test func wrongKeyFailsAuthentication() throws {
        let other = HeartbeatCodec(key: try HeartbeatKey(hex: String(repeating: "5a", count: 32)), cluster: try ClusterName("demo"))
        #expect(throws: HeartbeatDecodeError.authenticationFailed) { try other.decode(Self.codec.encode(Self.message)) }
    }

    @Test func anotherClusterWithTheSameKeyIsRejected() throws {
        let other = HeartbeatCodec(key: Self.key, cluster: try ClusterName("prod"))
        #expect(throws: HeartbeatDecodeError.wrongCluster) { try other.decode(Self.codec.encode(Self.message)) }
    }

    @Test func authenticatedGarbageNameIsMalformed() throws {
        var m = Self.message
        m.sender = NodeName(unchecked: "Bad Name")
        #expect(throws: HeartbeatDecodeError.malformed) { try Self.codec.decode(Self.codec.encode(m)) }
    }

    @Test func keyNeedsEnoughEvenHexDigits() {
        #expect(throws: HeartbeatKeyError.self) { try HeartbeatKey(hex: "abcd") }
        #expect(throws: HeartbeatKeyError.self) { try HeartbeatKey(hex: String(repeating: "a", count: 33)) }
        #expect(throws: HeartbeatKeyError.self) { try HeartbeatKey(hex: String(repeating: "g", count: 32)) }
        #expect(throws: Never.self) { try HeartbeatKey(hex: String(repeating: "A0", count: 16)) }
    }

    @Test func sequencesOrderByIncarnationThenNumber() {
        let a = HeartbeatSequence(incarnation: 5, number: 100)
        #expect(a < HeartbeatSequence(incarnation: 5, number: 101))
        #expect(a < HeartbeatSequence(incarnation: 6, number: 0))
        #expect(a.isFollowed(by: HeartbeatSequence(incarnation: 5, number: 101)))
        #expect(!a.isFollowed(by: HeartbeatSequence(incarnation: 6, number: 101)))
    }
}

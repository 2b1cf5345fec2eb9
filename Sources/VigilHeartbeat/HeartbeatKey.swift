import Crypto

/// The cluster's heartbeat key (`clusterKey` in vigild.yaml): every heartbeat carries an
/// HMAC-SHA256 under it. Holds the key only; it never leaves the process.
public struct HeartbeatKey: Sendable {
    /// Fewest hex characters accepted (128 bits).
    public static let minimumHexLength = 32

    private let bytes: [UInt8]
    var symmetricKey: SymmetricKey { SymmetricKey(data: bytes) }

    /// Parses the hex form of the config file. Throws `HeartbeatKeyError` naming what is wrong.
    public init(hex: String) throws {
        guard hex.count >= Self.minimumHexLength else {
            throw HeartbeatKeyError(description: "clusterKey has \(hex.count) hex characters; give at least \(Self.minimumHexLength)")
        }
        guard hex.count % 2 == 0 else {
            throw HeartbeatKeyError(description: "clusterKey has an odd number of hex characters")
        }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.count / 2)
        var high: UInt8?
        for scalar in hex.unicodeScalars {
            guard let nibble = Self.nibble(scalar) else {
                throw HeartbeatKeyError(description: "clusterKey contains '\(scalar)'; use hex digits 0-9 a-f")
            }
            if let h = high { bytes.append(h << 4 | nibble); high = nil } else { high = nibble }
        }
        self.bytes = bytes
    }

    public init(bytes: [UInt8]) { self.bytes = bytes }

    private static func nibble(_ s: Unicode.Scalar) -> UInt8? {
        switch s {
        case "0"..."9": UInt8(s.value - 48)
        case "a"..."f": UInt8(s.value - 87)
        case "A"..."F": UInt8(s.value - 55)
        default: nil
        }
    }
}

public struct HeartbeatKeyError: Error, Equatable, CustomStringConvertible {
    public var description: String
}

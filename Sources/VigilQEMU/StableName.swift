/// Names derived from a VM name that must be the same on every host and every run
/// (Swift's `Hasher` is seeded per process, so it is no use here).
enum StableHash {
    /// FNV-1a, 64 bit, over the UTF-8 bytes.
    static func fnv1a64(_ text: String) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return hash
    }
}

/// An Ethernet address.
public struct MACAddress: Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 6 else { return nil }
        self.bytes = bytes
    }

    /// Parses `52:54:00:12:34:56`.
    public init?(_ text: String) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, let b = UInt8(part, radix: 16) else { return nil }
            bytes.append(b)
        }
        self.bytes = bytes
    }

    /// QEMU's locally administered prefix `52:54:00` and three bytes of a hash of the
    /// VM name: the same MAC wherever the VM runs, so a migrated or restarted VM keeps
    /// its address and bridges relearn it from the guest's gratuitous ARP.
    public static func stable(forVM name: String) -> MACAddress {
        let h = StableHash.fnv1a64(name)
        return MACAddress(bytes: [0x52, 0x54, 0x00, UInt8(truncatingIfNeeded: h >> 16), UInt8(truncatingIfNeeded: h >> 8), UInt8(truncatingIfNeeded: h)])!
    }

    public var description: String {
        bytes.map { b in
            let s = String(b, radix: 16)
            return b < 16 ? "0" + s : s
        }.joined(separator: ":")
    }
}

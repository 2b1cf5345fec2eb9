/// A GUID as VHDX stores it: the first three fields little-endian, the rest as bytes.
public struct VHDXGUID: Hashable, Sendable, CustomStringConvertible {
    public var bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 16)
        self.bytes = bytes
    }

    /// Parses the usual text form "2DC27766-F623-4200-9D64-115E9BFD4A08".
    public init?(_ text: String) {
        let hex = text.filter { $0 != "-" }
        guard hex.count == 32 else { return nil }
        var be = [UInt8]()
        var it = hex.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let v = UInt8(String([a, b]), radix: 16) else { return nil }
            be.append(v)
        }
        bytes = [be[3], be[2], be[1], be[0], be[5], be[4], be[7], be[6]] + be[8..<16]
    }

    public static let zero = VHDXGUID(bytes: [UInt8](repeating: 0, count: 16))

    public static func random() -> VHDXGUID {
        var g = SystemRandomNumberGenerator()
        var b = (0..<16).map { _ in UInt8.random(in: 0...255, using: &g) }
        b[7] = (b[7] & 0x0F) | 0x40  // version 4 (stored little-endian)
        b[8] = (b[8] & 0x3F) | 0x80
        return VHDXGUID(bytes: b)
    }

    public var isZero: Bool { bytes.allSatisfy { $0 == 0 } }

    public var description: String {
        let be = [bytes[3], bytes[2], bytes[1], bytes[0], bytes[5], bytes[4], bytes[7], bytes[6]] + bytes[8..<16]
        let h = be.map { b in String(b, radix: 16, uppercase: true).leftPadded(2) }
        return h[0..<4].joined() + "-" + h[4..<6].joined() + "-" + h[6..<8].joined() + "-" + h[8..<10].joined() + "-" + h[10..<16].joined()
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}

extension Array where Element == UInt8 {
    func guid(_ o: Int) -> VHDXGUID { VHDXGUID(bytes: Array(self[o..<(o + 16)])) }
    mutating func putGUID(_ g: VHDXGUID, at o: Int) { replaceSubrange(o..<(o + 16), with: g.bytes) }
}

/// The well-known GUIDs of the VHDX Format Specification v1.0.
enum VHDXKnownGUID {
    static let batRegion = VHDXGUID("2DC27766-F623-4200-9D64-115E9BFD4A08")!
    static let metadataRegion = VHDXGUID("8B7CA206-4790-4B9A-B8FE-575F050F886E")!
    static let fileParameters = VHDXGUID("CAA16737-FA36-4D43-B3B6-33F0AA44E76B")!
    static let virtualDiskSize = VHDXGUID("2FA54224-CD1B-4876-B211-5DBED83BF4B8")!
    static let page83Data = VHDXGUID("BECA12AB-B2E6-4523-93EF-C309E000C746")!
    static let logicalSectorSize = VHDXGUID("8141BF1D-A96F-4709-BA47-F233A8FAAB5F")!
    static let physicalSectorSize = VHDXGUID("CDA348C7-445D-4471-9CC9-E9885251C556")!
    static let parentLocator = VHDXGUID("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")!
}

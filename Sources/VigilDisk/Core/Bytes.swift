/// Little-endian field access on byte arrays, for the on-disk structures.
extension Array where Element == UInt8 {
    func le16(_ o: Int) -> UInt16 { UInt16(self[o]) | UInt16(self[o + 1]) << 8 }
    func le32(_ o: Int) -> UInt32 {
        withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt32.self).littleEndian }
    }
    func le64(_ o: Int) -> UInt64 {
        withUnsafeBytes { $0.loadUnaligned(fromByteOffset: o, as: UInt64.self).littleEndian }
    }
    mutating func put16(_ v: UInt16, at o: Int) { self[o] = UInt8(v & 0xFF); self[o + 1] = UInt8(v >> 8) }
    mutating func put32(_ v: UInt32, at o: Int) {
        withUnsafeMutableBytes { $0.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt32.self) }
    }
    mutating func put64(_ v: UInt64, at o: Int) {
        withUnsafeMutableBytes { $0.storeBytes(of: v.littleEndian, toByteOffset: o, as: UInt64.self) }
    }
    mutating func putASCII(_ s: String, at o: Int) {
        for (i, b) in s.utf8.enumerated() { self[o + i] = b }
    }
    func ascii(_ o: Int, _ n: Int) -> String {
        String(decoding: self[o..<(o + n)].map { (32..<127).contains($0) ? $0 : UInt8(ascii: "?") }, as: UTF8.self)
    }
    func matches(_ s: String, at o: Int) -> Bool {
        var i = o
        for b in s.utf8 {
            if i >= count || self[i] != b { return false }
            i += 1
        }
        return true
    }
    var isAllZero: Bool { allSatisfy { $0 == 0 } }
}

/// Size constants.
enum Size {
    static let KiB: UInt64 = 1024
    static let MiB: UInt64 = 1024 * 1024
    static let GiB: UInt64 = 1024 * 1024 * 1024
    static let TiB: UInt64 = 1024 * 1024 * 1024 * 1024
}

extension UInt64 {
    func roundedUp(to m: UInt64) -> UInt64 { (self + m - 1) / m * m }
}

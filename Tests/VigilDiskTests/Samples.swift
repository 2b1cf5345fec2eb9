import Foundation
@testable import VigilDisk

/// Small real images, built in memory, and ways to damage them precisely.
enum Samples {
    static let batOffset = 3 << 20
    static let metadataItems = (2 << 20) + 64 * 1024

    /// A dynamic 8 MiB VHDX (1 MiB blocks) with three blocks written and a clean log.
    static func dynamic(seed: UInt64 = 1, close: Bool = true) async throws -> [UInt8] {
        let io = MemoryIO([], writable: true)
        try VHDXCreator.write(to: io, options: .init(type: .dynamic, virtualSize: 8 << 20, blockSize: 1 << 20))
        let disk = try VHDXDisk(io: io)
        var rng = SeededRNG(seed: seed)
        for block in [0, 3, 7] { try await disk.write(rng.bytes(64 * 1024), at: UInt64(block) << 20 | 4096) }
        if close { try await disk.close() } else { try await disk.flush() }
        return io.bytes
    }

    static func header(_ b: [UInt8], slot: Int) throws -> VHDXHeader {
        let off = Int(VHDXLayout.headerOffsets[slot])
        return try VHDXHeader.decode(Array(b[off..<(off + 4096)]), offset: UInt64(off))
    }

    /// Rewrites both headers (valid CRCs) after `change`.
    static func patchHeaders(_ b: inout [UInt8], _ change: (inout VHDXHeader) -> Void) throws {
        for slot in 0..<2 {
            var h = try header(b, slot: slot)
            change(&h)
            let off = Int(VHDXLayout.headerOffsets[slot])
            b.replaceSubrange(off..<(off + 4096), with: h.encoded())
        }
    }

    /// Rewrites both region tables (valid CRCs) after `change`.
    static func patchRegions(_ b: inout [UInt8], _ change: (inout [VHDXRegion]) -> Void) throws {
        let off = Int(VHDXLayout.regionTableOffsets[0])
        var t = try VHDXRegionTable.decode(Array(b[off..<(off + 65536)]), offset: UInt64(off), fileSize: UInt64(b.count), log: 0..<0)
        change(&t.entries)
        for o in VHDXLayout.regionTableOffsets { b.replaceSubrange(Int(o)..<(Int(o) + 65536), with: t.encoded()) }
    }

    static func batEntry(_ b: [UInt8], _ i: Int) -> UInt64 { b.le64(batOffset + 8 * i) }
    static func setBATEntry(_ b: inout [UInt8], _ i: Int, _ v: UInt64) { b.put64(v, at: batOffset + 8 * i) }

    /// Recomputes the CRC of every header and region table copy whose signature is intact.
    static func fixChecksums(_ b: inout [UInt8]) {
        for o in VHDXLayout.headerOffsets.map(Int.init) where b.count >= o + 4096 && b.matches("head", at: o) {
            b.put32(CRC32C.vhdxChecksum(b, in: o..<(o + 4096)), at: o + 4)
        }
        for o in VHDXLayout.regionTableOffsets.map(Int.init) where b.count >= o + 65536 && b.matches("regi", at: o) {
            b.put32(CRC32C.vhdxChecksum(b, in: o..<(o + 65536)), at: o + 4)
        }
    }
}

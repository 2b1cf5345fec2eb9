import Foundation
import Testing
@testable import VigilDisk

/// Damaged or foreign files give a typed error naming the problem, and are never written.
@Suite struct BadInputTests {
    /// Opens `bytes` from a real file read-write; returns the error and checks the file is unchanged.
    func openError(_ bytes: [UInt8]) throws -> DiskError? {
        let dir = TempDir()
        let path = dir.file("bad.vhdx")
        writeFile(path, bytes)
        defer { #expect(readFile(path) == bytes, "the file was modified") }
        do {
            _ = try VHDXDisk.open(path: path, writable: true)
            return nil
        } catch {
            return error
        }
    }

    @Test func truncatedFilesAreReportedAsTruncated() async throws {
        let good = try await Samples.dynamic()
        for cut in [0, 7, 4096, 65536 + 100, 131072 + 4000, 200_000, 300_000, (1 << 20) + 5, 2 << 20, (3 << 20) + 4096] {
            let err = try openError(Array(good[0..<cut]))
            switch err {
            case .truncated?, .notVHDX?: break
            default: Issue.record("cut at \(cut): \(String(describing: err))")
            }
        }
        // Cutting into allocated payload blocks leaves BAT entries pointing past the end.
        let err = try openError(Array(good[0..<(good.count - (1 << 20))]))
        guard case .batEntryOutOfBounds? = err else { Issue.record("\(String(describing: err))"); return }
    }

    @Test func rawFilePassedAsVHDXIsNotVHDX() throws {
        let err = try openError(patternedRaw(size: 4 << 20, seed: 3, fill: 1))
        guard case .notVHDX? = err else { Issue.record("\(String(describing: err))"); return }
        #expect(err!.description.contains("raw"))
    }

    @Test func wrongSignaturesAreNamed() async throws {
        var b = try await Samples.dynamic()
        for o in VHDXLayout.headerOffsets { b[Int(o)] = UInt8(ascii: "X") }
        #expect(try openError(b) == .badSignature(structure: "header at 65536", offset: 65536))
        var r = try await Samples.dynamic()
        for o in VHDXLayout.regionTableOffsets { r[Int(o) + 1] = 0 }
        #expect(try openError(r) == .badSignature(structure: "region table at 196608", offset: 196608))
        var m = try await Samples.dynamic()
        m[2 << 20] = 0
        #expect(try openError(m) == .badSignature(structure: "metadata table", offset: 2 << 20))
    }

    @Test func badChecksumsAreNamedAndOneBadHeaderIsTolerated() async throws {
        var b = try await Samples.dynamic()
        b[65536 + 1000] ^= 1
        #expect(try openError(b) == nil, "one bad header copy is what the two-header protocol is for")
        b[131072 + 1000] ^= 1
        #expect(try openError(b) == .badChecksum(structure: "header at 65536", offset: 65536))
        var r = try await Samples.dynamic()
        for o in VHDXLayout.regionTableOffsets { r[Int(o) + 5000] ^= 0x80 }
        #expect(try openError(r) == .badChecksum(structure: "region table at 196608", offset: 196608))
    }

    @Test func overlappingRegionsAreRefused() async throws {
        var b = try await Samples.dynamic()
        try Samples.patchRegions(&b) { regions in
            let bat = regions.firstIndex { $0.guid == VHDXKnownGUID.batRegion }!
            regions[bat].fileOffset = 2 << 20  // onto the metadata region
        }
        #expect(try openError(b) == .regionOverlap("BAT region", "metadata region"))
        var l = try await Samples.dynamic()
        try Samples.patchHeaders(&l) { $0.logOffset = 2 << 20 }
        guard case .regionOverlap? = try openError(l) else { Issue.record("log over metadata accepted"); return }
    }

    @Test func batEntriesOutOfRangeOrOverlappingAreNamed() async throws {
        let good = try await Samples.dynamic()
        var far = good
        Samples.setBATEntry(&far, 3, 6 | (4096 << 20))  // 4 GiB: past the end
        #expect(try openError(far) == .batEntryOutOfBounds(index: 3, fileOffset: 4 << 30, fileSize: UInt64(good.count)))
        var dup = good
        Samples.setBATEntry(&dup, 7, Samples.batEntry(good, 0))
        #expect(try openError(dup) == .batEntriesOverlap(index: 7, other: 0))
        var intoLog = good
        Samples.setBATEntry(&intoLog, 3, 6 | (1 << 20))
        #expect(try openError(intoLog) == .regionOverlap("BAT entry 3 (offset 1048576)", "log"))
        var state = good
        Samples.setBATEntry(&state, 1, 5)
        #expect(try openError(state) == .batEntryInvalidState(index: 1, state: 5))
    }

    @Test func absurdSizesAndParametersAreInvalidFields() async throws {
        let cases: [(Int, UInt64, String)] = [
            (Samples.metadataItems + 8, 1 << 62, "VirtualDiskSize"),
            (Samples.metadataItems + 8, 1000, "VirtualDiskSize"),
            (Samples.metadataItems, 3 << 20, "BlockSize"),
            (Samples.metadataItems, 512 << 20, "BlockSize"),
        ]
        for (offset, value, field) in cases {
            var b = try await Samples.dynamic()
            if field == "BlockSize" { b.put32(UInt32(value), at: offset) } else { b.put64(value, at: offset) }
            let err = try openError(b)
            guard case let .invalidField(_, f, _)? = err, f == field else { Issue.record("\(field)=\(value): \(String(describing: err))"); continue }
        }
        var s = try await Samples.dynamic()
        s.put32(1000, at: Samples.metadataItems + 32)
        guard case .invalidField(_, "LogicalSectorSize", _)? = try openError(s) else { Issue.record("sector 1000 accepted"); return }
        var big = try await Samples.dynamic()
        big.put64(60 << 40, at: Samples.metadataItems + 8)  // valid size, but the BAT region is far too small
        guard case .invalidField("BAT region", "Length", _)? = try openError(big) else { Issue.record("huge disk with tiny BAT accepted"); return }
    }

    @Test func differencingDisksAreRefusedSayingSo() async throws {
        var b = try await Samples.dynamic()
        b.put32(2, at: Samples.metadataItems + 4)  // HasParent
        let err = try openError(b)
        guard case .unsupported? = err else { Issue.record("\(String(describing: err))"); return }
        #expect(err!.description.contains("differencing"))
    }

    @Test func corruptLogIsRefusedAndNotReplayed() async throws {
        var b = try await Samples.dynamic(close: false)  // log GUID set, entries present
        let h = try Samples.header(b, slot: 0).logGUID.isZero ? try Samples.header(b, slot: 1) : try Samples.header(b, slot: 0)
        #expect(!h.logGUID.isZero)
        // The newest entry's tail points at a sector holding no entry.
        var newest = 0
        for s in 0..<256 where b.matches("loge", at: (1 << 20) + s * 4096) && b.le64((1 << 20) + s * 4096 + 16) > b.le64((1 << 20) + newest * 4096 + 16) { newest = s }
        let e = (1 << 20) + newest * 4096
        b.put32(255 * 4096, at: e + 12)
        b.put32(CRC32C.vhdxChecksum(b, in: e..<(e + Int(b.le32(e + 8)))), at: e + 4)
        guard case .logCorrupt? = try openError(b) else { Issue.record("broken log tail accepted"); return }
    }
}

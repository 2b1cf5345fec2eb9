import Foundation
import Testing
@testable import VigilDisk

/// The small pieces: checksum, GUIDs, sizes, BAT arithmetic, log entry coding.
@Suite struct FormatUnitTests {
    @Test func crc32cMatchesTheCastagnoliCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)  // RFC 3720 B.4
        let data = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let split = data.withUnsafeBytes { b in CRC32C.update(CRC32C.update(0, UnsafeRawBufferPointer(rebasing: b[0..<333])), UnsafeRawBufferPointer(rebasing: b[333...])) }
        #expect(split == CRC32C.checksum(data))
    }

    @Test func guidsUseMixedEndianLayoutAndRoundTrip() {
        let g = VHDXKnownGUID.batRegion
        #expect(g.bytes == [0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08])
        #expect(g.description == "2DC27766-F623-4200-9D64-115E9BFD4A08")
        #expect(VHDXGUID(g.description) == g)
    }

    @Test func sizesParseWithBinarySuffixesAndRejectJunk() throws {
        #expect(try DiskSize.parse("10G") == 10 << 30)
        #expect(try DiskSize.parse("512M") == 512 << 20)
        #expect(try DiskSize.parse("1T") == 1 << 40)
        #expect(try DiskSize.parse("64KiB") == 64 << 10)
        #expect(try DiskSize.parse("4096") == 4096)
        for bad in ["", "G", "1.5G", "10Q", "-1G", "99999999999P"] {
            #expect(throws: DiskError.self, "\(bad)") { try DiskSize.parse(bad) }
        }
    }

    @Test func batInterleavesSectorBitmapEntriesByChunkRatio() {
        // 512-byte sectors, 32 MiB blocks: chunk ratio 2^23 * 512 / 2^25 = 128.
        let g = VHDXGeometry(virtualDiskSize: 10 << 30, blockSize: 32 << 20, logicalSectorSize: 512)
        #expect(g.chunkRatio == 128)
        #expect(g.dataBlocks == 320)
        #expect(g.batEntries == 320 + 2)
        #expect(g.batIndex(ofBlock: 127) == 127)
        #expect(g.isSectorBitmapEntry(128))
        #expect(g.batIndex(ofBlock: 128) == 129)
        #expect(g.batIndex(ofBlock: 256) == 258)
        let h = VHDXGeometry(virtualDiskSize: 1 << 20, blockSize: 1 << 20, logicalSectorSize: 4096)
        #expect(h.chunkRatio == 1 << 15)
        #expect(h.batEntries == 1)
    }

    @Test func logEntriesRoundTripIncludingAcrossTheLogEnd() throws {
        let guid = VHDXGUID.random()
        var rng = SeededRNG(seed: 4)
        let entry = VHDXLogEntry(sequenceNumber: 0x1_0000_0007, tail: 8192, logGUID: guid, flushedFileOffset: 5 << 20, lastFileOffset: 6 << 20,
                                 pages: [.init(fileOffset: 3 << 20, data: rng.bytes(4096)), .init(fileOffset: (3 << 20) + 4096, data: rng.bytes(4096))],
                                 zeros: [(fileOffset: 4 << 20, length: 8192)])
        let bytes = entry.encoded()
        #expect(bytes.count == 3 * 4096)
        var log = [UInt8](repeating: 0, count: 1 << 20)
        let start = 255  // last sector: the entry wraps to the log start
        log.replaceSubrange((start * 4096)..<(1 << 20), with: bytes[0..<4096])
        log.replaceSubrange(0..<8192, with: bytes[4096...])
        let decoded = try #require(VHDXLogEntry.decode(log: log, at: start, guid: guid))
        #expect(decoded.entry == entry)
        #expect(decoded.sectors == 3)
        #expect(VHDXLogEntry.decode(log: log, at: start, guid: .random()) == nil, "another log GUID's entry must not count")
        log[4096 + 100] ^= 1
        #expect(VHDXLogEntry.decode(log: log, at: start, guid: guid) == nil, "a torn entry must fail its checksum")
    }

    @Test func headerUpdateWritesTheOtherSlotWithNextSequence() throws {
        let io = MemoryIO([], writable: true)
        try VHDXCreator.write(to: io, options: .init(type: .dynamic, virtualSize: 1 << 30))
        var pair = try VHDXHeaderPair.read(from: io)
        #expect(pair.currentIndex == 1)
        let seq = pair.current.sequenceNumber
        try pair.update({ $0.logGUID = VHDXKnownGUID.page83Data }, io: io)
        let again = try VHDXHeaderPair.read(from: io)
        #expect(again.currentIndex == 0)
        #expect(again.current.sequenceNumber == seq + 1)
        #expect(again.current.logGUID == VHDXKnownGUID.page83Data)
    }

    @Test func convertRoundTripsRawThroughVHDXAndBack() async throws {
        let dir = TempDir()
        var data = patternedRaw(size: 9 << 20, seed: 21)
        data.replaceSubrange((4 << 20)..<(8 << 20), with: [UInt8](repeating: 0, count: 4 << 20))
        writeFile(dir.file("a.raw"), data)
        let r1 = try await DiskConverter.convert(from: dir.file("a.raw"), to: dir.file("b.vhdx"), format: .vhdx,
                                                 options: .init(type: .dynamic, virtualSize: 0, blockSize: 1 << 20, logicalSectorSize: 4096))
        #expect(r1.sourceFormat == .raw && r1.virtualSize == 9 << 20)
        #expect(r1.bytesWritten < UInt64(data.count), "all-zero chunks are skipped")
        let info = try DiskInfo.inspect(path: dir.file("b.vhdx"))
        #expect(info.type == .dynamic && info.logicalSectorSize == 4096 && info.blockSize == 1 << 20)
        #expect(DiskChecker.check(path: dir.file("b.vhdx")).ok)
        _ = try await DiskConverter.convert(from: dir.file("b.vhdx"), to: dir.file("c.raw"), format: .raw, options: .init(type: .dynamic, virtualSize: 0))
        #expect(readFile(dir.file("c.raw")) == data)
    }
}

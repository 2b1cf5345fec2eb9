/// One log entry (spec 2.3.1): a 64-byte header, 32-byte descriptors filling whole
/// 4 KiB sectors, then one 4 KiB data sector per data descriptor. A data descriptor
/// keeps the first 8 and last 4 bytes of its target sector; the data sector the 4084
/// between. The CRC-32C covers the whole entry.
struct VHDXLogEntry: Equatable {
    static let sectorSize = 4096
    var sequenceNumber: UInt64
    /// Log-relative byte offset of the oldest entry that replay must start from.
    var tail: UInt32
    var logGUID: VHDXGUID
    var flushedFileOffset: UInt64
    var lastFileOffset: UInt64
    /// Whole 4 KiB sectors to write at their file offsets.
    var pages: [Page] = []
    /// Ranges to zero.
    var zeros: [(fileOffset: UInt64, length: UInt64)] = []

    struct Page: Equatable {
        var fileOffset: UInt64
        var data: [UInt8]
    }

    static func == (a: VHDXLogEntry, b: VHDXLogEntry) -> Bool {
        a.sequenceNumber == b.sequenceNumber && a.tail == b.tail && a.logGUID == b.logGUID && a.pages == b.pages
            && a.zeros.map(\.fileOffset) == b.zeros.map(\.fileOffset) && a.zeros.map(\.length) == b.zeros.map(\.length)
    }

    static func descriptorSectors(_ descriptors: Int) -> Int { (descriptors + 2 + 127) / 128 }

    var sectorCount: Int { Self.descriptorSectors(pages.count + zeros.count) + pages.count }

    func encoded() -> [UInt8] {
        let ds = Self.descriptorSectors(pages.count + zeros.count)
        var b = [UInt8](repeating: 0, count: sectorCount * Self.sectorSize)
        b.putASCII("loge", at: 0)
        b.put32(UInt32(b.count), at: 8)
        b.put32(tail, at: 12)
        b.put64(sequenceNumber, at: 16)
        b.put32(UInt32(pages.count + zeros.count), at: 24)
        b.putGUID(logGUID, at: 32)
        b.put64(flushedFileOffset, at: 48)
        b.put64(lastFileOffset, at: 56)
        var d = 64
        for z in zeros {
            b.putASCII("zero", at: d)
            b.put64(z.length, at: d + 8)
            b.put64(z.fileOffset, at: d + 16)
            b.put64(sequenceNumber, at: d + 24)
            d += 32
        }
        for (i, p) in pages.enumerated() {
            precondition(p.data.count == Self.sectorSize && p.fileOffset % 4096 == 0)
            b.putASCII("desc", at: d)
            b.replaceSubrange((d + 4)..<(d + 8), with: p.data[4092..<4096])
            b.replaceSubrange((d + 8)..<(d + 16), with: p.data[0..<8])
            b.put64(p.fileOffset, at: d + 16)
            b.put64(sequenceNumber, at: d + 24)
            d += 32
            let s = (ds + i) * Self.sectorSize
            b.putASCII("data", at: s)
            b.put32(UInt32(sequenceNumber >> 32), at: s + 4)
            b.replaceSubrange((s + 8)..<(s + 4092), with: p.data[8..<4092])
            b.put32(UInt32(truncatingIfNeeded: sequenceNumber), at: s + 4092)
        }
        b.put32(CRC32C.vhdxChecksum(b, in: 0..<b.count), at: 4)
        return b
    }

    /// Decodes the entry starting at sector `start` of the circular `log` buffer, or
    /// returns nil if there is no valid entry for `guid` there.
    static func decode(log: [UInt8], at start: Int, guid: VHDXGUID) -> (entry: VHDXLogEntry, sectors: Int)? {
        let n = log.count / sectorSize
        guard n > 0, start < n else { return nil }
        let first = Array(log[(start * sectorSize)..<((start + 1) * sectorSize)])
        guard first.matches("loge", at: 0) else { return nil }
        let length = Int(first.le32(8))
        let count = Int(first.le32(24))
        guard length > 0, length % sectorSize == 0, length <= log.count, count <= length / 32 else { return nil }
        let sectors = length / sectorSize
        let ds = descriptorSectors(count)
        guard ds <= sectors else { return nil }
        var b: [UInt8]
        if start + sectors <= n {
            b = Array(log[(start * sectorSize)..<((start + sectors) * sectorSize)])
        } else {
            b = Array(log[(start * sectorSize)...]) + log[0..<((start + sectors - n) * sectorSize)]
        }
        guard b.le32(4) == CRC32C.vhdxChecksum(b, in: 0..<b.count) else { return nil }
        var e = VHDXLogEntry(sequenceNumber: b.le64(16), tail: b.le32(12), logGUID: b.guid(32),
                             flushedFileOffset: b.le64(48), lastFileOffset: b.le64(56))
        guard e.sequenceNumber > 0, e.logGUID == guid, e.tail % UInt32(sectorSize) == 0, Int(e.tail) < log.count else { return nil }
        var dataIndex = 0
        for i in 0..<count {
            let d = 64 + 32 * i
            guard b.le64(d + 24) == e.sequenceNumber, b.le64(d + 16) % UInt64(sectorSize) == 0 else { return nil }
            if b.matches("zero", at: d) {
                let len = b.le64(d + 8)
                guard len % UInt64(sectorSize) == 0 else { return nil }
                e.zeros.append((b.le64(d + 16), len))
            } else if b.matches("desc", at: d) {
                let s = (ds + dataIndex) * sectorSize
                guard s + sectorSize <= b.count, b.matches("data", at: s),
                      UInt64(b.le32(s + 4)) << 32 | UInt64(b.le32(s + 4092)) == e.sequenceNumber else { return nil }
                var page = Array(b[(d + 8)..<(d + 16)])
                page += b[(s + 8)..<(s + 4092)]
                page += b[(d + 4)..<(d + 8)]
                e.pages.append(Page(fileOffset: b.le64(d + 16), data: page))
                dataIndex += 1
            } else {
                return nil
            }
        }
        guard ds + dataIndex == sectors else { return nil }
        return (e, sectors)
    }
}

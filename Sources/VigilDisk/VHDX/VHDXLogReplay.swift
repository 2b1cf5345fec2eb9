/// Finding and replaying the active log sequence (spec 2.3.2-2.3.3): among the valid
/// entries carrying the header's log GUID, the one with the highest sequence number
/// is the head; replay runs from the head's tail through the head, in order.
struct VHDXLogReplay {
    /// 4 KiB pages to write, keyed by file offset; later entries win.
    var pages: [UInt64: [UInt8]] = [:]
    /// The file size after replay (at least the head's LastFileOffset, rounded to 1 MiB).
    var fileSize: UInt64
    var entries: Int
    var headSequence: UInt64
    /// Log-relative offset just after the head entry, where the next entry goes.
    var nextWriteOffset: UInt32

    static let maxLogLength: UInt64 = 256 * Size.MiB
    static let maxZeroBytes: UInt64 = 256 * Size.MiB

    /// Returns nil when the log holds no valid entry for the header's GUID.
    static func find(io: any DiskIO, header: VHDXHeader) throws(DiskError) -> VHDXLogReplay? {
        let fileSize = try io.size()
        let length = UInt64(header.logLength)
        if header.logGUID.isZero || length == 0 { return nil }
        guard length <= maxLogLength else { throw .unsupported("log of \(length) bytes (Vigil replays logs up to 256 MiB)") }
        guard header.logOffset <= fileSize, length <= fileSize - header.logOffset else {
            throw .truncated(structure: "log", needed: header.logOffset + length, fileSize: fileSize)
        }
        let log = try io.readExact(Int(length), at: header.logOffset, structure: "log")
        let n = Int(length) / VHDXLogEntry.sectorSize
        var valid: [Int: (entry: VHDXLogEntry, sectors: Int)] = [:]
        for s in 0..<n where log.matches("loge", at: s * VHDXLogEntry.sectorSize) {
            if let e = VHDXLogEntry.decode(log: log, at: s, guid: header.logGUID) { valid[s] = e }
        }
        guard let head = valid.max(by: { $0.value.entry.sequenceNumber < $1.value.entry.sequenceNumber }) else { return nil }
        // Walk from the head's tail to the head, each entry the next sequence number.
        var chain: [VHDXLogEntry] = []
        var pos = Int(head.value.entry.tail) / VHDXLogEntry.sectorSize
        while true {
            guard let e = valid[pos] else { throw .logCorrupt("the head entry's tail (sector \(pos)) is not a valid entry") }
            if let last = chain.last, e.entry.sequenceNumber != last.sequenceNumber &+ 1 {
                throw .logCorrupt("sequence breaks after \(last.sequenceNumber) at log sector \(pos)")
            }
            chain.append(e.entry)
            if pos == head.key { break }
            guard chain.count <= n else { throw .logCorrupt("the sequence from the tail never reaches the head") }
            pos = (pos + e.sectors) % n
        }
        let headEntry = head.value.entry
        guard headEntry.flushedFileOffset <= fileSize else {
            throw .logCorrupt("the log says the file had \(headEntry.flushedFileOffset) bytes, it has \(fileSize): the file was truncated")
        }
        guard headEntry.lastFileOffset <= fileSize + VHDXMetadata.maxVirtualDiskSize else {
            throw .logCorrupt("LastFileOffset \(headEntry.lastFileOffset) is absurd")
        }
        var newSize = fileSize
        if headEntry.lastFileOffset > fileSize { newSize = headEntry.lastFileOffset.roundedUp(to: Size.MiB) }
        let logRange = header.logOffset..<(header.logOffset + length)
        var r = VHDXLogReplay(fileSize: newSize, entries: chain.count, headSequence: headEntry.sequenceNumber,
                              nextWriteOffset: UInt32((head.key + head.value.sectors) % n * VHDXLogEntry.sectorSize))
        var zeroed: UInt64 = 0
        for e in chain {
            for z in e.zeros {
                zeroed += z.length
                guard zeroed <= maxZeroBytes else { throw .logCorrupt("zero descriptors cover more than 256 MiB") }
                try checkTarget(z.fileOffset, z.length, limit: newSize, log: logRange)
                var o = z.fileOffset
                while o < z.fileOffset + z.length {
                    r.pages[o] = [UInt8](repeating: 0, count: VHDXLogEntry.sectorSize)
                    o += UInt64(VHDXLogEntry.sectorSize)
                }
            }
            for p in e.pages {
                try checkTarget(p.fileOffset, UInt64(VHDXLogEntry.sectorSize), limit: newSize, log: logRange)
                r.pages[p.fileOffset] = p.data
            }
        }
        return r
    }

    /// A log entry may rewrite anything from the region tables on, except the log itself.
    private static func checkTarget(_ offset: UInt64, _ length: UInt64, limit: UInt64, log: Range<UInt64>) throws(DiskError) {
        guard offset >= VHDXLayout.regionTableOffsets[0], offset <= limit, length <= limit - offset else {
            throw .logCorrupt("an entry writes \(length) bytes at offset \(offset), outside the file's writable range")
        }
        if log.overlaps(offset..<(offset + length)) { throw .logCorrupt("an entry writes into the log itself at offset \(offset)") }
    }

    /// Writes the replayed pages into the file and makes them durable.
    func apply(to io: any DiskIO) throws(DiskError) {
        if try io.size() < fileSize { try io.setSize(fileSize) }
        for (offset, page) in pages.sorted(by: { $0.key < $1.key }) { try io.write(page, at: offset) }
        try io.sync()
    }
}

/// A read-only view of a file with a replayed log laid over it, so a dirty VHDX can be
/// inspected without writing to it.
final class OverlayIO: DiskIO {
    let base: any DiskIO
    let replay: VHDXLogReplay
    var isWritable: Bool { false }

    init(base: any DiskIO, replay: VHDXLogReplay) {
        self.base = base
        self.replay = replay
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskError) -> Int {
        let size = replay.fileSize
        guard offset < size else { return 0 }
        let n = Int(min(UInt64(buffer.count), size - offset))
        let got = try base.read(into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]), at: offset)
        if got < n { memset(buffer.baseAddress! + got, 0, n - got) }
        let sector = UInt64(VHDXLogEntry.sectorSize)
        var page = offset / sector * sector
        while page < offset + UInt64(n) {
            if let data = replay.pages[page] {
                let from = max(page, offset), to = min(page + sector, offset + UInt64(n))
                data.withUnsafeBytes { src in
                    (buffer.baseAddress! + Int(from - offset)).copyMemory(from: src.baseAddress! + Int(from - page), byteCount: Int(to - from))
                }
            }
            page += sector
        }
        return n
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskError) { throw .readOnly }
    func sync() throws(DiskError) {}
    func size() throws(DiskError) -> UInt64 { replay.fileSize }
    func setSize(_ size: UInt64) throws(DiskError) { throw .readOnly }
}

#if canImport(Glibc)
import Glibc
#endif

/// A VHDX disk (fixed or dynamic) open for I/O. Opening replays a non-empty log;
/// payload writes go straight to their blocks; BAT and size changes go through the log.
/// `close()` leaves the file clean (empty log), so other tools can open it read-only.
public actor VHDXDisk: Disk {
    public nonisolated let format = DiskFormat.vhdx
    let io: any DiskIO
    var image: VHDXImage
    var log: VHDXLogWriter?
    var allocationEnd: UInt64
    var dirty = false
    var isClosed = false
    /// Set when a write, flush or grow failed midway: the in-memory BAT may be ahead of
    /// the file, so the disk refuses further use; reopening replays the log.
    var failed: DiskError?

    /// Opens the VHDX at `path`. Read-write opens replay a pending log; read-only opens
    /// refuse one (`.logNeedsReplay`) unless `replayInMemory` is set.
    public static func open(path: String, writable: Bool = true, replayInMemory: Bool = false) throws(DiskError) -> VHDXDisk {
        try VHDXDisk(io: FileIO(path: path, writable: writable), replayInMemory: replayInMemory)
    }

    /// Opens the VHDX in `io`. Nothing is written unless every structure checks out.
    public init(io: any DiskIO, replayInMemory: Bool = false) throws(DiskError) {
        let image = try VHDXImage.load(from: io)
        if let first = image.batErrors.first { throw first }
        self.io = io
        self.image = image
        allocationEnd = image.allocationEnd
        if let replay = image.replay {
            if io.isWritable {
                try replay.apply(to: io)
                self.image.replay = nil
                try self.image.headers.update({ $0.logGUID = .zero }, io: io)
            } else if !replayInMemory {
                throw .logNeedsReplay
            }
        }
    }

    public var metadata: VHDXMetadata { image.metadata }
    public var geometry: VHDXGeometry { image.geometry }
    public func size() -> UInt64 { image.metadata.virtualDiskSize }

    private var readView: any DiskIO {
        image.replay.map { OverlayIO(base: io, replay: $0) } ?? io
    }

    /// Walks `[offset, offset + count)` block by block: (block index, offset in block, offset in request, length).
    private func segments(_ offset: UInt64, _ count: Int) -> [(block: UInt64, inBlock: UInt64, at: Int, length: Int)] {
        let bs = image.geometry.blockSize
        var out: [(UInt64, UInt64, Int, Int)] = []
        var pos = offset, done = 0
        while done < count {
            let block = pos / bs, inBlock = pos % bs
            let n = Int(min(UInt64(count - done), bs - inBlock))
            out.append((block, inBlock, done, n))
            pos += UInt64(n)
            done += n
        }
        return out
    }

    public func read(at offset: UInt64, count: Int) throws(DiskError) -> [UInt8] {
        guard !isClosed else { throw .closed }
        try checkRange(offset, count, size: image.metadata.virtualDiskSize)
        let view = readView
        let g = image.geometry
        let segs = segments(offset, count)
        return try typed {
            try [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
                for s in segs {
                    let dst = UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buf)[s.at..<(s.at + s.length)])
                    let e = VHDXBATEntry(raw: image.bat[g.batIndex(ofBlock: s.block)])
                    // Not present, zero, unmapped, undefined: zeros. Past the end of the file: zeros.
                    let got = e.stateBits == 6 ? try view.read(into: dst, at: e.fileOffset + s.inBlock) : 0
                    if got < s.length { memset(dst.baseAddress! + got, 0, s.length - got) }
                }
                initialized = count
            }
        }
    }

    public func write(_ data: [UInt8], at offset: UInt64) throws(DiskError) {
        try guarded { () throws(DiskError) in try writeUnguarded(data, at: offset) }
    }

    public func flush() throws(DiskError) {
        try guarded { () throws(DiskError) in try flushUnguarded() }
    }

    public func grow(to newSize: UInt64) throws(DiskError) {
        try guarded { () throws(DiskError) in try growUnguarded(to: newSize) }
    }

    private func guarded(_ body: () throws(DiskError) -> Void) throws(DiskError) {
        guard !isClosed else { throw .closed }
        if let failed { throw failed }
        do throws(DiskError) { try body() } catch {
            if case .io = error { failed = error }
            throw error
        }
    }

    private func writeUnguarded(_ data: [UInt8], at offset: UInt64) throws(DiskError) {
        guard io.isWritable else { throw .readOnly }
        try checkRange(offset, data.count, size: image.metadata.virtualDiskSize)
        try beginSession()
        let g = image.geometry
        var changed: Set<Int> = []
        try typed { try data.withUnsafeBytes { src in
            for s in segments(offset, data.count) {
                let index = g.batIndex(ofBlock: s.block)
                var e = VHDXBATEntry(raw: image.bat[index])
                if e.stateBits != 6 {
                    e = try allocateBlock()
                    image.bat[index] = e.raw
                    changed.insert(index)
                }
                try io.write(UnsafeRawBufferPointer(rebasing: src[s.at..<(s.at + s.length)]), at: e.fileOffset + s.inBlock)
            }
        } }
        dirty = true
        if !changed.isEmpty { try commitBAT(indices: changed) }
    }

    private func flushUnguarded() throws(DiskError) {
        guard dirty else { return }
        let size = try io.size()
        try io.sync()
        log?.markSynced(fileSize: size)
        dirty = false
    }

    /// Grows the virtual disk. Fixed disks get their new blocks allocated; the size
    /// change is one log entry, written after any BAT changes it depends on.
    private func growUnguarded(to newSize: UInt64) throws(DiskError) {
        guard io.isWritable else { throw .readOnly }
        let old = image.metadata
        guard newSize >= old.virtualDiskSize else { throw .invalidArgument("cannot shrink a disk (from \(old.virtualDiskSize) to \(newSize) bytes)") }
        if newSize == old.virtualDiskSize { return }
        var next = old
        next.virtualDiskSize = newSize
        try next.validate()
        let ng = next.geometry
        guard ng.batEntries * 8 <= UInt64(image.regions.table.bat.length) else {
            throw .unsupported("growing to \(newSize) bytes needs a larger BAT region than this file has (\(image.regions.table.bat.length) bytes)")
        }
        try beginSession()
        let og = image.geometry
        // Zero the tail of the old last block so the new range reads as zeros.
        let tailStart = old.virtualDiskSize, tailEnd = min(og.dataBlocks * og.blockSize, newSize)
        if tailEnd > tailStart {
            let e = VHDXBATEntry(raw: image.bat[og.batIndex(ofBlock: tailStart / og.blockSize)])
            if e.stateBits == 6 {
                try io.write([UInt8](repeating: 0, count: Int(tailEnd - tailStart)), at: e.fileOffset + tailStart % og.blockSize)
            }
        }
        var changed: Set<Int> = []
        image.bat += [UInt64](repeating: 0, count: Int(ng.batEntries) - image.bat.count)
        for block in og.dataBlocks..<ng.dataBlocks {
            let index = ng.batIndex(ofBlock: block)
            if old.leaveBlocksAllocated {
                image.bat[index] = try allocateBlock().raw
            }
            changed.insert(index)
        }
        // Grown BAT entries beyond the old size are invisible until the size changes.
        try commitBAT(indices: changed)
        let sizeOffset = old.virtualDiskSizeOffset
        let pageOffset = sizeOffset / 4096 * 4096
        var page = try io.readExact(4096, at: pageOffset, structure: "metadata page")
        page.put64(newSize, at: Int(sizeOffset - pageOffset))
        try log!.commit(pages: [.init(fileOffset: pageOffset, data: page)], fileSize: try io.size(), io: io)
        image.metadata = next
        dirty = true
        try flushUnguarded()
    }

    public func close() throws(DiskError) {
        guard !isClosed else { return }
        if let failed { isClosed = true; throw failed }
        if log != nil {
            try io.sync()
            try image.headers.update({ $0.logGUID = .zero }, io: io)
            log = nil
        }
        isClosed = true
    }

    /// On the first change after open: new file and data write GUIDs and a fresh log
    /// GUID in the header, durable before anything else is written.
    private func beginSession() throws(DiskError) {
        guard log == nil else { return }
        let logGUID = VHDXGUID.random()
        try image.headers.update({
            $0.fileWriteGUID = .random()
            $0.dataWriteGUID = .random()
            $0.logGUID = logGUID
        }, io: io)
        log = VHDXLogWriter(header: image.headers.current, syncedFileSize: try io.size())
    }

    /// Extends the file by one block at the 1 MiB-aligned end; the block reads as zeros.
    private func allocateBlock() throws(DiskError) -> VHDXBATEntry {
        let offset = allocationEnd
        allocationEnd = offset + image.geometry.blockSize
        try io.setSize(allocationEnd)
        return VHDXBATEntry(state: .fullyPresent, fileOffset: offset)
    }

    /// Logs the 4 KiB BAT pages holding `indices`, then writes them in place.
    private func commitBAT(indices: Set<Int>) throws(DiskError) {
        let batOffset = image.regions.table.bat.fileOffset
        let pageIndices = Set(indices.map { $0 / 512 }).sorted()
        var pages: [VHDXLogEntry.Page] = []
        for p in pageIndices {
            var data = [UInt8](repeating: 0, count: 4096)
            for i in 0..<512 where p * 512 + i < image.bat.count { data.put64(image.bat[p * 512 + i], at: i * 8) }
            pages.append(.init(fileOffset: batOffset + UInt64(p) * 4096, data: data))
        }
        let size = try io.size()
        let per = log!.maxPagesPerEntry
        for start in stride(from: 0, to: pages.count, by: per) {
            try log!.commit(pages: Array(pages[start..<min(start + per, pages.count)]), fileSize: size, io: io)
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

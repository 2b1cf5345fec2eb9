/// A VHDX file's structures as parsed and checked from disk, read-only: the file
/// identifier, headers, the log (replayed in memory if it holds entries), region
/// table, metadata and BAT. Parsing never writes; `problems` lists what is wrong
/// beyond the first fatal error (which is thrown).
struct VHDXImage: Sendable {
    var creator: String
    var headers: VHDXHeaderPair
    var regions: VHDXRegionTables
    var metadata: VHDXMetadata
    var bat: [UInt64]
    /// The replay still to be written to the file, if the log held entries.
    var replay: VHDXLogReplay?
    /// File size as seen after replay.
    var fileSize: UInt64
    /// Damage the format tolerates by design: one bad header or region table copy.
    var redundancyProblems: [DiskError]
    /// BAT entries in a bad state, out of bounds or overlapping: the image cannot be used.
    var batErrors: [DiskError] = []

    var problems: [DiskError] { redundancyProblems + batErrors }

    var geometry: VHDXGeometry { metadata.geometry }
    var logRange: Range<UInt64> {
        let h = headers.current
        return h.logOffset..<(h.logOffset + UInt64(h.logLength))
    }

    static func load(from io: any DiskIO) throws(DiskError) -> VHDXImage {
        let creator = try VHDXFileIdentifier.check(io)
        let headers = try VHDXHeaderPair.read(from: io)
        let h = headers.current
        let size = try io.size()
        guard h.logOffset <= size, UInt64(h.logLength) <= size - h.logOffset else {
            throw .truncated(structure: "log", needed: h.logOffset &+ UInt64(h.logLength), fileSize: size)
        }
        let replay = try VHDXLogReplay.find(io: io, header: h)
        let view: any DiskIO = replay.map { OverlayIO(base: io, replay: $0) } ?? io
        let fileSize = try view.size()
        let logRange = h.logOffset..<(h.logOffset + UInt64(h.logLength))
        let regions = try VHDXRegionTables.read(from: view, log: logRange)
        let metadata = try VHDXMetadata.read(from: view, region: regions.table.metadata)
        let g = metadata.geometry
        let batRegion = regions.table.bat
        guard g.batEntries * 8 <= UInt64(batRegion.length) else {
            throw .invalidField(structure: "BAT region", field: "Length",
                                value: "\(batRegion.length) bytes, but \(g.batEntries) entries need \(g.batEntries * 8)")
        }
        let raw = try view.readExact(Int(g.batEntries * 8), at: batRegion.fileOffset, structure: "BAT")
        let bat = raw.withUnsafeBytes { b in (0..<Int(g.batEntries)).map { b.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self).littleEndian } }
        var image = VHDXImage(creator: creator, headers: headers, regions: regions, metadata: metadata, bat: bat,
                              replay: replay, fileSize: fileSize, redundancyProblems: headers.problems + regions.problems)
        image.batErrors = image.batProblems()
        return image
    }

    /// The fixed structures of the file with names, for overlap checks.
    var structures: [(String, Range<UInt64>)] {
        [("header section", 0..<VHDXLayout.headerSectionEnd), ("log", logRange)]
            + regions.table.entries.map { (VHDXRegionTable.regionName($0.guid), $0.fileOffset..<$0.end) }
    }

    /// File bytes payload block `index` (a BAT index) must have: a whole block, except
    /// a last block that may stop at the end of the virtual disk.
    func requiredLength(batIndex index: Int) -> UInt64 {
        let g = geometry
        if g.isSectorBitmapEntry(index) { return Size.MiB }
        let block = UInt64(index) - UInt64(index) / (g.chunkRatio + 1)
        return min(g.blockSize, g.virtualDiskSize - block * g.blockSize)
    }

    /// Every BAT entry: a known state, in bounds, clear of the file's structures and of each other.
    func batProblems() -> [DiskError] {
        let g = geometry
        var problems: [DiskError] = []
        var spans: [(start: UInt64, end: UInt64, index: Int)] = []
        for (i, raw) in bat.enumerated() {
            let e = VHDXBATEntry(raw: raw)
            let bitmap = g.isSectorBitmapEntry(i)
            let allowed: [UInt8] = bitmap ? [0, 6] : [0, 1, 2, 3, 6]
            guard allowed.contains(e.stateBits) else {
                problems.append(.batEntryInvalidState(index: i, state: e.stateBits))
                continue
            }
            guard e.stateBits == 6 else { continue }
            let start = e.fileOffset, len = bitmap ? Size.MiB : requiredLength(batIndex: i)
            guard start >= VHDXLayout.headerSectionEnd, start <= fileSize, len <= fileSize - start else {
                problems.append(.batEntryOutOfBounds(index: i, fileOffset: start, fileSize: fileSize))
                continue
            }
            let span = start..<(start + len)
            if let s = structures.first(where: { $0.1.overlaps(start..<(start + len)) }) {
                problems.append(.regionOverlap("BAT entry \(i) (offset \(start))", s.0))
                continue
            }
            spans.append((span.lowerBound, span.upperBound, i))
        }
        spans.sort { $0.start < $1.start }
        var maxEnd: (UInt64, Int)?
        for s in spans {
            if let (end, other) = maxEnd, s.start < end { problems.append(.batEntriesOverlap(index: s.index, other: other)) }
            if maxEnd == nil || s.end > maxEnd!.0 { maxEnd = (s.end, s.index) }
        }
        return problems
    }

    /// First offset past every structure and block, rounded to 1 MiB: where new blocks go.
    var allocationEnd: UInt64 {
        var end = fileSize
        for s in structures { end = max(end, s.1.upperBound) }
        for (i, raw) in bat.enumerated() where raw & 7 == 6 {
            end = max(end, VHDXBATEntry(raw: raw).fileOffset + requiredLength(batIndex: i))
        }
        return end.roundedUp(to: Size.MiB)
    }
}

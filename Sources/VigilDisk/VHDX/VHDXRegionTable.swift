/// One region table entry (spec 2.2.3.2): a GUID-named range of the file.
public struct VHDXRegion: Equatable, Sendable {
    public var guid: VHDXGUID
    public var fileOffset: UInt64
    public var length: UInt32
    public var required: Bool

    var end: UInt64 { fileOffset + UInt64(length) }
}

/// The region table (spec 2.2.3): where the BAT and metadata regions live. Two identical
/// copies; a reader uses the first valid one.
struct VHDXRegionTable: Equatable, Sendable {
    static let maxEntries = 2047
    var entries: [VHDXRegion]

    var bat: VHDXRegion { entries.first { $0.guid == VHDXKnownGUID.batRegion }! }
    var metadata: VHDXRegion { entries.first { $0.guid == VHDXKnownGUID.metadataRegion }! }

    func encoded() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: VHDXLayout.regionTableSize)
        b.putASCII("regi", at: 0)
        b.put32(UInt32(entries.count), at: 8)
        for (i, e) in entries.enumerated() {
            let o = 16 + 32 * i
            b.putGUID(e.guid, at: o)
            b.put64(e.fileOffset, at: o + 16)
            b.put32(e.length, at: o + 24)
            b.put32(e.required ? 1 : 0, at: o + 28)
        }
        b.put32(CRC32C.vhdxChecksum(b, in: 0..<b.count), at: 4)
        return b
    }

    /// Decodes one copy and checks it against the file: signature, CRC, entry count,
    /// alignment, bounds, known required regions, and no overlaps (with each other,
    /// the header section, or the log).
    static func decode(_ b: [UInt8], offset: UInt64, fileSize: UInt64, log: Range<UInt64>) throws(DiskError) -> VHDXRegionTable {
        let name = "region table at \(offset)"
        guard b.matches("regi", at: 0) else { throw .badSignature(structure: name, offset: offset) }
        guard b.le32(4) == CRC32C.vhdxChecksum(b, in: 0..<VHDXLayout.regionTableSize) else {
            throw .badChecksum(structure: name, offset: offset)
        }
        let count = b.le32(8)
        guard count <= UInt32(maxEntries) else { throw .invalidField(structure: name, field: "EntryCount", value: "\(count) (at most \(maxEntries))") }
        var entries: [VHDXRegion] = []
        for i in 0..<Int(count) {
            let o = 16 + 32 * i
            let e = VHDXRegion(guid: b.guid(o), fileOffset: b.le64(o + 16), length: b.le32(o + 24), required: b.le32(o + 28) & 1 != 0)
            let what = "region \(e.guid)"
            guard e.fileOffset % Size.MiB == 0, e.fileOffset >= Size.MiB else {
                throw .invalidField(structure: name, field: "\(what) FileOffset", value: "\(e.fileOffset) (must be a multiple of 1 MiB, at least 1 MiB)")
            }
            guard e.length > 0, UInt64(e.length) % Size.MiB == 0 else {
                throw .invalidField(structure: name, field: "\(what) Length", value: "\(e.length) (must be a positive multiple of 1 MiB)")
            }
            guard e.fileOffset <= fileSize, UInt64(e.length) <= fileSize - e.fileOffset else {
                throw .truncated(structure: what, needed: e.fileOffset &+ UInt64(e.length), fileSize: fileSize)
            }
            let known = e.guid == VHDXKnownGUID.batRegion || e.guid == VHDXKnownGUID.metadataRegion
            if !known && e.required { throw .unsupported("required region \(e.guid) is unknown to Vigil") }
            if entries.contains(where: { $0.guid == e.guid }) {
                throw .invalidField(structure: name, field: "entries", value: "region \(e.guid) listed twice")
            }
            entries.append(e)
        }
        let table = VHDXRegionTable(entries: entries)
        guard entries.contains(where: { $0.guid == VHDXKnownGUID.batRegion }) else { throw .missing("BAT region") }
        guard entries.contains(where: { $0.guid == VHDXKnownGUID.metadataRegion }) else { throw .missing("metadata region") }
        var spans: [(String, Range<UInt64>)] = entries.map { (regionName($0.guid), $0.fileOffset..<$0.end) }
        if !log.isEmpty { spans.append(("log", log)) }
        for i in spans.indices {
            for j in spans.indices where j > i && spans[i].1.overlaps(spans[j].1) {
                throw .regionOverlap(spans[i].0, spans[j].0)
            }
        }
        return table
    }

    static func regionName(_ g: VHDXGUID) -> String {
        g == VHDXKnownGUID.batRegion ? "BAT region" : g == VHDXKnownGUID.metadataRegion ? "metadata region" : "region \(g)"
    }
}

/// Both region table copies as read from a file.
struct VHDXRegionTables {
    var table: VHDXRegionTable
    var problems: [DiskError]

    static func read(from io: any DiskIO, log: Range<UInt64>) throws(DiskError) -> VHDXRegionTables {
        let size = try io.size()
        var first: VHDXRegionTable?
        var problems: [DiskError] = []
        for off in VHDXLayout.regionTableOffsets {
            let raw = try io.readExact(VHDXLayout.regionTableSize, at: off, structure: "region table at \(off)")
            do throws(DiskError) {
                let t = try VHDXRegionTable.decode(raw, offset: off, fileSize: size, log: log)
                if first == nil { first = t } else if first != t {
                    problems.append(.invalidField(structure: "region tables", field: "entries", value: "the two copies differ"))
                }
            } catch {
                problems.append(error)
            }
        }
        guard let table = first else { throw problems[0] }
        return VHDXRegionTables(table: table, problems: problems)
    }
}

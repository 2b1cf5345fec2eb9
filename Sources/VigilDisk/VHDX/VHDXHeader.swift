/// The fixed layout at the start of every VHDX file (spec 2.2): the file identifier,
/// two headers and two region tables, each in its own 64 KiB slot.
enum VHDXLayout {
    static let fileIdentifierOffset: UInt64 = 0
    static let headerOffsets: [UInt64] = [64 * Size.KiB, 128 * Size.KiB]
    static let regionTableOffsets: [UInt64] = [192 * Size.KiB, 256 * Size.KiB]
    static let headerSize = 4096
    static let regionTableSize = 64 * 1024
    /// Everything below this offset is the fixed header section.
    static let headerSectionEnd: UInt64 = Size.MiB
    static let fileSignature = "vhdxfile"
}

/// One of the two VHDX headers (spec 2.2.2). The current header is the valid one with
/// the larger sequence number; an update writes the other slot with sequence + 1.
public struct VHDXHeader: Equatable, Sendable {
    public var sequenceNumber: UInt64
    public var fileWriteGUID: VHDXGUID
    public var dataWriteGUID: VHDXGUID
    /// Zero when the log is empty; otherwise only log entries carrying this GUID count.
    public var logGUID: VHDXGUID
    public var logVersion: UInt16 = 0
    public var version: UInt16 = 1
    public var logLength: UInt32
    public var logOffset: UInt64

    func encoded() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: VHDXLayout.headerSize)
        b.putASCII("head", at: 0)
        b.put64(sequenceNumber, at: 8)
        b.putGUID(fileWriteGUID, at: 16)
        b.putGUID(dataWriteGUID, at: 32)
        b.putGUID(logGUID, at: 48)
        b.put16(logVersion, at: 64)
        b.put16(version, at: 66)
        b.put32(logLength, at: 68)
        b.put64(logOffset, at: 72)
        b.put32(CRC32C.vhdxChecksum(b, in: 0..<b.count), at: 4)
        return b
    }

    /// Decodes and validates one header slot read from `offset`.
    static func decode(_ b: [UInt8], offset: UInt64) throws(DiskError) -> VHDXHeader {
        let name = "header at \(offset)"
        guard b.matches("head", at: 0) else { throw .badSignature(structure: name, offset: offset) }
        guard b.le32(4) == CRC32C.vhdxChecksum(b, in: 0..<VHDXLayout.headerSize) else {
            throw .badChecksum(structure: name, offset: offset)
        }
        let h = VHDXHeader(sequenceNumber: b.le64(8), fileWriteGUID: b.guid(16), dataWriteGUID: b.guid(32),
                           logGUID: b.guid(48), logVersion: b.le16(64), version: b.le16(66),
                           logLength: b.le32(68), logOffset: b.le64(72))
        guard h.version == 1 else { throw .invalidField(structure: name, field: "Version", value: "\(h.version) (expected 1)") }
        guard h.logVersion == 0 else { throw .invalidField(structure: name, field: "LogVersion", value: "\(h.logVersion) (expected 0)") }
        guard h.logOffset % Size.MiB == 0, h.logOffset >= Size.MiB else {
            throw .invalidField(structure: name, field: "LogOffset", value: "\(h.logOffset) (must be a multiple of 1 MiB, at least 1 MiB)")
        }
        guard UInt64(h.logLength) % Size.MiB == 0 else {
            throw .invalidField(structure: name, field: "LogLength", value: "\(h.logLength) (must be a multiple of 1 MiB)")
        }
        return h
    }
}

/// The two header slots as read from a file, and which is current.
struct VHDXHeaderPair: Sendable {
    var headers: [VHDXHeader?]
    var problems: [DiskError]
    var currentIndex: Int

    var current: VHDXHeader { headers[currentIndex]! }

    static func read(from io: any DiskIO) throws(DiskError) -> VHDXHeaderPair {
        var headers: [VHDXHeader?] = []
        var problems: [DiskError] = []
        for off in VHDXLayout.headerOffsets {
            let raw = try io.readExact(VHDXLayout.headerSize, at: off, structure: "header at \(off)")
            do throws(DiskError) {
                headers.append(try VHDXHeader.decode(raw, offset: off))
            } catch {
                headers.append(nil)
                problems.append(error)
            }
        }
        switch (headers[0], headers[1]) {
        case (nil, nil):
            throw problems[0]
        case (.some, nil):
            return VHDXHeaderPair(headers: headers, problems: problems, currentIndex: 0)
        case (nil, .some):
            return VHDXHeaderPair(headers: headers, problems: problems, currentIndex: 1)
        case let (.some(a), .some(b)):
            if a.sequenceNumber == b.sequenceNumber && a != b {
                throw .invalidField(structure: "headers", field: "SequenceNumber",
                                    value: "both headers are valid with sequence \(a.sequenceNumber) but differ")
            }
            return VHDXHeaderPair(headers: headers, problems: problems, currentIndex: b.sequenceNumber > a.sequenceNumber ? 1 : 0)
        }
    }

    /// The update protocol (spec 2.2.2.1): write `next` with sequence + 1 into the
    /// non-current slot and make it durable; it becomes current.
    mutating func update(_ change: (inout VHDXHeader) -> Void, io: any DiskIO) throws(DiskError) {
        var next = current
        change(&next)
        next.sequenceNumber = current.sequenceNumber &+ 1
        let slot = 1 - currentIndex
        try io.write(next.encoded(), at: VHDXLayout.headerOffsets[slot])
        try io.sync()
        headers[slot] = next
        currentIndex = slot
    }
}

/// The file type identifier (spec 2.2.1) in the first 64 KiB.
enum VHDXFileIdentifier {
    static func encoded(creator: String) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: 64 * 1024)
        b.putASCII(VHDXLayout.fileSignature, at: 0)
        for (i, u) in creator.utf16.prefix(255).enumerated() { b.put16(u, at: 8 + 2 * i) }
        return b
    }

    static func check(_ io: any DiskIO) throws(DiskError) -> String {
        let size = try io.size()
        let head = try io.readZeroFilled(520, at: 0)
        guard head.matches(VHDXLayout.fileSignature, at: 0) else { throw .notVHDX(found: head.ascii(0, 8)) }
        guard size >= VHDXLayout.headerSectionEnd else {
            throw .truncated(structure: "VHDX header section", needed: VHDXLayout.headerSectionEnd, fileSize: size)
        }
        var units: [UInt16] = []
        for i in 0..<256 {
            let u = head.le16(8 + 2 * i)
            if u == 0 { break }
            units.append(u)
        }
        return String(decoding: units, as: UTF16.self)
    }
}

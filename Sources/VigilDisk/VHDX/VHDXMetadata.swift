/// The metadata region (spec 2.6): file parameters, virtual disk size, page-83 id,
/// logical and physical sector sizes. Differencing disks (HasParent) are refused.
public struct VHDXMetadata: Equatable, Sendable {
    public var blockSize: UInt32
    public var leaveBlocksAllocated: Bool
    public var hasParent: Bool
    public var virtualDiskSize: UInt64
    public var page83: VHDXGUID
    public var logicalSectorSize: UInt32
    public var physicalSectorSize: UInt32
    /// File offset of the 8-byte virtual disk size item (updated by `grow`).
    var virtualDiskSizeOffset: UInt64 = 0

    static let tableSize = 64 * 1024
    static let maxVirtualDiskSize: UInt64 = 64 * Size.TiB

    /// The table plus items, to be written at the start of the metadata region.
    func encoded() -> [UInt8] {
        var b = [UInt8](repeating: 0, count: Self.tableSize + 4096)
        b.putASCII("metadata", at: 0)
        let items: [(VHDXGUID, UInt32, UInt32)] = [  // guid, length, flags (1 user, 2 virtual disk, 4 required)
            (VHDXKnownGUID.fileParameters, 8, 4),
            (VHDXKnownGUID.virtualDiskSize, 8, 6),
            (VHDXKnownGUID.page83Data, 16, 6),
            (VHDXKnownGUID.logicalSectorSize, 4, 6),
            (VHDXKnownGUID.physicalSectorSize, 4, 6),
        ]
        b.put16(UInt16(items.count), at: 10)
        var dataOffset = UInt32(Self.tableSize)
        for (i, (g, len, flags)) in items.enumerated() {
            let o = 32 + 32 * i
            b.putGUID(g, at: o)
            b.put32(dataOffset, at: o + 16)
            b.put32(len, at: o + 20)
            b.put32(flags, at: o + 24)
            let d = Int(dataOffset)
            switch i {
            case 0:
                b.put32(blockSize, at: d)
                b.put32((leaveBlocksAllocated ? 1 : 0) | (hasParent ? 2 : 0), at: d + 4)
            case 1: b.put64(virtualDiskSize, at: d)
            case 2: b.putGUID(page83, at: d)
            case 3: b.put32(logicalSectorSize, at: d)
            default: b.put32(physicalSectorSize, at: d)
            }
            dataOffset += len
        }
        return b
    }

    /// Offset of the virtual disk size item within `encoded()`.
    static let encodedVirtualDiskSizeOffset: UInt64 = UInt64(tableSize) + 8

    static func read(from io: any DiskIO, region: VHDXRegion) throws(DiskError) -> VHDXMetadata {
        let name = "metadata table"
        let table = try io.readExact(tableSize, at: region.fileOffset, structure: name)
        guard table.matches("metadata", at: 0) else { throw .badSignature(structure: name, offset: region.fileOffset) }
        let count = Int(table.le16(10))
        guard count <= 2047 else { throw .invalidField(structure: name, field: "EntryCount", value: "\(count) (at most 2047)") }
        var items: [VHDXGUID: [UInt8]] = [:]
        var offsets: [VHDXGUID: UInt64] = [:]
        var used: [(VHDXGUID, Range<UInt64>)] = []
        for i in 0..<count {
            let o = 32 + 32 * i
            let g = table.guid(o)
            let off = UInt64(table.le32(o + 16)), len = UInt64(table.le32(o + 20)), flags = table.le32(o + 24)
            let isUser = flags & 1 != 0, isRequired = flags & 4 != 0
            if len == 0 { continue }
            guard off >= UInt64(tableSize), len <= Size.MiB, off + len <= UInt64(region.length) else {
                throw .invalidField(structure: name, field: "item \(g) location", value: "offset \(off) length \(len) outside the metadata region")
            }
            if items[g] != nil && !isUser { throw .invalidField(structure: name, field: "entries", value: "item \(g) listed twice") }
            if let clash = used.first(where: { $0.1.overlaps(off..<(off + len)) }) {
                throw .regionOverlap("metadata item \(g)", "metadata item \(clash.0)")
            }
            used.append((g, off..<(off + len)))
            if isUser { continue }
            let known = [VHDXKnownGUID.fileParameters, VHDXKnownGUID.virtualDiskSize, VHDXKnownGUID.page83Data,
                         VHDXKnownGUID.logicalSectorSize, VHDXKnownGUID.physicalSectorSize, VHDXKnownGUID.parentLocator]
            if !known.contains(g) {
                if isRequired { throw .unsupported("required metadata item \(g) is unknown to Vigil") }
                continue
            }
            items[g] = try io.readExact(Int(len), at: region.fileOffset + off, structure: "metadata item \(g)")
            offsets[g] = region.fileOffset + off
        }
        func item(_ g: VHDXGUID, _ what: String, atLeast n: Int) throws(DiskError) -> [UInt8] {
            guard let v = items[g] else { throw .missing("metadata item \(what)") }
            guard v.count >= n else { throw .invalidField(structure: name, field: what, value: "length \(v.count), expected \(n)") }
            return v
        }
        let params = try item(VHDXKnownGUID.fileParameters, "file parameters", atLeast: 8)
        let md = VHDXMetadata(
            blockSize: params.le32(0),
            leaveBlocksAllocated: params.le32(4) & 1 != 0,
            hasParent: params.le32(4) & 2 != 0,
            virtualDiskSize: try item(VHDXKnownGUID.virtualDiskSize, "virtual disk size", atLeast: 8).le64(0),
            page83: try item(VHDXKnownGUID.page83Data, "page 83 data", atLeast: 16).guid(0),
            logicalSectorSize: try item(VHDXKnownGUID.logicalSectorSize, "logical sector size", atLeast: 4).le32(0),
            physicalSectorSize: try item(VHDXKnownGUID.physicalSectorSize, "physical sector size", atLeast: 4).le32(0),
            virtualDiskSizeOffset: offsets[VHDXKnownGUID.virtualDiskSize]!)
        try md.validate()
        return md
    }

    func validate() throws(DiskError) {
        let name = "metadata"
        if hasParent {
            throw .unsupported("differencing VHDX disks (HasParent set, parent locator) are not implemented by Vigil; convert the chain with `qemu-img convert` first")
        }
        guard blockSize >= 1 << 20, blockSize <= 256 << 20, blockSize & (blockSize - 1) == 0 else {
            throw .invalidField(structure: name, field: "BlockSize", value: "\(blockSize) (a power of two from 1 MiB to 256 MiB)")
        }
        guard logicalSectorSize == 512 || logicalSectorSize == 4096 else {
            throw .invalidField(structure: name, field: "LogicalSectorSize", value: "\(logicalSectorSize) (512 or 4096)")
        }
        guard physicalSectorSize == 512 || physicalSectorSize == 4096 else {
            throw .invalidField(structure: name, field: "PhysicalSectorSize", value: "\(physicalSectorSize) (512 or 4096)")
        }
        guard virtualDiskSize > 0, virtualDiskSize <= Self.maxVirtualDiskSize, virtualDiskSize % UInt64(logicalSectorSize) == 0 else {
            throw .invalidField(structure: name, field: "VirtualDiskSize", value: "\(virtualDiskSize) (a positive multiple of the logical sector size, at most 64 TiB)")
        }
    }

    var geometry: VHDXGeometry {
        VHDXGeometry(virtualDiskSize: virtualDiskSize, blockSize: UInt64(blockSize), logicalSectorSize: UInt64(logicalSectorSize))
    }
}

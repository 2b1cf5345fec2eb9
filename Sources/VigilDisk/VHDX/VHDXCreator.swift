/// What to create: the virtual size and the VHDX parameters, validated before any file exists.
public struct VHDXCreateOptions: Sendable, Equatable {
    public var type: DiskType
    public var virtualSize: UInt64
    public var blockSize: UInt32
    public var logicalSectorSize: UInt32
    public var physicalSectorSize: UInt32

    public static let defaultBlockSize: UInt32 = 32 << 20

    public init(type: DiskType, virtualSize: UInt64, blockSize: UInt32 = defaultBlockSize,
                logicalSectorSize: UInt32 = 512, physicalSectorSize: UInt32 = 4096) {
        self.type = type
        self.virtualSize = virtualSize
        self.blockSize = blockSize
        self.logicalSectorSize = logicalSectorSize
        self.physicalSectorSize = physicalSectorSize
    }
}

/// Writes a new, empty VHDX: the layout QEMU and Hyper-V use (log at 1 MiB, metadata
/// at 2 MiB, BAT at 3 MiB, payload after), with an empty log. A fixed disk gets every
/// payload block placed contiguously after the BAT.
public enum VHDXCreator {
    static let logOffset: UInt64 = Size.MiB
    static let logLength: UInt64 = Size.MiB
    static let metadataOffset: UInt64 = 2 * Size.MiB
    static let metadataLength: UInt64 = Size.MiB
    static let batOffset: UInt64 = 3 * Size.MiB

    /// Creates the file at `path` (it must not exist); written to a temporary name and
    /// renamed into place once durable, so a crash leaves no half-made image at `path`.
    public static func create(path: String, options: VHDXCreateOptions) throws(DiskError) {
        if access(path, F_OK) == 0 { throw .invalidArgument("\(path) already exists; refusing to overwrite it") }
        let tmp = path + ".vigil-creating"
        unlink(tmp)
        do throws(DiskError) {
            let io = try FileIO(creating: tmp)
            try write(to: io, options: options)
            try io.sync()
        } catch {
            unlink(tmp)
            throw error
        }
        if rename(tmp, path) != 0 { let e = errno; unlink(tmp); throw .io(operation: "rename \(tmp)", errno: e) }
    }

    /// Lays out a new VHDX into the empty `io`.
    public static func write(to io: any DiskIO, options o: VHDXCreateOptions) throws(DiskError) {
        let md = VHDXMetadata(blockSize: o.blockSize, leaveBlocksAllocated: o.type == .fixed, hasParent: false,
                              virtualDiskSize: o.virtualSize, page83: .random(),
                              logicalSectorSize: o.logicalSectorSize, physicalSectorSize: o.physicalSectorSize)
        do throws(DiskError) { try md.validate() } catch {
            if case let .invalidField(_, field, value) = error { throw .invalidArgument("invalid \(field): \(value)") }
            throw error
        }
        let g = md.geometry
        // Room in the BAT to grow to 4x the size (at most 64 TiB) without moving it; a
        // dynamic disk's unused BAT is sparse, so the reserve costs no space.
        var room = g
        room.virtualDiskSize = min(o.virtualSize.multipliedReportingOverflow(by: 4).partialValue, VHDXMetadata.maxVirtualDiskSize)
        if room.virtualDiskSize < o.virtualSize { room.virtualDiskSize = o.virtualSize }
        let batLength = max((room.batEntries * 8).roundedUp(to: Size.MiB), Size.MiB)
        guard batLength <= UInt64(UInt32.max) / 2 else { throw .invalidArgument("disk too large for block size \(o.blockSize)") }
        let payloadStart = batOffset + batLength

        try io.write(VHDXFileIdentifier.encoded(creator: "Vigil"), at: 0)
        var header = VHDXHeader(sequenceNumber: 0, fileWriteGUID: .random(), dataWriteGUID: .random(), logGUID: .zero,
                                logLength: UInt32(logLength), logOffset: logOffset)
        for (i, off) in VHDXLayout.headerOffsets.enumerated() {
            header.sequenceNumber = UInt64(i)
            try io.write(header.encoded(), at: off)
        }
        let regions = VHDXRegionTable(entries: [
            VHDXRegion(guid: VHDXKnownGUID.batRegion, fileOffset: batOffset, length: UInt32(batLength), required: true),
            VHDXRegion(guid: VHDXKnownGUID.metadataRegion, fileOffset: metadataOffset, length: UInt32(metadataLength), required: true),
        ])
        for off in VHDXLayout.regionTableOffsets { try io.write(regions.encoded(), at: off) }
        try io.write(md.encoded(), at: metadataOffset)

        var end = payloadStart
        if o.type == .fixed {
            var bat = [UInt8](repeating: 0, count: Int(g.batEntries * 8))
            for block in 0..<g.dataBlocks {
                let e = VHDXBATEntry(state: .fullyPresent, fileOffset: payloadStart + block * g.blockSize)
                bat.put64(e.raw, at: g.batIndex(ofBlock: block) * 8)
            }
            try io.write(bat, at: batOffset)
            end = payloadStart + g.dataBlocks * g.blockSize
        }
        try io.setSize(end)
    }
}

#if canImport(Glibc)
import Glibc
#endif

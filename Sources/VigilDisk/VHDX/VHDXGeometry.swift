/// Block Allocation Table arithmetic (spec 2.5): payload blocks interleaved with
/// sector-bitmap entries, one bitmap entry after every `chunkRatio` payload entries.
public struct VHDXGeometry: Equatable, Sendable {
    public var virtualDiskSize: UInt64
    public var blockSize: UInt64
    public var logicalSectorSize: UInt64

    /// Payload blocks described by one sector bitmap block: 2^23 sectors / sectors per block.
    public var chunkRatio: UInt64 { (1 << 23) * logicalSectorSize / blockSize }
    public var dataBlocks: UInt64 { (virtualDiskSize + blockSize - 1) / blockSize }
    public var sectorBitmapBlocks: UInt64 { (dataBlocks + chunkRatio - 1) / chunkRatio }
    /// BAT entries of a disk without a parent: the payload entries and the bitmap entries between them.
    public var batEntries: UInt64 { dataBlocks == 0 ? 0 : dataBlocks + (dataBlocks - 1) / chunkRatio }

    /// BAT index of payload block `block`.
    public func batIndex(ofBlock block: UInt64) -> Int { Int(block + block / chunkRatio) }
    /// True if BAT index `index` is a sector bitmap entry.
    public func isSectorBitmapEntry(_ index: Int) -> Bool { UInt64(index) % (chunkRatio + 1) == chunkRatio }
}

/// A BAT entry (spec 2.5.1): state in bits 0-2, file offset in MiB in bits 20-63.
struct VHDXBATEntry: Equatable {
    var raw: UInt64

    init(raw: UInt64) { self.raw = raw }
    init(state: State, fileOffset: UInt64) { raw = UInt64(state.rawValue) | (fileOffset / Size.MiB) << 20 }

    var stateBits: UInt8 { UInt8(raw & 7) }
    var state: State? { State(rawValue: stateBits) }
    var fileOffset: UInt64 { (raw >> 20) * Size.MiB }

    enum State: UInt8 {
        case notPresent = 0, undefined = 1, zero = 2, unmapped = 3, fullyPresent = 6, partiallyPresent = 7
    }
}

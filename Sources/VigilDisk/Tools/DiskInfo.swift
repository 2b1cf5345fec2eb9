/// What `vigil disk info` reports about an image.
public struct DiskInfo: Codable, Sendable, Equatable {
    public var path: String
    public var format: DiskFormat
    public var virtualSize: UInt64
    public var fileSize: UInt64
    /// Fixed or dynamic (VHDX's LeaveBlockAllocated); raw images report nil.
    public var type: DiskType?
    public var blockSize: UInt32?
    public var logicalSectorSize: UInt32?
    public var physicalSectorSize: UInt32?
    public var diskID: String?
    public var creator: String?
    public var headerSequence: UInt64?
    public var chunkRatio: UInt64?
    public var batEntries: UInt64?
    public var blocksTotal: UInt64?
    public var blocksAllocated: UInt64?
    /// True when the log holds entries that a read-write open will replay.
    public var logNeedsReplay: Bool?

    /// Reads the image without writing to it (a dirty log is replayed in memory).
    public static func inspect(path: String, format: DiskFormat? = nil) throws(DiskError) -> DiskInfo {
        let fmt = try resolve(format, path)
        let io = try FileIO(path: path, writable: false)
        guard fmt == .vhdx else {
            let fileSize = try io.size()
            return DiskInfo(path: path, format: .raw, virtualSize: fileSize, fileSize: fileSize)
        }
        return try inspect(io: io, path: path)
    }

    /// Reports on the VHDX in `io` without writing to it.
    public static func inspect(io: any DiskIO, path: String = "") throws(DiskError) -> DiskInfo {
        let fileSize = try io.size()
        let image = try VHDXImage.load(from: io)
        let g = image.geometry, md = image.metadata
        let allocated = (0..<g.dataBlocks).filter { image.bat[g.batIndex(ofBlock: $0)] & 7 == 6 }.count
        return DiskInfo(path: path, format: .vhdx, virtualSize: md.virtualDiskSize, fileSize: fileSize,
                        type: md.leaveBlocksAllocated ? .fixed : .dynamic, blockSize: md.blockSize,
                        logicalSectorSize: md.logicalSectorSize, physicalSectorSize: md.physicalSectorSize,
                        diskID: md.page83.description, creator: image.creator,
                        headerSequence: image.headers.current.sequenceNumber, chunkRatio: g.chunkRatio,
                        batEntries: g.batEntries, blocksTotal: g.dataBlocks, blocksAllocated: UInt64(allocated),
                        logNeedsReplay: image.replay != nil)
    }

    /// Human-readable lines.
    public var text: String {
        var lines = ["path: \(path)", "format: \(format.rawValue)",
                     "virtual size: \(DiskSize.format(virtualSize)) (\(virtualSize) bytes)", "file size: \(fileSize) bytes"]
        if let type { lines.append("type: \(type.rawValue)") }
        if let blockSize { lines.append("block size: \(DiskSize.format(UInt64(blockSize)))") }
        if let l = logicalSectorSize, let p = physicalSectorSize { lines.append("sectors: logical \(l), physical \(p)") }
        if let blocksTotal, let blocksAllocated { lines.append("blocks: \(blocksAllocated) of \(blocksTotal) allocated") }
        if let diskID { lines.append("disk id (page 83): \(diskID)") }
        if let creator { lines.append("creator: \(creator)") }
        if let logNeedsReplay { lines.append("log: \(logNeedsReplay ? "needs replay (open read-write or check --repair)" : "empty")") }
        return lines.joined(separator: "\n")
    }
}

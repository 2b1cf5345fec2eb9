/// A raw image: the file is the disk, byte for byte. Its size is the file's size.
public actor RawDisk: Disk {
    public nonisolated let format = DiskFormat.raw
    let io: any DiskIO
    var length: UInt64
    var isClosed = false

    public init(io: any DiskIO) throws(DiskError) {
        self.io = io
        length = try io.size()
    }

    public static func open(path: String, writable: Bool = true) throws(DiskError) -> RawDisk {
        try RawDisk(io: FileIO(path: path, writable: writable))
    }

    /// Creates a sparse raw image of `size` bytes at `path`, which must not exist.
    public static func create(path: String, size: UInt64) throws(DiskError) {
        guard size > 0, size <= VHDXMetadata.maxVirtualDiskSize else { throw .invalidArgument("raw size must be from 1 byte to 64 TiB") }
        let io = try FileIO(creating: path)
        try io.setSize(size)
        try io.sync()
    }

    public func size() -> UInt64 { length }

    public func read(at offset: UInt64, count: Int) throws(DiskError) -> [UInt8] {
        guard !isClosed else { throw .closed }
        try checkRange(offset, count, size: length)
        return try io.readZeroFilled(count, at: offset)
    }

    public func write(_ data: [UInt8], at offset: UInt64) throws(DiskError) {
        guard !isClosed else { throw .closed }
        try checkRange(offset, data.count, size: length)
        try io.write(data, at: offset)
    }

    public func flush() throws(DiskError) {
        guard !isClosed else { throw .closed }
        try io.sync()
    }

    public func grow(to newSize: UInt64) throws(DiskError) {
        guard newSize >= length else { throw .invalidArgument("cannot shrink a disk (from \(length) to \(newSize) bytes)") }
        try io.setSize(newSize)
        try io.sync()
        length = newSize
    }

    public func close() throws(DiskError) {
        guard !isClosed else { return }
        if io.isWritable { try io.sync() }
        isClosed = true
    }
}

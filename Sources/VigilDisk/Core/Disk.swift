/// A virtual disk: a byte-addressed device of fixed size that can grow.
/// Reads of never-written ranges return zeros. `flush` makes every completed write
/// durable; a write not followed by a flush may be lost in a crash, a flushed one never.
public protocol Disk: Sendable {
    var format: DiskFormat { get }
    func size() async -> UInt64
    func read(at offset: UInt64, count: Int) async throws(DiskError) -> [UInt8]
    func write(_ data: [UInt8], at offset: UInt64) async throws(DiskError)
    func flush() async throws(DiskError)
    /// Grows the disk to `newSize` bytes; the new range reads as zeros.
    func grow(to newSize: UInt64) async throws(DiskError)
    /// Tells the disk a range is no longer needed. Optional: the default does nothing.
    func discard(at offset: UInt64, count: UInt64) async throws(DiskError)
    /// Flushes and marks the image clean. The disk cannot be used afterwards.
    func close() async throws(DiskError)
}

extension Disk {
    public func discard(at offset: UInt64, count: UInt64) async throws(DiskError) {}
}

public enum DiskFormat: String, Sendable, Codable, CaseIterable {
    case raw, vhdx
}

public enum DiskType: String, Sendable, Codable, CaseIterable {
    /// Every block allocated at creation.
    case fixed
    /// Blocks allocated on first write.
    case dynamic
}

/// Checks that `[offset, offset + count)` lies within a disk of `size` bytes.
func checkRange(_ offset: UInt64, _ count: Int, size: UInt64) throws(DiskError) {
    let c = UInt64(max(count, 0))
    if count < 0 || offset > size || c > size - offset {
        throw .outOfRange(offset: offset, count: c, size: size)
    }
}

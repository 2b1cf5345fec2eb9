import Foundation
@testable import VigilDisk

/// A file held in memory. Read-only ones throw on any write, so a test sees an attempted write.
final class MemoryIO: DiskIO, @unchecked Sendable {
    var bytes: [UInt8]
    let isWritable: Bool
    private(set) var writes = 0

    init(_ bytes: [UInt8], writable: Bool = false) {
        self.bytes = bytes
        isWritable = writable
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskError) -> Int {
        guard offset < UInt64(bytes.count) else { return 0 }
        let n = min(buffer.count, bytes.count - Int(offset))
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n) }
        return n
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskError) {
        writes += 1
        guard isWritable else { throw .readOnly }
        let end = Int(offset) + buffer.count
        if end > bytes.count { bytes += [UInt8](repeating: 0, count: end - bytes.count) }
        bytes.replaceSubrange(Int(offset)..<end, with: buffer)
    }

    func sync() throws(DiskError) {}
    func size() throws(DiskError) -> UInt64 { UInt64(bytes.count) }
    func setSize(_ size: UInt64) throws(DiskError) {
        writes += 1
        guard isWritable else { throw .readOnly }
        if Int(size) < bytes.count { bytes.removeLast(bytes.count - Int(size)) } else { bytes += [UInt8](repeating: 0, count: Int(size) - bytes.count) }
    }
}

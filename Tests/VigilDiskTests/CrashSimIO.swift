import Foundation
@testable import VigilDisk

/// An in-memory file that models a crash: writes and size changes since the last
/// `sync` are pending; after `crashAfter` more operations every call fails, and
/// `crashImage` returns the durable state plus a random subset of pending operations
/// (whole, or for multi-page writes sometimes only a prefix of whole 4 KiB pages: a torn write).
final class CrashSimIO: DiskIO, @unchecked Sendable {
    static let page = 4096
    private let lock = NSLock()
    private var pages: [UInt64: [UInt8]]
    private var length: UInt64
    private var durablePages: [UInt64: [UInt8]]
    private var durableLength: UInt64
    private var pending: [Op] = []
    /// Operations (write, setSize, sync) left before the simulated crash; nil: never.
    var crashAfter: Int?
    private(set) var crashed = false
    var isWritable: Bool { true }

    enum Op {
        case write(UInt64, [UInt8])
        case setSize(UInt64)
    }

    struct Image {
        var pages: [UInt64: [UInt8]]
        var length: UInt64
    }

    init(_ image: Image = Image(pages: [:], length: 0)) {
        pages = image.pages
        length = image.length
        durablePages = image.pages
        durableLength = image.length
    }

    private func tick() throws(DiskError) {
        if crashed { throw .io(operation: "simulated crash", errno: EIO) }
        if let n = crashAfter {
            if n <= 0 { crashed = true; throw .io(operation: "simulated crash", errno: EIO) }
            crashAfter = n - 1
        }
    }

    private static func apply(_ op: Op, to pages: inout [UInt64: [UInt8]], length: inout UInt64) {
        switch op {
        case let .write(offset, bytes):
            var i = 0
            while i < bytes.count {
                let pos = offset + UInt64(i)
                let pno = pos / UInt64(page), inPage = Int(pos % UInt64(page))
                let n = min(page - inPage, bytes.count - i)
                var p = pages[pno] ?? [UInt8](repeating: 0, count: page)
                p.replaceSubrange(inPage..<(inPage + n), with: bytes[i..<(i + n)])
                pages[pno] = p
                i += n
            }
            length = max(length, offset + UInt64(bytes.count))
        case let .setSize(size):
            if size < length {
                let firstGone = (size + UInt64(page) - 1) / UInt64(page)
                for k in pages.keys where k >= firstGone { pages[k] = nil }
                if size % UInt64(page) != 0, var p = pages[size / UInt64(page)] {
                    let from = Int(size % UInt64(page))
                    p.replaceSubrange(from..<page, with: [UInt8](repeating: 0, count: page - from))
                    pages[size / UInt64(page)] = p
                }
            }
            length = size
        }
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskError) -> Int {
        lock.lock(); defer { lock.unlock() }
        guard offset < length else { return 0 }
        let n = Int(min(UInt64(buffer.count), length - offset))
        var i = 0
        while i < n {
            let pos = offset + UInt64(i)
            let pno = pos / UInt64(Self.page), inPage = Int(pos % UInt64(Self.page))
            let k = min(Self.page - inPage, n - i)
            if let p = pages[pno] {
                p.withUnsafeBytes { src in (buffer.baseAddress! + i).copyMemory(from: src.baseAddress! + inPage, byteCount: k) }
            } else {
                memset(buffer.baseAddress! + i, 0, k)
            }
            i += k
        }
        return n
    }

    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskError) {
        lock.lock(); defer { lock.unlock() }
        try tick()
        let op = Op.write(offset, [UInt8](buffer))
        Self.apply(op, to: &pages, length: &length)
        pending.append(op)
    }

    /// This write reaches the durable state now; older pending writes to the same bytes
    /// take its content (the page cache holds the newest data), other pending ops stay pending.
    func writeDurably(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskError) {
        lock.lock(); defer { lock.unlock() }
        try tick()
        let bytes = [UInt8](buffer)
        Self.apply(.write(offset, bytes), to: &pages, length: &length)
        Self.apply(.write(offset, bytes), to: &durablePages, length: &durableLength)
        let end = offset + UInt64(bytes.count)
        for i in pending.indices {
            guard case .write(let o, var old) = pending[i] else { continue }
            let oe = o + UInt64(old.count)
            guard o < end && offset < oe else { continue }
            let from = max(o, offset), to = min(oe, end)
            old.replaceSubrange(Int(from - o)..<Int(to - o), with: bytes[Int(from - offset)..<Int(to - offset)])
            pending[i] = .write(o, old)
        }
    }

    func sync() throws(DiskError) {
        lock.lock(); defer { lock.unlock() }
        try tick()
        for op in pending { Self.apply(op, to: &durablePages, length: &durableLength) }
        pending = []
    }

    func size() throws(DiskError) -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        return length
    }

    func setSize(_ size: UInt64) throws(DiskError) {
        lock.lock(); defer { lock.unlock() }
        try tick()
        Self.apply(.setSize(size), to: &pages, length: &length)
        pending.append(.setSize(size))
    }

    /// Lets operations succeed again (the "device" came back).
    func revive() {
        lock.lock(); defer { lock.unlock() }
        crashed = false
        crashAfter = nil
    }

    /// The state as of now without a crash.
    var currentImage: Image {
        lock.lock(); defer { lock.unlock() }
        return Image(pages: pages, length: length)
    }

    /// What a power loss now could leave on disk.
    func crashImage(using rng: inout SeededRNG) -> Image {
        lock.lock(); defer { lock.unlock() }
        var p = durablePages, l = durableLength
        for op in pending where Bool.random(using: &rng) {
            if case let .write(offset, bytes) = op, bytes.count > Self.page, Int.random(in: 0..<4, using: &rng) == 0 {
                let keep = Int.random(in: 0..<(bytes.count / Self.page), using: &rng) * Self.page
                Self.apply(.write(offset, Array(bytes[0..<keep])), to: &p, length: &l)
            } else {
                Self.apply(op, to: &p, length: &l)
            }
        }
        return Image(pages: p, length: l)
    }

    /// Writes an image to a real (sparse) file, for qemu-img.
    static func save(_ image: Image, to path: String) throws {
        let io = try FileIO(creating: path)
        try io.setSize(image.length)
        for (pno, data) in image.pages where !data.isAllZero { try io.write(data, at: pno * UInt64(page)) }
    }
}

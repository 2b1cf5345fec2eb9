#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Byte-addressed storage under a disk image: a file, or in tests a fault-injecting
/// stand-in. Implementations are safe to call from any thread.
public protocol DiskIO: AnyObject, Sendable {
    var isWritable: Bool { get }
    /// Reads up to `buffer.count` bytes at `offset`; returns fewer only at end of file.
    func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskError) -> Int
    func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskError)
    /// Makes every completed write and size change durable.
    func sync() throws(DiskError)
    /// Writes `buffer` and makes that write durable before returning, without waiting
    /// for other pending writes (on a file: a write through an `O_DSYNC` descriptor).
    func writeDurably(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskError)
    func size() throws(DiskError) -> UInt64
    func setSize(_ size: UInt64) throws(DiskError)
}

extension DiskIO {
    public func writeDurably(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskError) {
        try write(buffer, at: offset)
        try sync()
    }

    /// Reads exactly `count` bytes or throws `.truncated` naming `structure`.
    func readExact(_ count: Int, at offset: UInt64, structure: String) throws(DiskError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try typed { try out.withUnsafeMutableBytes { b in try read(into: b, at: offset) } }
        if n < count {
            throw .truncated(structure: structure, needed: offset + UInt64(count), fileSize: (try? size()) ?? offset + UInt64(n))
        }
        return out
    }

    /// Reads `count` bytes, zero-filling past the end of the file.
    func readZeroFilled(_ count: Int, at offset: UInt64) throws(DiskError) -> [UInt8] {
        try typed {
            try [UInt8](unsafeUninitializedCapacity: count) { buf, initialized in
                let b = UnsafeMutableRawBufferPointer(buf)
                let got = try read(into: b, at: offset)
                if got < count { memset(b.baseAddress! + got, 0, count - got) }
                initialized = count
            }
        }
    }

    func write(_ bytes: [UInt8], at offset: UInt64) throws(DiskError) {
        try typed { try bytes.withUnsafeBytes { b in try write(b, at: offset) } }
    }
}

/// A file opened with `open(2)`; closed when released.
public final class FileIO: DiskIO {
    let fd: Int32
    /// The same file opened with `O_DSYNC`, for `writeDurably`; -1 when read-only.
    let dsyncFD: Int32
    public let isWritable: Bool
    public let path: String

    /// Opens an existing file.
    public init(path: String, writable: Bool) throws(DiskError) {
        let fd = open(path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC)
        if fd < 0 { throw .io(operation: "open \(path)", errno: errno) }
        self.fd = fd
        self.isWritable = writable
        self.path = path
        dsyncFD = writable ? Glibc.open(path, O_WRONLY | O_DSYNC | O_CLOEXEC) : -1
        if writable && dsyncFD < 0 { let e = errno; close(fd); throw .io(operation: "open \(path) O_DSYNC", errno: e) }
    }

    /// Creates a new file; refuses to overwrite an existing one.
    public init(creating path: String) throws(DiskError) {
        let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        if fd < 0 { throw .io(operation: "create \(path)", errno: errno) }
        self.fd = fd
        self.isWritable = true
        self.path = path
        dsyncFD = Glibc.open(path, O_WRONLY | O_DSYNC | O_CLOEXEC)
        if dsyncFD < 0 { let e = errno; close(fd); throw .io(operation: "open \(path) O_DSYNC", errno: e) }
    }

    deinit {
        close(fd)
        if dsyncFD >= 0 { close(dsyncFD) }
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer, at offset: UInt64) throws(DiskError) -> Int {
        guard offset <= UInt64(Int64.max) else { return 0 }
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "pread", errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }

    public func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskError) {
        try write(buffer, at: offset, fd: fd)
    }

    public func writeDurably(_ buffer: UnsafeRawBufferPointer, at offset: UInt64) throws(DiskError) {
        try write(buffer, at: offset, fd: dsyncFD)
    }

    private func write(_ buffer: UnsafeRawBufferPointer, at offset: UInt64, fd: Int32) throws(DiskError) {
        guard isWritable else { throw .readOnly }
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .io(operation: "pwrite", errno: errno)
            }
            done += n
        }
    }

    public func sync() throws(DiskError) {
        guard isWritable else { return }
        if fdatasync(fd) != 0 { throw .io(operation: "fdatasync", errno: errno) }
    }

    public func size() throws(DiskError) -> UInt64 {
        var st = stat()
        if fstat(fd, &st) != 0 { throw .io(operation: "fstat", errno: errno) }
        return UInt64(st.st_size)
    }

    public func setSize(_ size: UInt64) throws(DiskError) {
        guard isWritable else { throw .readOnly }
        if ftruncate(fd, off_t(size)) != 0 { throw .io(operation: "ftruncate", errno: errno) }
    }
}

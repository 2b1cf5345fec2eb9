/// Everything that can go wrong opening, checking or using a disk image. Each case
/// names the structure and the value at fault; `description` says what to do where
/// there is something to do.
public enum DiskError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A system call failed.
    case io(operation: String, errno: Int32)
    /// The file ends before a structure that must be there.
    case truncated(structure: String, needed: UInt64, fileSize: UInt64)
    /// Asked to open a VHDX, but the file does not start with the VHDX file identifier.
    case notVHDX(found: String)
    /// A structure's signature is wrong.
    case badSignature(structure: String, offset: UInt64)
    /// A structure's CRC-32C does not match its contents.
    case badChecksum(structure: String, offset: UInt64)
    /// A field holds a value the format does not allow.
    case invalidField(structure: String, field: String, value: String)
    /// Two regions of the file (headers, log, region entries, BAT, metadata) overlap.
    case regionOverlap(String, String)
    /// A required region or metadata item is absent.
    case missing(String)
    /// A valid feature Vigil does not implement (differencing disks, unknown required items).
    case unsupported(String)
    /// A BAT entry points outside the file or into the file's own structures.
    case batEntryOutOfBounds(index: Int, fileOffset: UInt64, fileSize: UInt64)
    /// Two BAT entries point at overlapping file ranges.
    case batEntriesOverlap(index: Int, other: Int)
    /// A BAT entry's state is not allowed where it is.
    case batEntryInvalidState(index: Int, state: UInt8)
    /// The log cannot be replayed.
    case logCorrupt(String)
    /// The log must be replayed but the file is open read-only.
    case logNeedsReplay
    /// A request outside the virtual disk.
    case outOfRange(offset: UInt64, count: UInt64, size: UInt64)
    /// A write or resize on a disk opened read-only.
    case readOnly
    /// A bad argument (size, block size, sector size, shrink).
    case invalidArgument(String)
    /// The disk was closed.
    case closed

    public var description: String {
        switch self {
        case let .io(op, e): return "\(op) failed: \(String(cString: strerror(e))) (errno \(e))"
        case let .truncated(s, needed, size): return "file truncated: \(s) needs \(needed) bytes but the file has \(size)"
        case let .notVHDX(found): return "not a VHDX file: no 'vhdxfile' identifier at offset 0 (found \"\(found)\"); open it as raw if it is a raw image"
        case let .badSignature(s, o): return "bad signature in \(s) at offset \(o)"
        case let .badChecksum(s, o): return "CRC-32C mismatch in \(s) at offset \(o)"
        case let .invalidField(s, f, v): return "invalid \(f) in \(s): \(v)"
        case let .regionOverlap(a, b): return "\(a) overlaps \(b)"
        case let .missing(what): return "missing \(what)"
        case let .unsupported(what): return "unsupported: \(what)"
        case let .batEntryOutOfBounds(i, o, size): return "BAT entry \(i) points at offset \(o), outside the usable file (size \(size))"
        case let .batEntriesOverlap(i, j): return "BAT entries \(i) and \(j) point at overlapping file ranges"
        case let .batEntryInvalidState(i, s): return "BAT entry \(i) has invalid state \(s)"
        case let .logCorrupt(why): return "log cannot be replayed: \(why)"
        case .logNeedsReplay: return "the VHDX log must be replayed; open the disk read-write (e.g. `vigil disk check --repair`)"
        case let .outOfRange(o, c, size): return "request of \(c) bytes at offset \(o) is outside the disk (size \(size))"
        case .readOnly: return "the disk is open read-only"
        case let .invalidArgument(why): return why
        case .closed: return "the disk is closed"
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs `body`, whose untyped `throws` comes only from `DiskError`s (closures passed
/// through the standard library's `withUnsafeBytes` family lose the thrown type).
func typed<T>(_ body: () throws -> T) throws(DiskError) -> T {
    do { return try body() } catch let e as DiskError { throw e } catch { preconditionFailure("unexpected error \(error)") }
}

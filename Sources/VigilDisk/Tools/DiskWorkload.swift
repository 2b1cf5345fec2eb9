/// A benchmark access pattern that Vigil and `qemu-img bench` can both run exactly:
/// `count` requests of `requestSize` bytes at offsets `(i * step) mod size`. A step equal
/// to the request size is sequential; an odd multiple of it visits every slot once in a
/// scattered order ("random" without a random generator, as `qemu-img bench -S` does).
public struct DiskWorkload: Sendable, Equatable {
    public var write: Bool
    public var requestSize: Int
    public var count: Int
    public var step: UInt64
    public var diskSize: UInt64

    public static func sequential(write: Bool, requestSize: Int, diskSize: UInt64) -> DiskWorkload {
        DiskWorkload(write: write, requestSize: requestSize, count: Int(diskSize / UInt64(requestSize)),
                     step: UInt64(requestSize), diskSize: diskSize)
    }

    /// `count` requests scattered over the disk; `diskSize / requestSize` must be a power of two.
    public static func scattered(write: Bool, requestSize: Int, count: Int, diskSize: UInt64) -> DiskWorkload {
        let slots = diskSize / UInt64(requestSize)
        let stride = (slots * 618 / 1000) | 1  // odd, so coprime with a power-of-two slot count
        return DiskWorkload(write: write, requestSize: requestSize, count: count, step: stride * UInt64(requestSize), diskSize: diskSize)
    }

    public func offset(_ i: Int) -> UInt64 { UInt64(i) &* step % diskSize }

    /// Runs the pattern on `disk`; returns bytes per second. Like `qemu-img bench`, whose
    /// clock stops before its closing flush, the final flush is not timed.
    public func run(on disk: any Disk) async throws -> Double {
        let buffer = (0..<requestSize).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        let clock = ContinuousClock()
        let start = clock.now
        for i in 0..<count {
            if write {
                try await disk.write(buffer, at: offset(i))
            } else {
                _ = try await disk.read(at: offset(i), count: requestSize)
            }
        }
        let elapsed = clock.now - start
        if write { try await disk.flush() }
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Double(count * requestSize) / seconds
    }

    /// The same pattern for `qemu-img bench` (queue depth 1, writeback cache, no flushes).
    public func qemuImgBenchArguments(path: String, format: DiskFormat) -> [String] {
        var args = ["bench", "-f", format.rawValue, "-t", "writeback", "-d", "1", "-c", "\(count)",
                    "-s", "\(requestSize)", "-S", "\(step)"]
        if write { args += ["-w", "--pattern=7"] }
        return args + [path]
    }
}

#if canImport(Glibc)
import Glibc
#endif

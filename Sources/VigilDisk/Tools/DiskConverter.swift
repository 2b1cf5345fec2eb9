/// What a conversion did.
public struct DiskConvertReport: Codable, Sendable, Equatable {
    public var source: String
    public var sourceFormat: DiskFormat
    public var destination: String
    public var destinationFormat: DiskFormat
    public var virtualSize: UInt64
    /// Bytes copied; all-zero chunks are skipped, so the destination stays sparse.
    public var bytesWritten: UInt64
}

/// Copies one image into a new one of another format (or type, or block size).
public enum DiskConverter {
    public static let chunk = 4 << 20

    public static func convert(from source: String, sourceFormat: DiskFormat? = nil, to destination: String,
                               format: DiskFormat, options: VHDXCreateOptions) async throws(DiskError) -> DiskConvertReport {
        let src = try DiskImage.open(path: source, format: sourceFormat, writable: false)
        let size = await src.size()
        var opts = options
        opts.virtualSize = size
        if format == .vhdx && size % UInt64(opts.logicalSectorSize) != 0 {
            throw .invalidArgument("source size \(size) is not a multiple of the \(opts.logicalSectorSize)-byte logical sector")
        }
        try DiskImage.create(path: destination, format: format, options: opts)
        let dst = try DiskImage.open(path: destination, format: format, writable: true)
        var written: UInt64 = 0
        var off: UInt64 = 0
        while off < size {
            let n = Int(min(UInt64(chunk), size - off))
            let data = try await src.read(at: off, count: n)
            if !data.isAllZero || options.type == .fixed && format == .raw {
                try await dst.write(data, at: off)
                written += UInt64(n)
            }
            off += UInt64(n)
        }
        try await dst.flush()
        try await dst.close()
        try await src.close()
        return DiskConvertReport(source: source, sourceFormat: src.format, destination: destination,
                                 destinationFormat: format, virtualSize: size, bytesWritten: written)
    }
}

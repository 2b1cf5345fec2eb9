/// Opening an image file by format, detected or stated.
public enum DiskImage {
    /// `.vhdx` if the file starts with the VHDX identifier, otherwise `.raw`.
    public static func detectFormat(path: String) throws(DiskError) -> DiskFormat {
        let io = try FileIO(path: path, writable: false)
        return try io.readZeroFilled(8, at: 0).matches(VHDXLayout.fileSignature, at: 0) ? .vhdx : .raw
    }

    /// Opens `path` as `format` (detected when nil). A raw file opened as VHDX fails with
    /// `.notVHDX`. Read-only opens of a VHDX with a pending log replay it in memory.
    public static func open(path: String, format: DiskFormat? = nil, writable: Bool) throws(DiskError) -> any Disk {
        switch try resolve(format, path) {
        case .raw: return try RawDisk.open(path: path, writable: writable)
        case .vhdx: return try VHDXDisk.open(path: path, writable: writable, replayInMemory: !writable)
        }
    }

    /// Creates an empty image of `format`. Raw images are always sparse ("dynamic" in effect).
    public static func create(path: String, format: DiskFormat, options: VHDXCreateOptions) throws(DiskError) {
        switch format {
        case .raw: try RawDisk.create(path: path, size: options.virtualSize)
        case .vhdx: try VHDXCreator.create(path: path, options: options)
        }
    }
}

func resolve(_ format: DiskFormat?, _ path: String) throws(DiskError) -> DiskFormat {
    if let format { return format }
    return try DiskImage.detectFormat(path: path)
}

/// Sizes as operators write them: `10G`, `512M`, `1T`, `4096`, `64KiB` (binary units).
public enum DiskSize {
    public static func parse(_ text: String) throws(DiskError) -> UInt64 {
        let t = text.trimmingCharacters(in: .whitespaces)
        let digits = t.prefix { $0.isASCII && $0.isNumber }
        var unit = t.dropFirst(digits.count).uppercased()
        if unit.hasSuffix("IB") { unit.removeLast(2) } else if unit.hasSuffix("B") { unit.removeLast() }
        let shifts: [String: UInt64] = ["": 0, "K": 10, "M": 20, "G": 30, "T": 40, "P": 50]
        guard !digits.isEmpty, let n = UInt64(digits), let shift = shifts[unit] else {
            throw .invalidArgument("cannot read size \"\(text)\": use a whole number with an optional K, M, G, T or P suffix (e.g. 10G, 512M)")
        }
        let (v, overflow) = n.multipliedReportingOverflow(by: 1 << shift)
        guard !overflow else { throw .invalidArgument("size \"\(text)\" is too large") }
        return v
    }

    /// `34359738368` → `32 GiB`, exact where possible.
    public static func format(_ bytes: UInt64) -> String {
        for (unit, shift) in [("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)] as [(String, UInt64)] {
            if bytes >= 1 << shift && bytes % (1 << shift) == 0 { return "\(bytes >> shift) \(unit)" }
        }
        return "\(bytes) bytes"
    }
}

import Foundation

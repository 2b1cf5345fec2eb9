import Foundation
import Testing
@testable import VigilDisk

/// Interoperability with Debian's qemu-img in both directions.
@Suite struct QemuInteropTests {
    static let qemuShapes: [(type: String, blockMiB: Int)] = [
        ("dynamic", 1), ("dynamic", 8), ("dynamic", 32), ("fixed", 1), ("fixed", 32), ("dynamic", 256),
    ]

    @Test(.enabled(if: qemuImgAvailable), arguments: qemuShapes.indices)
    func vigilReadsImagesQemuImgCreatedAndFilledWithQemuImg(_ i: Int) async throws {
        let shape = Self.qemuShapes[i]
        let dir = TempDir()
        let size = 48 * 1024 * 1024 + 512 * 3  // not a multiple of any block size
        let expected = patternedRaw(size: size, seed: UInt64(100 + i))
        writeFile(dir.file("src.raw"), expected)
        let conv = try qemuImg("convert", "-f", "raw", "-O", "vhdx", "-o", "subformat=\(shape.type),block_size=\(shape.blockMiB)M",
                               dir.file("src.raw"), dir.file("q.vhdx"))
        #expect(conv.status == 0, "\(conv.output)")
        // Also let QEMU's own driver allocate blocks through its log: write a pattern at two offsets.
        let io = try run("/usr/bin/qemu-io", ["-f", "vhdx", "-c", "write -P 0xa5 40960 8192", "-c", "write -P 0x3c 33554432 4096", dir.file("q.vhdx")])
        #expect(io.status == 0, "\(io.output)")
        var want = expected
        want.replaceSubrange(40960..<(40960 + 8192), with: [UInt8](repeating: 0xA5, count: 8192))
        want.replaceSubrange(33_554_432..<(33_554_432 + 4096), with: [UInt8](repeating: 0x3C, count: 4096))

        let disk = try VHDXDisk.open(path: dir.file("q.vhdx"), writable: false)
        #expect(await disk.size() == UInt64(size))
        #expect(await disk.metadata.blockSize == UInt32(shape.blockMiB) << 20)
        let got = try await readAll(disk)
        #expect(firstDifference(got, want) == nil, "first difference at \(firstDifference(got, want) ?? -1)")
    }

    static let vigilShapes: [(type: DiskType, blockMiB: UInt32)] = [
        (.dynamic, 1), (.dynamic, 32), (.dynamic, 256), (.fixed, 1), (.fixed, 16),
    ]

    @Test(.enabled(if: qemuImgAvailable), arguments: vigilShapes.indices)
    func imagesVigilWritesPassQemuImgCheckAndReadBackIdenticalWithQemuImg(_ i: Int) async throws {
        let shape = Self.vigilShapes[i]
        let dir = TempDir()
        let size = 40 * 1024 * 1024
        try VHDXCreator.create(path: dir.file("v.vhdx"), options: .init(type: shape.type, virtualSize: UInt64(size), blockSize: shape.blockMiB << 20))
        let disk = try VHDXDisk.open(path: dir.file("v.vhdx"))
        var rng = SeededRNG(seed: UInt64(200 + i))
        var ref = [UInt8](repeating: 0, count: size)
        for _ in 0..<(quick ? 20 : 60) {
            let len = Int.random(in: 1...(300 * 1024), using: &rng)
            let off = Int.random(in: 0...(size - len), using: &rng)
            let data = rng.bytes(len)
            try await disk.write(data, at: UInt64(off))
            ref.replaceSubrange(off..<(off + len), with: data)
        }
        try await disk.close()
        let check = try qemuImg("check", "-f", "vhdx", dir.file("v.vhdx"))
        #expect(check.status == 0, "\(check.output)")
        let conv = try qemuImg("convert", "-f", "vhdx", "-O", "raw", dir.file("v.vhdx"), dir.file("out.raw"))
        #expect(conv.status == 0, "\(conv.output)")
        let got = readFile(dir.file("out.raw"))
        #expect(firstDifference(got, ref) == nil, "first difference at \(firstDifference(got, ref) ?? -1)")
    }

    /// On CI (`VIGIL_REQUIRE_ALL=1`) the qemu-img tests must run, not skip.
    @Test func qemuImgIsInstalledWhenCIRequiresEveryCapability() {
        if ProcessInfo.processInfo.environment["VIGIL_REQUIRE_ALL"] == "1" {
            #expect(qemuImgAvailable, "qemu-img (Debian qemu-utils) is required on CI")
        }
    }

    @Test(.enabled(if: qemuImgAvailable))
    func qemuImgInfoReportsVigilImageSizeWithQemuImg() throws {
        let dir = TempDir()
        try VHDXCreator.create(path: dir.file("v.vhdx"), options: .init(type: .dynamic, virtualSize: 3 << 30))
        let info = try qemuImg("info", "--output=json", dir.file("v.vhdx"))
        #expect(info.status == 0, "\(info.output)")
        #expect(info.output.contains("\"virtual-size\": 3221225472"), "\(info.output)")
        #expect(info.output.contains("\"format\": \"vhdx\""))
    }
}

import Foundation
import Testing
@testable import VigilDisk

/// Random reads, writes, flushes, grows and reopens against a raw reference file:
/// the VHDX must read back exactly what the raw file holds, throughout.
@Suite(.timeLimit(.minutes(3))) struct PropertyTests {
    static let configs: [(DiskType, UInt32, UInt32)] = [
        (.dynamic, 1 << 20, 512), (.dynamic, 4 << 20, 4096), (.dynamic, 32 << 20, 512),
        (.fixed, 1 << 20, 4096), (.fixed, 8 << 20, 512),
    ]

    @Test(arguments: configs.indices)
    func randomOperationsWithReopensMatchRawReference(_ i: Int) async throws {
        let (type, blockSize, sector) = Self.configs[i]
        let seed = testSeed(0x5EED_0000) &+ UInt64(i)
        var rng = SeededRNG(seed: seed)
        let dir = TempDir()
        var size = UInt64(20 << 20) + UInt64(sector) * 7
        let vpath = dir.file("p.vhdx"), rpath = dir.file("ref.raw")
        try VHDXCreator.create(path: vpath, options: .init(type: type, virtualSize: size, blockSize: blockSize, logicalSectorSize: sector))
        try RawDisk.create(path: rpath, size: size)
        var vhdx = try VHDXDisk.open(path: vpath)
        var raw = try RawDisk.open(path: rpath)
        let ops = quick ? 600 : 3000
        for step in 0..<ops {
            let what = Int.random(in: 0..<100, using: &rng)
            let context = "seed \(seed) step \(step)"
            switch what {
            case 0..<45:
                let len = Int.random(in: 1...(Int.random(in: 0..<10, using: &rng) == 0 ? 3 << 20 : 16 << 10), using: &rng)
                let off = UInt64.random(in: 0...(size - UInt64(len)), using: &rng)
                let data = rng.bytes(len)
                try await vhdx.write(data, at: off)
                try await raw.write(data, at: off)
            case 45..<85:
                let len = Int.random(in: 1...(1 << 20), using: &rng)
                let off = UInt64.random(in: 0...(size - UInt64(len)), using: &rng)
                let a = try await vhdx.read(at: off, count: len)
                let b = try await raw.read(at: off, count: len)
                if a != b {
                    Issue.record("\(context): read \(len) at \(off) differs at +\(firstDifference(a, b) ?? -1)")
                    return
                }
            case 85..<93:
                try await vhdx.flush()
            case 93..<95 where size < 48 << 20:
                size += UInt64(Int.random(in: 1...(6 << 20), using: &rng)) / UInt64(sector) * UInt64(sector)
                try await vhdx.grow(to: size)
                try await raw.grow(to: size)
            default:
                // Reopen: cleanly, or abandoning the disk with its log open (as a killed process would).
                if Bool.random(using: &rng) { try await vhdx.close() }
                vhdx = try VHDXDisk.open(path: vpath)
                try await raw.close()
                raw = try RawDisk.open(path: rpath)
                #expect(await vhdx.size() == size, "\(context)")
            }
        }
        try await vhdx.close()
        let report = DiskChecker.check(path: vpath)
        #expect(report.ok, "seed \(seed): \(report.problems)")
        let final = try await readAll(try VHDXDisk.open(path: vpath, writable: false))
        #expect(firstDifference(final, readFile(rpath)) == nil, "seed \(seed): final content differs")
    }

    @Test func growOfFixedDiskAllocatesBlocksAndNewRangeReadsZero() async throws {
        let dir = TempDir()
        let path = dir.file("g.vhdx")
        try VHDXCreator.create(path: path, options: .init(type: .fixed, virtualSize: 3 << 20, blockSize: 1 << 20))
        let disk = try VHDXDisk.open(path: path)
        try await disk.write([UInt8](repeating: 7, count: 3 << 20), at: 0)
        try await disk.grow(to: 6 << 20)
        try await disk.close()
        let info = try DiskInfo.inspect(path: path)
        #expect(info.virtualSize == 6 << 20)
        #expect(info.blocksAllocated == 6)
        let reopened = try VHDXDisk.open(path: path, writable: false)
        #expect(try await reopened.read(at: 3 << 20, count: 3 << 20) == [UInt8](repeating: 0, count: 3 << 20))
        #expect(try await reopened.read(at: (3 << 20) - 1, count: 1) == [7])
    }

    @Test func growthBeyondTheBATReserveIsRefusedAndGrowthWithinItWorks() async throws {
        let dir = TempDir()
        let path = dir.file("big.vhdx")
        // 200 GiB in 1 MiB blocks: 200 Ki entries; the BAT reserves room for 4x.
        try VHDXCreator.create(path: path, options: .init(type: .dynamic, virtualSize: 200 << 30, blockSize: 1 << 20))
        let disk = try VHDXDisk.open(path: path)
        try await disk.write([9], at: (200 << 30) - 1)
        try await disk.grow(to: 800 << 30)
        try await disk.write([8], at: (800 << 30) - 1)
        await #expect(throws: DiskError.self) { try await disk.grow(to: 900 << 30) }
        #expect(try await disk.read(at: (200 << 30) - 1, count: 1) == [9])
        try await disk.close()
        #expect(DiskChecker.check(path: path).ok)
        #expect(try DiskInfo.inspect(path: path).virtualSize == 800 << 30)
    }

    @Test func shrinkIsRefusedWithAClearError() async throws {
        let dir = TempDir()
        try VHDXCreator.create(path: dir.file("s.vhdx"), options: .init(type: .dynamic, virtualSize: 8 << 20))
        let disk = try VHDXDisk.open(path: dir.file("s.vhdx"))
        await #expect(throws: DiskError.self) { try await disk.grow(to: 4 << 20) }
    }
}

import Foundation
import Testing
@testable import VigilDisk

/// A VHDX abandoned mid-session (log GUID set, entries in the log) opens consistently.
@Suite(.timeLimit(.minutes(3))) struct LogReplayTests {
    /// A dirty image whose in-place BAT writes were lost: only the log knows the blocks.
    static func dirtyImageWithLostBAT() async throws -> (image: [UInt8], clean: [UInt8]) {
        let b = try await Samples.dynamic(seed: 9, close: false)
        var lost = b
        lost.replaceSubrange(Samples.batOffset..<(Samples.batOffset + 4096), with: [UInt8](repeating: 0, count: 4096))
        return (lost, b)
    }

    @Test func readOnlyOpenOfDirtyLogAsksForReplayAndWritesNothing() async throws {
        let (image, _) = try await Self.dirtyImageWithLostBAT()
        let io = MemoryIO(image)
        #expect(throws: DiskError.logNeedsReplay) { _ = try VHDXDisk(io: io) }
        let inMemory = try VHDXDisk(io: io, replayInMemory: true)
        let expected = try await VHDXDisk(io: MemoryIO(try await Samples.dynamic(seed: 9))).read(at: 3 << 20, count: 1 << 20)
        #expect(try await inMemory.read(at: 3 << 20, count: 1 << 20) == expected)
        #expect(io.writes == 0)
    }

    @Test func readWriteOpenReplaysLogAndLeavesFileClean() async throws {
        let (image, _) = try await Self.dirtyImageWithLostBAT()
        let reference = try await readAll(try VHDXDisk(io: MemoryIO(try await Samples.dynamic(seed: 9))))
        let io = MemoryIO(image, writable: true)
        let before = try DiskChecker.check(io: io)
        #expect(before.problems == [DiskError.logNeedsReplay.description])
        #expect(before.repairable)
        let disk = try VHDXDisk(io: io)
        #expect(try await readAll(disk) == reference)
        let after = try VHDXImage.load(from: io)
        #expect(after.headers.current.logGUID.isZero)
        #expect(after.problems.isEmpty)
    }

    @Test func checkRepairReplaysLogAndRewritesDamagedHeader() async throws {
        var (image, _) = try await Self.dirtyImageWithLostBAT()
        image[131072 + 2000] ^= 0xFF  // damage the older header copy
        let io = MemoryIO(image, writable: true)
        #expect(try DiskChecker.check(io: io).problems.count == 2)
        let repaired = try DiskChecker.check(io: io, repair: true)
        #expect(repaired.ok, "\(repaired.problems)")
        #expect(repaired.repaired.count == 2)
        #expect(try VHDXImage.load(from: io).headers.headers.allSatisfy { $0 != nil })
    }

    @Test func convertReadsADirtyImageThroughInMemoryReplayWithoutWritingIt() async throws {
        let (image, _) = try await Self.dirtyImageWithLostBAT()
        let reference = try await readAll(try VHDXDisk(io: MemoryIO(try await Samples.dynamic(seed: 9))))
        let dir = TempDir()
        writeFile(dir.file("dirty.vhdx"), image)
        _ = try await DiskConverter.convert(from: dir.file("dirty.vhdx"), to: dir.file("out.raw"), format: .raw, options: .init(type: .dynamic, virtualSize: 0))
        #expect(readFile(dir.file("out.raw")) == reference)
        #expect(readFile(dir.file("dirty.vhdx")) == image)
    }

    @Test(.enabled(if: qemuImgAvailable))
    func replayedImageReadsIdenticalInQemuWithQemuImg() async throws {
        let (image, _) = try await Self.dirtyImageWithLostBAT()
        let reference = try await readAll(try VHDXDisk(io: MemoryIO(try await Samples.dynamic(seed: 9))))
        let dir = TempDir()
        let path = dir.file("dirty.vhdx")
        writeFile(path, image)
        _ = try VHDXDisk.open(path: path)  // replays
        let conv = try qemuImg("convert", "-f", "vhdx", "-O", "raw", path, dir.file("out.raw"))
        #expect(conv.status == 0, "\(conv.output)")
        #expect(readFile(dir.file("out.raw")) == reference)
    }
}

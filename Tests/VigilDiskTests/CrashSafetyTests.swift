import Foundation
import Testing
@testable import VigilDisk

/// A writer that crashes at seeded random points while allocating blocks leaves a
/// file that opens, replays its log, checks clean, and keeps every flushed write.
@Suite(.timeLimit(.minutes(3))) struct CrashSafetyTests {
    static let diskSize = 16 * 1024 * 1024
    static let chunk = 4096

    /// The content every 4 KiB chunk may legally have after a crash.
    struct Model {
        var flushed: [UInt8]
        var unflushed: [Int: [[UInt8]]] = [:]

        mutating func willWrite(_ data: [UInt8], at offset: Int) {
            for c in stride(from: 0, to: data.count, by: chunk) {
                unflushed[(offset + c) / chunk, default: []].append(Array(data[c..<(c + chunk)]))
            }
        }

        mutating func flushed(_ current: [UInt8]) {
            flushed = current
            unflushed = [:]
        }

        /// Returns the first chunk whose content is neither the flushed one nor a later write.
        func violation(in got: [UInt8]) -> Int? {
            for c in 0..<(got.count / chunk) {
                let r = (c * chunk)..<((c + 1) * chunk)
                if bytesEqual(got, r, flushed, r) { continue }
                if let alts = unflushed[c], alts.contains(where: { bytesEqual(got, r, $0, 0..<chunk) }) { continue }
                return c
            }
            return nil
        }
    }

    func crashLoop(seed: UInt64, blockSize: UInt32, type: DiskType, rounds: Int, qemuEvery: Int?) async throws {
        var rng = SeededRNG(seed: seed)
        let dir = TempDir()
        func fresh() throws -> CrashSimIO.Image {
            let sim = CrashSimIO()
            try VHDXCreator.write(to: sim, options: .init(type: type, virtualSize: UInt64(Self.diskSize), blockSize: blockSize))
            try sim.sync()
            return sim.currentImage
        }
        var image = try fresh()
        var model = Model(flushed: [UInt8](repeating: 0, count: Self.diskSize))
        var crashesDuringOpen = 0, replays = 0
        for round in 0..<rounds {
            if round % 10 == 9 {  // start over, so allocation keeps happening
                image = try fresh()
                model = Model(flushed: [UInt8](repeating: 0, count: Self.diskSize))
            }
            let io = CrashSimIO(image)
            if try VHDXImage.load(from: io).replay != nil { replays += 1 }
            if Int.random(in: 0..<6, using: &rng) == 0 { io.crashAfter = Int.random(in: 0..<4, using: &rng) }
            guard let disk = try Self.openOrCrash(io) else {
                crashesDuringOpen += 1
                image = io.crashImage(using: &rng)
                continue
            }
            io.crashAfter = nil
            let report = try DiskChecker.check(io: io)
            #expect(report.problems.isEmpty, "seed \(seed) round \(round): check after recovery: \(report.problems)")
            let got = try await readAll(disk)
            if let c = model.violation(in: got) {
                Issue.record("seed \(seed) round \(round): chunk \(c) (offset \(c * Self.chunk)) lost a flushed write")
                return
            }
            model.flushed(got)
            if let every = qemuEvery, round % every == 0 {
                let path = dir.file("r\(round).vhdx")
                try CrashSimIO.save(io.currentImage, to: path)
                let check = try qemuImg("check", "-f", "vhdx", path)
                #expect(check.status == 0, "seed \(seed) round \(round): qemu-img check: \(check.output)")
                try? FileManager.default.removeItem(atPath: path)
            }
            // Write until the crash: mostly into unallocated blocks, sometimes flushing.
            io.crashAfter = Int.random(in: 1...40, using: &rng)
            try await Self.writeUntilCrash(disk, current: got, model: &model, rng: &rng)
            // A power loss (some pending writes lost or torn), or a process kill (none lost).
            image = Int.random(in: 0..<3, using: &rng) == 0 ? io.currentImage : io.crashImage(using: &rng)
        }
        #expect(crashesDuringOpen < rounds)
        if type == .dynamic { #expect(replays > 0, "no round recovered through the log: the test did not reach allocation") }
    }

    static func isCrash(_ e: any Error) -> Bool {
        if case let DiskError.io(operation, _) = e, operation == "simulated crash" { return true }
        return false
    }

    static func openOrCrash(_ io: CrashSimIO) throws -> VHDXDisk? {
        do { return try VHDXDisk(io: io) } catch { if isCrash(error) { return nil }; throw error }
    }

    /// Random writes (mostly into unallocated blocks) and flushes until the simulated crash.
    static func writeUntilCrash(_ disk: VHDXDisk, current start: [UInt8], model: inout Model, rng: inout SeededRNG) async throws {
        var current = start
        while true {
            do {
                if Int.random(in: 0..<5, using: &rng) == 0 {
                    try await disk.flush()
                    model.flushed(current)
                    continue
                }
                let chunks = Int.random(in: 1...64, using: &rng)
                let at = Int.random(in: 0...(diskSize / chunk - chunks), using: &rng) * chunk
                let data = rng.bytes(chunks * chunk)
                model.willWrite(data, at: at)
                try await disk.write(data, at: UInt64(at))
                current.replaceSubrange(at..<(at + data.count), with: data)
            } catch {
                if isCrash(error) { return }
                throw error
            }
        }
    }

    @Test(arguments: [(UInt32(1) << 20, DiskType.dynamic), (UInt32(2) << 20, DiskType.dynamic), (UInt32(1) << 20, DiskType.fixed)])
    func crashesWhileAllocatingLoseNoFlushedWriteAndRecoverClean(_ blockSize: UInt32, _ type: DiskType) async throws {
        try await crashLoop(seed: testSeed(0xC0FFEE) &+ UInt64(blockSize), blockSize: blockSize, type: type,
                            rounds: quick ? 20 : 60, qemuEvery: nil)
    }

    @Test(.enabled(if: qemuImgAvailable))
    func crashRecoveredImagesPassQemuImgCheckWithQemuImg() async throws {
        try await crashLoop(seed: testSeed(0xBADC0DE), blockSize: 1 << 20, type: .dynamic, rounds: quick ? 10 : 30, qemuEvery: 3)
    }

    @Test func aWriteThatFailsMidwayRefusesFurtherUseUntilReopened() async throws {
        let io = CrashSimIO()
        try VHDXCreator.write(to: io, options: .init(type: .dynamic, virtualSize: 8 << 20, blockSize: 1 << 20))
        let disk = try VHDXDisk(io: io)
        io.crashAfter = 3  // header update (write, sync), block extension, then the log entry fails
        await #expect(throws: DiskError.self) { try await disk.write([UInt8](repeating: 1, count: 4096), at: 0) }
        io.revive()
        // The device works again, but the disk's BAT may be ahead of the file: it must refuse.
        await #expect(throws: DiskError.io(operation: "simulated crash", errno: EIO)) { try await disk.flush() }
        await #expect(throws: DiskError.io(operation: "simulated crash", errno: EIO)) { try await disk.write([2], at: 0) }
        let reopened = try VHDXDisk(io: io)
        try await reopened.write([3], at: 0)
        #expect(try await reopened.read(at: 0, count: 2) == [3, 0])
    }
}

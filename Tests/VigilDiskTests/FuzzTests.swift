import Foundation
import Testing
@testable import VigilDisk

/// A seeded mutation loop over real images: the parser, the checker and reads through
/// an opened disk must end in a value or a `DiskError`, never a crash, never a write.
@Suite(.timeLimit(.minutes(3))) struct FuzzTests {
    /// Byte ranges holding the structures, where mutations are aimed.
    static let targets: [Range<Int>] = [
        0..<16, 65536..<65616, 131072..<131152, 196608..<196720, 262144..<262256,
        (1 << 20)..<((1 << 20) + 64 + 3 * 32), (1 << 20) + 4096..<(1 << 20) + 4112,
        (2 << 20)..<((2 << 20) + 200), ((2 << 20) + 65536)..<((2 << 20) + 65536 + 40),
        (3 << 20)..<((3 << 20) + 80),
    ]

    @Test func mutatedImagesNeverCrashTheParser() async throws {
        let seed = testSeed(0xF022)
        var rng = SeededRNG(seed: seed)
        let clean = try await Samples.dynamic(seed: 5)
        let dirty = try await LogReplayTests.dirtyImageWithLostBAT().image
        var corpus = [clean, dirty]
        if let q = try? qemuCreatedImage() { corpus.append(q) }
        let budget: Double = quick ? 8 : 40
        let start = Date()
        var iterations = 0, opened = 0
        while Date().timeIntervalSince(start) < budget {
            iterations += 1
            var b = corpus[Int.random(in: 0..<corpus.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let r = Self.targets[Int.random(in: 0..<Self.targets.count, using: &rng)]
                let at = Int.random(in: r, using: &rng)
                guard at < b.count else { continue }
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: b[at] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
                case 1: b[at] = UInt8.random(in: 0...255, using: &rng)
                case 2: b[at] = [0, 0xFF, 0x7F, 0x80][Int.random(in: 0..<4, using: &rng)]
                default: if at + 8 <= b.count { b.put64(UInt64.random(in: 0...UInt64.max, using: &rng) >> UInt64.random(in: 0..<64, using: &rng), at: at) }
                }
            }
            if Int.random(in: 0..<3, using: &rng) > 0 { Samples.fixChecksums(&b) }
            if Int.random(in: 0..<12, using: &rng) == 0 { b.removeLast(Int.random(in: 0..<b.count, using: &rng)) }
            let io = MemoryIO(b)
            _ = try? DiskChecker.check(io: io)
            if let disk = try? VHDXDisk(io: io, replayInMemory: true) {
                opened += 1
                let size = await disk.size()
                for _ in 0..<4 {
                    let len = Int.random(in: 1...(256 * 1024), using: &rng)
                    guard UInt64(len) <= size else { break }
                    _ = try? await disk.read(at: UInt64.random(in: 0...(size - UInt64(len)), using: &rng), count: len)
                }
            }
            _ = try? DiskInfo.inspect(io: io)
            #expect(io.writes == 0, "seed \(seed) iteration \(iterations): a write was attempted")
        }
        #expect(iterations > 50, "fuzz ran only \(iterations) iterations")
        #expect(opened > 0, "no mutated image opened: mutations too destructive to reach deep code")
    }

    func qemuCreatedImage() throws -> [UInt8]? {
        guard qemuImgAvailable else { return nil }
        let dir = TempDir()
        writeFile(dir.file("s.raw"), patternedRaw(size: 6 << 20, seed: 11, fill: 0.5))
        guard try qemuImg("convert", "-f", "raw", "-O", "vhdx", "-o", "block_size=1M", dir.file("s.raw"), dir.file("q.vhdx")).status == 0 else { return nil }
        return readFile(dir.file("q.vhdx"))
    }
}

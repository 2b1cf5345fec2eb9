import Foundation
@testable import VigilDisk

/// True when Debian's qemu-img is installed; tests named `…WithQemuImg` need it.
let qemuImgAvailable: Bool = FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img")

/// `VIGIL_QUICK=1` scales iteration counts down.
let quick: Bool = ProcessInfo.processInfo.environment["VIGIL_QUICK"] == "1"

/// The seed for randomized tests: `VIGIL_SEED` or a fixed default, printed on failure by callers.
func testSeed(_ fallback: UInt64) -> UInt64 {
    ProcessInfo.processInfo.environment["VIGIL_SEED"].flatMap { UInt64($0) } ?? fallback
}

/// SplitMix64: small, fast, seeded.
struct SeededRNG: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: (n + 7) / 8 * 8)
        out.withUnsafeMutableBytes { b in
            for w in 0..<(b.count / 8) { b.storeBytes(of: next(), toByteOffset: w * 8, as: UInt64.self) }
        }
        out.removeLast(out.count - n)
        return out
    }
}

/// A fresh directory removed when the value is released.
final class TempDir {
    let path: String
    init() {
        path = NSTemporaryDirectory() + "vigil-disk-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { path + "/" + name }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

struct ProcessResult {
    var status: Int32
    var output: String
}

/// Runs a program to completion, capturing stdout and stderr together.
@discardableResult
func run(_ exe: String, _ args: [String]) throws -> ProcessResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = args
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = pipe
    try p.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return ProcessResult(status: p.terminationStatus, output: String(decoding: data, as: UTF8.self))
}

func qemuImg(_ args: String...) throws -> ProcessResult { try run("/usr/bin/qemu-img", args) }

func readFile(_ path: String) -> [UInt8] { [UInt8](FileManager.default.contents(atPath: path) ?? Data()) }

func writeFile(_ path: String, _ bytes: [UInt8]) { _ = FileManager.default.createFile(atPath: path, contents: Data(bytes)) }

/// A raw image of `size` bytes with seeded random data in some 64 KiB chunks and zeros elsewhere.
func patternedRaw(size: Int, seed: UInt64, fill: Double = 0.3) -> [UInt8] {
    var rng = SeededRNG(seed: seed)
    var out = [UInt8](repeating: 0, count: size)
    let chunk = 64 * 1024
    for c in stride(from: 0, to: size, by: chunk) where Double.random(in: 0..<1, using: &rng) < fill {
        let n = min(chunk, size - c)
        out.replaceSubrange(c..<(c + n), with: rng.bytes(n))
    }
    return out
}

/// Reads a whole disk through its `Disk` interface in 4 MiB pieces.
func readAll(_ disk: any Disk) async throws -> [UInt8] {
    let size = await disk.size()
    var out: [UInt8] = []
    out.reserveCapacity(Int(size))
    var off: UInt64 = 0
    while off < size {
        let n = Int(min(4 << 20, size - off))
        out += try await disk.read(at: off, count: n)
        off += UInt64(n)
    }
    return out
}

/// Fast byte comparison of two equally long ranges (debug builds compare slices slowly).
func bytesEqual(_ a: [UInt8], _ ar: Range<Int>, _ b: [UInt8], _ br: Range<Int>) -> Bool {
    guard ar.count == br.count else { return false }
    return a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in memcmp(pa.baseAddress! + ar.lowerBound, pb.baseAddress! + br.lowerBound, ar.count) == 0 } }
}

/// Index of the first differing byte, for failure messages.
func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
    if a.count != b.count { return min(a.count, b.count) }
    if bytesEqual(a, 0..<a.count, b, 0..<b.count) { return nil }
    return a.indices.first { a[$0] != b[$0] }
}

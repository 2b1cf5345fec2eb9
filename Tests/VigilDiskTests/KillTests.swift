import Foundation
import Testing
@testable import VigilDisk

/// A real writer process (this test binary re-executed) killed with SIGKILL at a seeded
/// random moment while allocating blocks: the file opens, replays its log, checks clean,
/// and holds every write the writer had flushed.
@Suite(.timeLimit(.minutes(3))) struct KillTests {
    static let diskSize = 32 << 20
    static let env = ProcessInfo.processInfo.environment

    /// The writer's operations, the same in both processes: 4 KiB-aligned writes of 4-64 KiB.
    static func operation(_ seed: UInt64, _ i: Int) -> (offset: Int, data: [UInt8]) {
        var rng = SeededRNG(seed: seed &* 1_000_003 &+ UInt64(i))
        let len = Int.random(in: 1...16, using: &rng) * 4096
        let offset = Int.random(in: 0...((diskSize - len) / 4096), using: &rng) * 4096
        return (offset, rng.bytes(len))
    }

    /// Child side: runs only when re-executed by `killedWriterLosesNoFlushedWrite`.
    @Test(.enabled(if: env["VIGIL_DISK_KILL_WRITER"] != nil))
    func killWriterChildProcess() async throws {
        let path = Self.env["VIGIL_DISK_KILL_WRITER"]!, seed = UInt64(Self.env["VIGIL_DISK_KILL_SEED"]!)!
        let progress = FileHandle(forWritingAtPath: path + ".progress")!
        let disk = try VHDXDisk.open(path: path)
        progress.write(Data("ready\n".utf8))
        for i in 0... {
            let op = Self.operation(seed, i)
            try await disk.write(op.data, at: UInt64(op.offset))
            if i % 4 == 3 {
                try await disk.flush()
                progress.write(Data("\(i + 1)\n".utf8))  // every op before i + 1 is flushed
                try progress.synchronize()
            }
        }
    }

    @Test func killedWriterLosesNoFlushedWriteAndRecoversClean() async throws {
        let seed = testSeed(0x4B111)
        var rng = SeededRNG(seed: seed)
        let dir = TempDir()
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        var totalFlushed = 0, replays = 0
        for round in 0..<(quick ? 3 : 8) {
            let path = dir.file("k\(round).vhdx")
            try VHDXCreator.create(path: path, options: .init(type: .dynamic, virtualSize: UInt64(Self.diskSize), blockSize: 1 << 20))
            FileManager.default.createFile(atPath: path + ".progress", contents: nil)
            let roundSeed = seed &+ UInt64(round)
            let child = Process()
            child.executableURL = URL(fileURLWithPath: exe)
            child.arguments = ["--testing-library", "swift-testing", "--filter", "killWriterChildProcess"]
            child.environment = ProcessInfo.processInfo.environment.merging(
                ["VIGIL_DISK_KILL_WRITER": path, "VIGIL_DISK_KILL_SEED": "\(roundSeed)"]) { $1 }
            child.standardOutput = FileHandle.nullDevice
            child.standardError = FileHandle.nullDevice
            try child.run()
            let deadline = Date().addingTimeInterval(60)
            while !(String(decoding: readFile(path + ".progress"), as: UTF8.self).hasPrefix("ready")) && Date() < deadline {
                try await Task.sleep(for: .milliseconds(5))
            }
            try await Task.sleep(for: .milliseconds(Int.random(in: 10...250, using: &rng)))
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
            let lines = String(decoding: readFile(path + ".progress"), as: UTF8.self).split(separator: "\n")
            #expect(lines.first == "ready", "round \(round): the writer never started")
            let flushed = lines.dropFirst().compactMap { Int($0) }.last ?? 0

            // What each 4 KiB chunk may hold: the flushed state, or any later write.
            var model = CrashSafetyTests.Model(flushed: [UInt8](repeating: 0, count: Self.diskSize))
            var state = model.flushed
            for i in 0..<flushed {
                let op = Self.operation(roundSeed, i)
                state.replaceSubrange(op.offset..<(op.offset + op.data.count), with: op.data)
            }
            model.flushed(state)
            for i in flushed..<(flushed + 8) {
                let op = Self.operation(roundSeed, i)
                model.willWrite(op.data, at: op.offset)
            }
            totalFlushed += flushed
            if try DiskInfo.inspect(path: path).logNeedsReplay == true { replays += 1 }
            let disk = try VHDXDisk.open(path: path)  // replays the log
            let got = try await readAll(disk)
            try await disk.close()
            if let c = model.violation(in: got) {
                Issue.record("seed \(seed) round \(round): chunk \(c) lost a flushed write (\(flushed) ops flushed)")
            }
            let report = DiskChecker.check(path: path)
            #expect(report.ok, "seed \(seed) round \(round): \(report.problems)")
            if qemuImgAvailable {
                let check = try qemuImg("check", "-f", "vhdx", path)
                #expect(check.status == 0, "seed \(seed) round \(round): \(check.output)")
            }
        }
        #expect(totalFlushed > 0, "no writer flushed anything before its kill: the test checked nothing")
        #expect(replays > 0, "no killed writer left a log to replay: the test missed allocation")
        print("kill test: seed \(seed), \(totalFlushed) flushed ops, \(replays) replays")
    }
}

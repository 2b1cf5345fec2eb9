import Foundation
import VigilDisk

/// VHDX I/O side by side with QEMU's own vhdx driver (`qemu-img bench`, queue depth 1,
/// writeback cache) on the same access pattern and the same freshly created files:
/// sequential 1 MiB and scattered 4 KiB reads and writes, fixed and dynamic, plus raw
/// rows for reference. Writes run on a new image (dynamic ones allocate as they go),
/// reads on the image the write left.
struct VHDXBench: Bench {
    let name = "vhdx"

    func run(quick: Bool) async throws -> [BenchRecord] {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/qemu-img") else {
            throw BenchSkip(reason: "qemu-img not installed (Debian package qemu-utils)")
        }
        let dir = NSTemporaryDirectory() + "vigil-bench-vhdx-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let size: UInt64 = quick ? 64 << 20 : 512 << 20
        let randomCount = quick ? 2000 : 20000
        let runs = quick ? 1 : 3
        var records: [BenchRecord] = []
        for kind in ["fixed", "dynamic", "raw"] {
            for (label, write, req, count) in [("seq", true, 1 << 20, 0), ("seq", false, 1 << 20, 0), ("rand", true, 4096, randomCount), ("rand", false, 4096, randomCount)] {
                let load = label == "seq" ? DiskWorkload.sequential(write: write, requestSize: req, diskSize: size)
                    : DiskWorkload.scattered(write: write, requestSize: req, count: count, diskSize: size)
                var ours: [Double] = [], theirs: [Double] = []
                for r in 0..<runs {
                    for side in 0..<2 {
                        let path = "\(dir)/\(kind)-\(side).img"
                        if write || r == 0 && !FileManager.default.fileExists(atPath: path) {
                            try? FileManager.default.removeItem(atPath: path)
                            try create(path: path, kind: kind, size: size)
                        }
                        if side == 0 {
                            let disk = try DiskImage.open(path: path, format: kind == "raw" ? .raw : .vhdx, writable: true)
                            ours.append(try await load.run(on: disk) / Double(1 << 20))
                            try await disk.close()
                        } else {
                            theirs.append(try qemuBench(load, path: path, format: kind == "raw" ? .raw : .vhdx))
                        }
                    }
                }
                let value = median(ours), peer = median(theirs)
                records.append(BenchRecord(bench: "vhdx.\(label).\(write ? "write" : "read").\(kind)", metric: "MiB/s",
                                           value: value, peer: "qemu-img bench", peerValue: peer, ratio: value / peer,
                                           goal: kind == "raw" ? "reference" : ">= 1.0", runs: runs))
            }
        }
        return records
    }

    /// A fresh image made by qemu-img, the same file for both sides.
    private func create(path: String, kind: String, size: UInt64) throws {
        let args = kind == "raw" ? ["create", "-f", "raw", path, "\(size)"]
            : ["create", "-f", "vhdx", "-o", "subformat=\(kind),block_size=32M", path, "\(size)"]
        let (status, out) = try execute("/usr/bin/qemu-img", args)
        guard status == 0 else { throw BenchSkip(reason: "qemu-img create failed: \(out)") }
    }

    /// Runs `qemu-img bench` and returns MiB/s from its "Run completed in N seconds".
    private func qemuBench(_ load: DiskWorkload, path: String, format: DiskFormat) throws -> Double {
        let (status, out) = try execute("/usr/bin/qemu-img", load.qemuImgBenchArguments(path: path, format: format))
        guard status == 0, let r = out.range(of: "Run completed in "),
              let secs = Double(out[r.upperBound...].prefix { $0.isNumber || $0 == "." }), secs > 0 else {
            throw BenchSkip(reason: "qemu-img bench failed: \(out)")
        }
        return Double(load.count * load.requestSize) / secs / Double(1 << 20)
    }

    private func execute(_ exe: String, _ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }
}

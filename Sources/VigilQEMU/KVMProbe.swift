#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Decides whether KVM really works on this host, within a time limit.
///
/// Opening /dev/kvm is not enough: on some hosts (nested, paravirtual KVM) it opens,
/// then guests hang or QEMU aborts. So the probe boots a 64 KiB firmware whose reset
/// vector writes one byte to an `isa-debug-exit` port: QEMU exits with status
/// `(0x2A << 1) | 1 = 85` only if the guest's first instructions executed.
public enum KVMProbe {
    public enum Result: Sendable, Equatable {
        case kvm
        /// KVM is unusable; why, in words.
        case tcg(reason: String)
    }

    /// Runs the probe with `-accel kvm`; returns within about `timeout`.
    public static func run(binary binaryOverride: QEMUBinary? = nil, timeout: Duration = .seconds(3)) async -> Result {
        guard access("/dev/kvm", R_OK | W_OK) == 0 else {
            return .tcg(reason: "/dev/kvm is missing or not accessible")
        }
        let binary: QEMUBinary
        do {
            binary = try binaryOverride ?? QEMUBinary.locate()
        } catch {
            return .tcg(reason: "\(error)")
        }
        switch await guestRuns(accelerator: .kvm, binary: binary, timeout: timeout) {
        case .ran: return .kvm
        case .failed(let why): return .tcg(reason: "KVM unusable: \(why)")
        }
    }

    enum Outcome: Equatable {
        case ran
        case failed(String)
    }

    static let exitValue: UInt8 = 0x2A

    /// The firmware: 64 KiB (QEMU wants a multiple of 64 KiB), code at the reset vector
    /// (0xFFFF0, the last 16 bytes): `mov al, 0x2A; out 0xF4, al; hlt; jmp hlt`.
    static func firmware() -> [UInt8] {
        var rom = [UInt8](repeating: 0xF4, count: 65536)
        let code: [UInt8] = [0xB0, exitValue, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]
        rom.replaceSubrange(0xFFF0..<(0xFFF0 + code.count), with: code)
        return rom
    }

    /// Boots the probe firmware with `accelerator`; kills QEMU at `timeout`.
    static func guestRuns(accelerator: QEMUCommand.Accelerator, binary: QEMUBinary, timeout: Duration) async -> Outcome {
        let base = FileManager.default.temporaryDirectory.path + "/vigil-kvm-probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let romPath = base + ".rom"
        let logPath = base + ".log"
        defer {
            try? FileManager.default.removeItem(atPath: romPath)
            try? FileManager.default.removeItem(atPath: logPath)
        }
        guard FileManager.default.createFile(atPath: romPath, contents: Data(firmware())) else {
            return .failed("cannot write probe firmware to \(romPath)")
        }
        let arguments = [
            binary.path, "-machine", "pc", "-accel", accelerator.rawValue, "-m", "16",
            "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-bios", romPath, "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
        ]
        let pid: pid_t
        do {
            pid = try ProcessTools.spawn(executable: binary.path, arguments: arguments, outputPath: logPath, newSession: true)
        } catch {
            return .failed("\(error)")
        }
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = ProcessTools.reap(pid) {
                if status == .exited(Int32(exitValue) << 1 | 1) { return .ran }
                let output = ProcessTools.tail(of: logPath, limit: 1000)
                return .failed("QEMU -accel \(accelerator.rawValue) ended (\(status)) before the guest ran\(output.isEmpty ? "" : ": " + output)")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        Glibc.kill(pid, SIGKILL)
        for _ in 0..<100 where ProcessTools.reap(pid) == nil {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let output = ProcessTools.tail(of: logPath, limit: 1000)
        return .failed("guest code did not run within \(timeout) under -accel \(accelerator.rawValue) (hung)\(output.isEmpty ? "" : ": " + output)")
    }
}

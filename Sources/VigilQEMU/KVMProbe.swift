#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// Decides whether KVM really works on this host, within a time limit.
///
/// Opening /dev/kvm is not enough, and neither is running a few real-mode
/// instructions: on the paravirtual KVM of the lab machines a reset-vector-only probe
/// passed while every real guest hung (100 % system time, no output). So the probe
/// boots a 64 KiB firmware that does what a kernel does first: enters protected mode,
/// builds page tables, enables PAE, long mode and paging, writes and reads back RAM in
/// 64-bit mode, then writes one byte to an `isa-debug-exit` port. QEMU exits with
/// status `(0x2A << 1) | 1 = 85` only if all of that executed. On the lab machines
/// it hangs at the switch to protected mode under `-accel kvm` and passes under TCG.
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

    /// The firmware: 64 KiB (QEMU wants a multiple of 64 KiB), loaded at 0xF0000;
    /// the reset vector (offset 0xFFF0) jumps to `code` at offset 0.
    static func firmware() -> [UInt8] {
        var rom = [UInt8](repeating: 0, count: 65536)
        rom.replaceSubrange(0..<code.count, with: code)
        let resetVector: [UInt8] = [0xEA, 0x00, 0x00, 0x00, 0xF0]  // ljmp $0xf000, $0
        rom.replaceSubrange(0xFFF0..<(0xFFF0 + resetVector.count), with: resetVector)
        return rom
    }

    /// Assembled (GNU as, `ld -Ttext=0xf0000 --oformat binary`) from:
    ///
    ///         .code16
    ///         cli
    ///         lgdtl %cs:(gdtdesc - 0xf0000)
    ///         movl %cr0, %eax; orl $1, %eax; movl %eax, %cr0     # protected mode
    ///         ljmpl $0x08, $pm32
    ///         .code32
    ///     pm32: movw $0x10, %ax; movw %ax, %ds; movw %ax, %es; movw %ax, %ss
    ///         movl $0x7000, %esp
    ///         movl $0x1000, %edi; xorl %eax, %eax; movl $3072, %ecx; rep stosl
    ///         movl $0x2003, 0x1000                              # PML4[0] -> PDPT
    ///         movl $0x3003, 0x2000                              # PDPT[0] -> PD
    ///         movl $0x0083, 0x3000                              # PD[0]: 2 MiB page at 0
    ///         movl %cr4, %eax; orl $0x20, %eax; movl %eax, %cr4  # PAE
    ///         movl $0x1000, %eax; movl %eax, %cr3
    ///         movl $0xC0000080, %ecx; rdmsr; orl $0x100, %eax; wrmsr  # EFER.LME
    ///         movl %cr0, %eax; orl $0x80000000, %eax; movl %eax, %cr0  # paging
    ///         ljmp $0x18, $lm64
    ///         .code64
    ///     lm64: movabsq $0x123456789abcdef0, %rax
    ///         movq %rax, 0x5000; cmpq 0x5000, %rax; jne fail
    ///         movb $0x2A, %al; outb %al, $0xf4
    ///     1:  hlt; jmp 1b
    ///     fail: movb $0x01, %al; outb %al, $0xf4; jmp 1b
    ///         .align 8
    ///     gdt: .quad 0, 0x00cf9a000000ffff, 0x00cf92000000ffff, 0x00af9a000000ffff
    ///     gdtdesc: .word gdtdesc - gdt - 1; .long gdt
    static let code: [UInt8] = [
        0xFA, 0x2E, 0x66, 0x0F, 0x01, 0x16, 0xD0, 0x00, 0x0F, 0x20, 0xC0, 0x66, 0x83, 0xC8, 0x01, 0x0F,
        0x22, 0xC0, 0x66, 0xEA, 0x1A, 0x00, 0x0F, 0x00, 0x08, 0x00, 0x66, 0xB8, 0x10, 0x00, 0x8E, 0xD8,
        0x8E, 0xC0, 0x8E, 0xD0, 0xBC, 0x00, 0x70, 0x00, 0x00, 0xBF, 0x00, 0x10, 0x00, 0x00, 0x31, 0xC0,
        0xB9, 0x00, 0x0C, 0x00, 0x00, 0xF3, 0xAB, 0xC7, 0x05, 0x00, 0x10, 0x00, 0x00, 0x03, 0x20, 0x00,
        0x00, 0xC7, 0x05, 0x00, 0x20, 0x00, 0x00, 0x03, 0x30, 0x00, 0x00, 0xC7, 0x05, 0x00, 0x30, 0x00,
        0x00, 0x83, 0x00, 0x00, 0x00, 0x0F, 0x20, 0xE0, 0x83, 0xC8, 0x20, 0x0F, 0x22, 0xE0, 0xB8, 0x00,
        0x10, 0x00, 0x00, 0x0F, 0x22, 0xD8, 0xB9, 0x80, 0x00, 0x00, 0xC0, 0x0F, 0x32, 0x0D, 0x00, 0x01,
        0x00, 0x00, 0x0F, 0x30, 0x0F, 0x20, 0xC0, 0x0D, 0x00, 0x00, 0x00, 0x80, 0x0F, 0x22, 0xC0, 0xEA,
        0x86, 0x00, 0x0F, 0x00, 0x18, 0x00, 0x48, 0xB8, 0xF0, 0xDE, 0xBC, 0x9A, 0x78, 0x56, 0x34, 0x12,
        0x48, 0x89, 0x04, 0x25, 0x00, 0x50, 0x00, 0x00, 0x48, 0x3B, 0x04, 0x25, 0x00, 0x50, 0x00, 0x00,
        0x75, 0x07, 0xB0, 0x2A, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD, 0xB0, 0x01, 0xE6, 0xF4, 0xEB, 0xF7, 0x90,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xCF, 0x00,
        0xFF, 0xFF, 0x00, 0x00, 0x00, 0x92, 0xCF, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x9A, 0xAF, 0x00,
        0x1F, 0x00, 0xB0, 0x00, 0x0F,
    ]

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

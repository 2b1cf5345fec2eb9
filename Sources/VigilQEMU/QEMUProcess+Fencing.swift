#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// What a fence (vigil-watchdog) needs to find and kill a VM's QEMU without a QMP
/// connection, and without ever mistaking a reused pid for it.
extension QEMUProcess {
    /// One running QEMU process: the pid and its start time (clock ticks after boot),
    /// which together name the process for good.
    public struct Identity: Sendable, Equatable {
        public var pid: pid_t
        public var startTime: UInt64

        public init(pid: pid_t, startTime: UInt64) {
            self.pid = pid
            self.startTime = startTime
        }
    }

    /// The live QEMU of VM `name` that `pidfile` names: its argv[0] is a `qemu-system-*`
    /// and it runs with `-name name`, checked through /proc.
    /// - Throws: `QEMUError` `.notRunning` (no pidfile, no pid in it, process gone),
    ///   `.notThisVM` (the pid now belongs to another program or another VM).
    public static func identify(pidfile: String, name: String) throws -> Identity {
        let (pid, stat) = try findRunning(pidfile: pidfile, name: name)
        return Identity(pid: pid, startTime: stat.startTime)
    }

    /// Every running QEMU whose `-pidfile` is `<vmsDirectory>/<its -name>/qemu.pid` (how
    /// vigild launches them), found from /proc alone: no read of the state directory,
    /// whose disk may be the very thing that hangs when a host needs fencing.
    public static func running(withPidfilesIn vmsDirectory: String) -> [(vm: String, process: Identity)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        var found: [(vm: String, process: Identity)] = []
        for pid in entries.compactMap({ pid_t($0) }) where pid != getpid() {
            guard let argv = ProcessTools.commandLine(pid), isQEMU(argv), let vm = vmName(inArguments: argv),
                  let flag = argv.firstIndex(of: "-pidfile"), flag + 1 < argv.count,
                  argv[flag + 1] == "\(vmsDirectory)/\(vm)/qemu.pid",
                  let stat = ProcessTools.stat(pid), !stat.hasEnded
            else { continue }
            found.append((vm, Identity(pid: pid, startTime: stat.startTime)))
        }
        return found
    }

    /// Whether the process has ended: gone, a zombie, or its pid now names another process.
    public static func hasEnded(_ process: Identity) -> Bool {
        guard let stat = ProcessTools.stat(process.pid) else { return true }
        return stat.startTime != process.startTime || stat.hasEnded
    }
}

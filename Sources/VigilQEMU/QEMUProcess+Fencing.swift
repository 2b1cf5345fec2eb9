#if canImport(Glibc)
import Glibc
#endif

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

    /// Whether the process has ended: gone, a zombie, or its pid now names another process.
    public static func hasEnded(_ process: Identity) -> Bool {
        guard let stat = ProcessTools.stat(process.pid) else { return true }
        return stat.startTime != process.startTime || stat.hasEnded
    }
}

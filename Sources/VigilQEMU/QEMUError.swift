/// Why starting, finding or stopping a QEMU (or a tap) failed. Callers switch on
/// `code`; new codes break no caller. `output` holds the tail of QEMU's own stderr
/// when there is one: it usually says exactly what was wrong.
public struct QEMUError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Code: String, Equatable, Sendable {
        /// No `qemu-system-x86_64` on this host: install qemu-system-x86.
        case binaryMissing
        /// The process could not be started at all.
        case launchFailed
        /// QEMU exited before its QMP socket answered (bad option, missing kernel, bad tap…).
        case exitedEarly
        /// QEMU neither answered on QMP nor exited in time; it was killed.
        case startTimedOut
        /// A pidfile names a QEMU for this VM that is still running.
        case alreadyRunning
        /// No running process behind the pidfile.
        case notRunning
        /// The pidfile's process is not this VM's QEMU (pid reused, other VM).
        case notThisVM
        /// The process did not exit in time after a signal.
        case killTimedOut
        /// A host command (`ip`) failed.
        case commandFailed
    }

    public var code: Code
    public var message: String
    public var vm: String?
    public var pid: Int32?
    /// QEMU's stderr (tail) or the failed command's output.
    public var output: String

    public init(_ code: Code, _ message: String, vm: String? = nil, pid: Int32? = nil, output: String = "") {
        self.code = code
        self.message = message
        self.vm = vm
        self.pid = pid
        self.output = output
    }

    public var description: String {
        var s = "QEMU \(code.rawValue)"
        if let vm { s += " [vm \(vm)]" }
        if let pid { s += " [pid \(pid)]" }
        s += ": \(message)"
        if !output.isEmpty { s += "\n" + output }
        return s
    }
}

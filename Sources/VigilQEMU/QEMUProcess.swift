#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Synchronization

/// One running QEMU: its pid and its QMP connection.
///
/// QEMU is started in its own session (`setsid`) under `nice -n 10`, with stdin from
/// /dev/null and stdout/stderr appended to a file (never a pipe: a pipe would break,
/// and could kill QEMU, when vigild dies). Nothing ties its life to vigild's; after
/// a vigild restart, `adopt` finds it again from its pidfile. (The service manager
/// must not kill the whole cgroup either: systemd `KillMode=process` for vigild.)
///
/// Exit detection: for our own child `waitpid(WNOHANG)` (which also reaps it); for an
/// adopted process /proc is polled, with the start time from /proc/PID/stat so a
/// reused pid is never mistaken for the VM.
public final class QEMUProcess: Sendable {
    public enum ExitStatus: Sendable, Equatable {
        case exited(Int32)
        case signaled(Int32)
        /// Not our child: it ended, but its status went to its parent.
        case unknown
    }

    public struct Signal: RawRepresentable, Sendable, Equatable {
        public var rawValue: Int32
        public init(rawValue: Int32) { self.rawValue = rawValue }
        public static let sigkill = Signal(rawValue: SIGKILL)
        public static let sigterm = Signal(rawValue: SIGTERM)
    }

    public let name: String
    public let pid: pid_t
    public let qmp: QMPClient
    /// Whether this process is our child (launched by us, or adopted while still ours).
    public let isChild: Bool
    /// Launch to QMP ready (nil when adopted).
    public let startupDuration: Duration?
    /// Where QEMU's stdout and stderr go (nil when adopted).
    public let outputLog: String?
    private let startTime: UInt64
    private let exit = Mutex<ExitStatus?>(nil)

    init(name: String, pid: pid_t, qmp: QMPClient, isChild: Bool, startTime: UInt64, startupDuration: Duration?, outputLog: String?) {
        self.name = name
        self.pid = pid
        self.qmp = qmp
        self.isChild = isChild
        self.startTime = startTime
        self.startupDuration = startupDuration
        self.outputLog = outputLog
    }

    /// Starts QEMU for `command` (after `adaptedToHost()`) and returns once its QMP
    /// socket answered. If QEMU exits first, the error carries its stderr.
    ///
    /// - Parameters:
    ///   - outputLog: QEMU's stdout/stderr, appended (default: the pidfile's or the
    ///     QMP socket's path with `.log`).
    ///   - niceness: passed to `nice -n` (0 runs QEMU directly).
    ///   - timeout: launch to QMP ready; on expiry QEMU is killed.
    public static func launch(
        _ command: QEMUCommand,
        binary: QEMUBinary? = nil,
        outputLog: String? = nil,
        niceness: Int = 10,
        timeout: Duration = .seconds(30),
        logger: Logger
    ) async throws -> QEMUProcess {
        let binary = try binary ?? QEMUBinary.locate()
        let command = command.adaptedToHost()
        let outputLog = outputLog ?? ((command.pidfile ?? command.qmpSocket) + ".log")
        for path in [command.qmpSocket, command.pidfile, command.serialLog, outputLog].compactMap({ $0 }) {
            try? FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        }
        // Never touch a running QEMU's files: refuse while the pidfile names a live QEMU
        // of this VM. (A stale QMP socket needs no cleanup: QEMU unlinks it and binds anew.)
        if let pidfile = command.pidfile, let running = try? findRunning(pidfile: pidfile, name: command.name) {
            throw QEMUError(
                .alreadyRunning, "a QEMU for this VM is still running (pidfile \(pidfile)); adopt or kill it first",
                vm: command.name, pid: running.pid)
        }

        var argv = [binary.path] + command.arguments
        var executable = binary.path
        if niceness != 0, let nice = ProcessTools.which("nice") {
            argv = [nice, "-n", String(niceness)] + argv
            executable = nice
        }
        let clock = ContinuousClock()
        let started = clock.now
        let pid = try ProcessTools.spawn(executable: executable, arguments: argv, outputPath: outputLog, newSession: true)
        let startTime = ProcessTools.stat(pid)?.startTime ?? 0
        let meta: Logger.Metadata = ["vigil.vm": "\(command.name)", "vigil.qemu.pid": "\(pid)"]
        logger.debug("QEMU started", metadata: meta)

        func fail(_ code: QEMUError.Code, _ message: String) async -> QEMUError {
            if ProcessTools.reap(pid) == nil {
                Glibc.kill(pid, SIGKILL)
                for _ in 0..<100 where ProcessTools.reap(pid) == nil {
                    try? await Task.sleep(for: .milliseconds(20))
                }
            }
            return QEMUError(code, message, vm: command.name, pid: pid, output: ProcessTools.tail(of: outputLog))
        }

        let deadline = started + timeout
        while true {
            if let status = ProcessTools.reap(pid) {
                let error = QEMUError(
                    .exitedEarly, "QEMU exited (\(status)) before QMP answered; its output follows",
                    vm: command.name, pid: pid, output: ProcessTools.tail(of: outputLog))
                logger.warning("QEMU exited at start", metadata: meta.merging(["vigil.error": "\(error.output)"]) { $1 })
                throw error
            }
            if Task.isCancelled {
                throw await fail(.startTimedOut, "launch cancelled")
            }
            let remaining = deadline - clock.now
            if remaining <= .zero {
                throw await fail(.startTimedOut, "QMP did not answer within \(timeout); QEMU killed")
            }
            if FileManager.default.fileExists(atPath: command.qmpSocket) {
                do {
                    let qmp = try await QMPClient.connect(
                        socketPath: command.qmpSocket, timeout: min(remaining, .seconds(10)), logger: logger)
                    let elapsed = clock.now - started
                    logger.debug("QEMU QMP ready", metadata: meta.merging(["vigil.elapsed": "\(elapsed)"]) { $1 })
                    return QEMUProcess(
                        name: command.name, pid: pid, qmp: qmp, isChild: true, startTime: startTime,
                        startupDuration: elapsed, outputLog: outputLog)
                } catch {
                    // Not listening yet, no greeting yet, or QEMU is dying: the next round
                    // sees an exit or the deadline, and never leaves QEMU running.
                    logger.trace("QMP not ready", metadata: meta.merging(["vigil.error": "\(error)"]) { $1 })
                }
            }
            try? await Task.sleep(for: .milliseconds(25))
        }
    }

    /// Finds a QEMU that is still running from an earlier vigild: reads `pidfile`, checks
    /// /proc/PID/cmdline is a QEMU with `-name name`, connects to `qmpSocket`.
    /// - Throws: `QEMUError` `.notRunning`, `.notThisVM`; `QMPError` if QMP does not answer.
    public static func adopt(
        pidfile: String, qmpSocket: String, name: String, timeout: Duration = .seconds(10), logger: Logger
    ) async throws -> QEMUProcess {
        let (pid, stat) = try findRunning(pidfile: pidfile, name: name)
        let qmp = try await QMPClient.connect(socketPath: qmpSocket, timeout: timeout, logger: logger)
        logger.debug("QEMU adopted", metadata: ["vigil.vm": "\(name)", "vigil.qemu.pid": "\(pid)"])
        return QEMUProcess(
            name: name, pid: pid, qmp: qmp, isChild: stat.parent == getpid(), startTime: stat.startTime,
            startupDuration: nil, outputLog: nil)
    }

    /// The live QEMU of VM `name` that `pidfile` names, checked through /proc.
    static func findRunning(pidfile: String, name: String) throws -> (pid: pid_t, stat: ProcessTools.Stat) {
        guard let text = try? String(contentsOfFile: pidfile, encoding: .utf8) else {
            throw QEMUError(.notRunning, "no pidfile at \(pidfile)", vm: name)
        }
        guard let pid = pid_t(text.trimmingCharacters(in: .whitespacesAndNewlines)), pid > 0 else {
            throw QEMUError(.notRunning, "pidfile \(pidfile) holds no pid: \(text.prefix(40))", vm: name)
        }
        guard let stat = ProcessTools.stat(pid), !stat.hasEnded else {
            throw QEMUError(.notRunning, "process from \(pidfile) is gone", vm: name, pid: pid)
        }
        guard let argv = ProcessTools.commandLine(pid), isQEMU(argv) else {
            throw QEMUError(.notThisVM, "process from \(pidfile) is not QEMU (pid reused?)", vm: name, pid: pid)
        }
        let found = vmName(inArguments: argv)
        guard found == name else {
            throw QEMUError(.notThisVM, "QEMU from \(pidfile) runs VM \(found ?? "(unnamed)")", vm: name, pid: pid)
        }
        return (pid, stat)
    }

    /// Whether an argv is a QEMU system emulator's (`…/qemu-system-x86_64 …`).
    static func isQEMU(_ argv: [String]) -> Bool {
        guard let program = argv.first else { return false }
        return (program as NSString).lastPathComponent.hasPrefix("qemu-system")
    }

    /// The VM name in a QEMU argv: `-name vm1` or `-name guest=vm1,debug-threads=on`.
    static func vmName(inArguments argv: [String]) -> String? {
        guard let i = argv.firstIndex(where: { $0 == "-name" || $0 == "--name" }), i + 1 < argv.count else { return nil }
        // Undo QEMU's ",," escaping while cutting at the first single comma.
        var name = ""
        var chars = Array(argv[i + 1])[...]
        while let c = chars.popFirst() {
            if c == "," {
                if chars.first == "," { chars.removeFirst(); name.append(",") } else { break }
            } else {
                name.append(c)
            }
        }
        return name.hasPrefix("guest=") ? String(name.dropFirst(6)) : name
    }

    /// How it ended, or nil while it runs. Never blocks.
    public var exitStatus: ExitStatus? {
        exit.withLock { recorded in
            if let recorded { return recorded }
            if isChild {
                // Our child stays a zombie until reaped, so waitpid is authoritative,
                // unless someone else reaped it (`.unknown`): then ask /proc.
                switch ProcessTools.reap(pid) {
                case nil: return nil
                case .unknown?: break
                case let status?:
                    recorded = status
                    return status
                }
            }
            if !Self.hasEnded(Identity(pid: pid, startTime: startTime)) { return nil }
            recorded = .unknown
            return recorded
        }
    }

    public var isAlive: Bool { exitStatus == nil }

    /// Waits until the process has ended (polling).
    public func waitForExit(pollInterval: Duration = .milliseconds(50)) async -> ExitStatus {
        while true {
            if let status = exitStatus { return status }
            try? await Task.sleep(for: pollInterval)
        }
    }

    /// Clean stop: ACPI power button (`system_powerdown`), then waits up to `grace` for
    /// the guest to power off and QEMU to exit; if it has not, SIGKILL.
    /// - Returns: how it ended and whether the guest shut down by itself.
    @discardableResult
    public func shutDown(grace: Duration = .seconds(30)) async throws -> (status: ExitStatus, clean: Bool) {
        if let status = exitStatus { return (status, false) }
        do {
            try await qmp.systemPowerdown()
        } catch let error as QMPError where error.code == .connectionClosed {
            // Already exiting.
        }
        let deadline = ContinuousClock.now + grace
        while ContinuousClock.now < deadline {
            if let status = exitStatus {
                await qmp.close()
                return (status, true)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return (try await kill(.sigkill), false)
    }

    /// Sends `signal` (if still running) and waits for the exit.
    /// - Throws: `QEMUError.killTimedOut` if it did not end within `timeout`.
    @discardableResult
    public func kill(_ signal: Signal = .sigkill, timeout: Duration = .seconds(10)) async throws -> ExitStatus {
        if let status = exitStatus { return status }
        Glibc.kill(pid, signal.rawValue)
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = exitStatus {
                await qmp.close()
                return status
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        throw QEMUError(.killTimedOut, "still running \(timeout) after signal \(signal.rawValue)", vm: name, pid: pid)
    }
}

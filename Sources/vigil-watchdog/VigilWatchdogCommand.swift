import ArgumentParser
import Foundation
import Logging
import VigilWatchdog

/// `vigil-watchdog`: the per-host fence (ARCHITECTURE.md, "Processes"). vigild pets it
/// with an absolute CLOCK_MONOTONIC deadline; when the deadline passes it SIGKILLs
/// every QEMU under `<state-dir>/vms`, whether or not vigild is still scheduled.
@main
struct VigilWatchdogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil-watchdog",
        abstract: "Kill this host's VMs when vigild stops petting by its deadline.")

    @Option(help: "vigild's state directory (the one holding vms/<vm>/qemu.pid).") var stateDir: String
    @Option(help: "Socket to listen on (default: <state-dir>/watchdog.sock).") var socket: String?
    @Option(help: "Milliseconds between scans for QEMUs while fencing.") var pollMs: Int = 50
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String = "info"

    func run() throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level: '\(logLevel)' is not one of trace, debug, info, notice, warning, error")
        }
        guard (1...10_000).contains(pollMs) else { throw ValidationError("--poll-ms must be within 1…10000") }
        guard stateDir.hasPrefix("/") else { throw ValidationError("--state-dir must be an absolute path") }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "vigil.watchdog")
        // Before anything else allocates: priority and locked memory (root only).
        ProcessHardening.apply(logger: logger)
        try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true)
        let server: WatchdogServer
        do {
            server = try WatchdogServer(
                configuration: .init(stateDirectory: stateDir, socketPath: socket, pollInterval: .milliseconds(pollMs)),
                logger: logger)
        } catch let error as WatchdogError {
            FileHandle.standardError.write(Data("vigil-watchdog: refusing to start: \(error)\n".utf8))
            throw ExitCode(error.code == .alreadyRunning ? 75 : 71)  // EX_TEMPFAIL, EX_OSERR
        }
        server.run()
    }
}

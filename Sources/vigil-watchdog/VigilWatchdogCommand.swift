import ArgumentParser
import Foundation
import Logging
import Synchronization
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
    @Flag(help: "Print the running watchdog's status (JSON) and exit.") var status = false

    func run() throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level: '\(logLevel)' is not one of trace, debug, info, notice, warning, error")
        }
        guard (1...10_000).contains(pollMs) else { throw ValidationError("--poll-ms must be within 1…10000") }
        guard stateDir.hasPrefix("/") else { throw ValidationError("--state-dir must be an absolute path") }
        if status { return try printStatus() }
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

    /// `--status`: one request to the running watchdog, from this synchronous command.
    private func printStatus() throws {
        let client = WatchdogClient(socketPath: socket ?? WatchdogClient.socketPath(stateDirectory: stateDir))
        let result = Mutex<Result<WatchdogStatus, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let outcome: Result<WatchdogStatus, any Error>
            do { outcome = .success(try await client.status()) } catch { outcome = .failure(error) }
            result.withLock { $0 = outcome }
            done.signal()
        }
        done.wait()
        do {
            let status = try result.withLock { $0! }.get()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
        } catch {
            FileHandle.standardError.write(Data("vigil-watchdog: \(error)\n".utf8))
            throw ExitCode(69)  // EX_UNAVAILABLE
        }
    }
}

import Foundation
import Synchronization
import VigilCore
import VigilTestKit
import VigilWatchdog
@testable import VigilQEMU

/// A pretend host for the watchdog: a state directory, the real `vigil-watchdog` binary
/// serving it, and fake QEMUs. Everything it starts is our child, so `waitpid` tells the
/// exact moment each one dies.
final class WatchdogHost: Sendable {
    /// Short (unix socket paths are limited to 107 bytes).
    let directory: String
    var stateDirectory: String { directory + "/state" }
    var socketPath: String { WatchdogClient.socketPath(stateDirectory: stateDirectory) }
    var logPath: String { directory + "/watchdog.log" }
    private let children = Mutex<[ChildProcess]>([])

    init() throws {
        var template = Array("/tmp/vw-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HostError("mkdtemp: \(String(cString: strerror(errno)))") }
        directory = String(cString: made)
        try FileManager.default.createDirectory(atPath: stateDirectory + "/vms", withIntermediateDirectories: true)
        // A fake QEMU is bash under a qemu-system name, blocked reading a FIFO that never
        // delivers: one process, no children, any argv we like.
        try FileManager.default.createSymbolicLink(atPath: directory + "/qemu-system-x86_64", withDestinationPath: "/bin/bash")
        guard mkfifo(directory + "/never", 0o600) == 0 else { throw HostError("mkfifo: \(String(cString: strerror(errno)))") }
    }

    struct HostError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    func client(timeout: Duration = .seconds(1)) -> WatchdogClient { WatchdogClient(socketPath: socketPath, timeout: timeout) }

    /// Starts `vigil-watchdog` and returns once it answers `status`.
    @discardableResult
    func startWatchdog() async throws -> ChildProcess {
        let watchdog = try spawn(BuiltBinaries.vigilWatchdog, ["vigil-watchdog", "--state-dir", stateDirectory, "--log-level", "debug"])
        let client = client()
        // Stop waiting as soon as it answers, or has died (then say why).
        let answered = await eventually(timeout: .seconds(15), every: .milliseconds(20)) {
            if watchdog.diedAt != nil { return true }
            return (try? await client.status())?.pid == watchdog.pid
        }
        guard answered, watchdog.diedAt == nil else {
            throw HostError("vigil-watchdog did not come up; its log:\n\(log())")
        }
        return watchdog
    }

    func pidfile(vm: String) -> String { stateDirectory + "/vms/\(vm)/qemu.pid" }

    /// A process /proc shows as `<dir>/qemu-system-x86_64 … -name <nameInArgv> -pidfile
    /// <pidfileInArgv>` (by default this VM's, as vigild launches QEMU), with its pid
    /// written to `<state>/vms/<vm>/qemu.pid` unless `writesPidfile` is false.
    @discardableResult
    func startFakeQEMU(vm: String, nameInArgv: String? = nil, pidfileInArgv: String? = nil, writesPidfile: Bool = true) throws -> ChildProcess {
        let qemu = try spawn(directory + "/qemu-system-x86_64", [
            directory + "/qemu-system-x86_64", "-c", "read -r -t 1000 <> \(directory)/never",
            "-name", nameInArgv ?? vm, "-pidfile", pidfileInArgv ?? pidfile(vm: vm),
        ])
        if writesPidfile { try writePidfile(vm: vm, pid: qemu.pid) }
        return qemu
    }

    /// An innocent process (`sleep`) whose pid a VM's pidfile names, as after pid reuse.
    func startStranger(inPidfileOf vm: String) throws -> ChildProcess {
        let stranger = try spawn("/bin/sleep", ["sleep", "1000"])
        try writePidfile(vm: vm, pid: stranger.pid)
        return stranger
    }

    func writePidfile(vm: String, pid: pid_t) throws {
        let dir = stateDirectory + "/vms/" + vm
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try "\(pid)\n".write(toFile: dir + "/qemu.pid", atomically: true, encoding: .utf8)
    }

    func spawn(_ executable: String, _ arguments: [String]) throws -> ChildProcess {
        let pid = try ProcessTools.spawn(executable: executable, arguments: arguments, outputPath: logPath, newSession: true)
        let child = ChildProcess(pid: pid)
        children.withLock { $0.append(child) }
        return child
    }

    func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "(no log)" }

    /// Kills whatever is still running and removes the directory.
    func cleanUp() {
        for child in children.withLock({ $0 }) where child.diedAt == nil {
            kill(child.pid, SIGKILL)
            _ = child.waitForExit(timeout: .seconds(5))
        }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// A child process and the CLOCK_MONOTONIC instant it died, taken by a thread blocked
/// in `waitpid` (which returns the moment the child ends).
final class ChildProcess: Sendable {
    let pid: pid_t
    private let death = Mutex<(at: MonotonicInstant, status: Int32)?>(nil)

    init(pid: pid_t) {
        self.pid = pid
        Thread { [self] in
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            let at = MonotonicClock.now()
            death.withLock { $0 = (at, status) }
        }.start()
    }

    var diedAt: MonotonicInstant? { death.withLock { $0?.at } }
    var isAlive: Bool { diedAt == nil }
    /// waitpid's status word (nil while running).
    var waitStatus: Int32? { death.withLock { $0?.status } }

    /// Blocks (poll every ms) until the child died or `timeout` passed; the death instant.
    func waitForExit(timeout: Duration) -> MonotonicInstant? {
        let giveUp = MonotonicClock.now() + timeout
        while MonotonicClock.now() < giveUp {
            if let diedAt { return diedAt }
            usleep(1000)
        }
        return diedAt
    }

    func died(within timeout: Duration) async throws -> MonotonicInstant? {
        try await offPool { self.waitForExit(timeout: timeout) }
    }
}

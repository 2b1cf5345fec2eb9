#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import VigilTestKit

@testable import VigilQEMU

/// Real QEMUs under TCG: few, small (128 MiB, 1 CPU), one at a time, always killed.
/// Timings are printed for the record (`swift test … | grep measured`).
@Suite(.serialized, .enabled(if: Capabilities.hasQEMU && TestSupport.hasGuestImage), .timeLimit(.minutes(3)))
struct QEMUIntegrationTests {
    init() throws {
        try Capabilities.require(Capabilities.hasQEMU, "qemu-system-x86_64")
    }

    /// Launches `command`, runs `body`, and kills QEMU whatever happened.
    func withQEMU<T>(_ command: QEMUCommand, _ body: (QEMUProcess) async throws -> T) async throws -> T {
        let process = try await QEMUProcess.launch(command, timeout: .seconds(60), logger: TestSupport.logger)
        defer { Glibc.kill(process.pid, SIGKILL) }  // even if cleanup below is never reached
        let result = await Result(catching: { try await body(process) })
        await TestSupport.cleanUp(process)
        return try result.get()
    }

    /// The first event named `name`, or nil after `timeout` or when the stream ends.
    func event(
        _ name: QMPEvent.Name, from client: QMPClient, within timeout: Duration,
        where matches: @escaping @Sendable (QMPEvent) -> Bool = { _ in true }
    ) async -> QMPEvent? {
        await withTaskGroup(of: QMPEvent?.self) { group in
            group.addTask {
                for await event in client.events where event.name == name && matches(event) { return event }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }

    @Test func guestBootsAnswersHTTPAndPowersDownOnRequest() async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = TestSupport.freePort()
        let command = TestSupport.guestCommand(name: "vq-boot", directory: dir, httpPort: port)
        let started = ContinuousClock.now
        try await withQEMU(command) { qemu in
            let qmpReady = ContinuousClock.now - started
            #expect(try await qemu.qmp.queryStatus() == QMPStatus(runState: .running, running: true))
            let stat = try #require(ProcessTools.stat(qemu.pid))
            #expect(stat.session == qemu.pid, "QEMU must lead its own session (setsid)")
            #expect(stat.niceness == 10)
            #expect(qemu.isAlive && qemu.isChild)
            // Nothing ties QEMU to us: stdin is /dev/null, stdout and stderr a file (no pipe to break).
            let fds = (0...2).map { (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(qemu.pid)/fd/\($0)")) ?? "" }
            #expect(fds == ["/dev/null", qemu.outputLog, qemu.outputLog])

            let status = await TestSupport.waitForGuest(port: port, timeout: .seconds(60))
            let httpReady = ContinuousClock.now - started
            try #require(status != nil, "guest never answered HTTP; serial:\n\(TestSupport.serial(command.serialLog))")
            #expect(status?["name"] as? String == "vq-boot")
            #expect((status?["boot_id"] as? String)?.isEmpty == false)
            print("measured: boot to QMP ready \(qmpReady), boot to HTTP \(httpReady), guest http_ready_ms \(status?["http_ready_ms"] ?? "?")")

            let poweredDown = ContinuousClock.now
            try await qemu.qmp.systemPowerdown()
            let shutdown = await event(.shutdown, from: qemu.qmp, within: .seconds(30))
            #expect(shutdown?.data["guest"] == .bool(true), "SHUTDOWN should come from the guest")
            let exit = await qemu.waitForExit()
            #expect(exit == .exited(0))
            #expect(!qemu.isAlive)
            print("measured: system_powerdown to QEMU exit \(ContinuousClock.now - poweredDown)")
        }
        #expect(TestSupport.serial(command.serialLog).isEmpty == false)
    }

    @Test func adoptedQEMUIsTheSameAndControllableAndKill9IsReportedAsClosed() async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let command = TestSupport.guestCommand(name: "vq-adopt", directory: dir, httpPort: TestSupport.freePort())
        try await withQEMU(command) { launched in
            let pidText = try String(contentsOfFile: command.pidfile!, encoding: .utf8)
            #expect(pidText.trimmingCharacters(in: .whitespacesAndNewlines) == String(launched.pid))
            // A second launch of the same VM is refused while the first runs.
            do {
                let second = try await QEMUProcess.launch(command, timeout: .seconds(10), logger: TestSupport.logger)
                _ = try? await second.kill()
                Issue.record("a second QEMU for the same VM was started")
            } catch let error as QEMUError {
                #expect(error.code == .alreadyRunning && error.pid == launched.pid)
            }
            await launched.qmp.close()  // "vigild restarted": the old connection is gone

            do {
                _ = try await QEMUProcess.adopt(
                    pidfile: command.pidfile!, qmpSocket: command.qmpSocket, name: "another-vm", logger: TestSupport.logger)
                Issue.record("adopted a QEMU under another VM's name")
            } catch let error as QEMUError {
                #expect(error.code == .notThisVM)
            }
            let adopted = try await QEMUProcess.adopt(
                pidfile: command.pidfile!, qmpSocket: command.qmpSocket, name: "vq-adopt", logger: TestSupport.logger)
            #expect(adopted.pid == launched.pid)
            #expect(try await adopted.qmp.queryStatus().runState == .running)
            #expect(adopted.isAlive)

            try await adopted.qmp.stop()
            #expect(try await adopted.qmp.queryStatus() == QMPStatus(runState: .paused, running: false))
            try await adopted.qmp.cont()
            #expect(try await adopted.qmp.queryStatus().runState == .running)
            #expect(await event(.resume, from: adopted.qmp, within: .seconds(5)) != nil)

            // A migration into a peer that never reads stalls; cancelling it leaves the source running.
            let hole = TestSupport.blackHoleListener()
            defer { close(hole.fd) }
            try await adopted.qmp.migrate(uri: "tcp:127.0.0.1:\(hole.port)")
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await adopted.qmp.queryMigrate().status == .active)
            try await adopted.qmp.migrateCancel()
            var cancelled = try await adopted.qmp.queryMigrate()
            for _ in 0..<50 where !cancelled.status.isFinal {
                try await Task.sleep(for: .milliseconds(100))
                cancelled = try await adopted.qmp.queryMigrate()
            }
            #expect(cancelled.status == .cancelled)
            #expect(try await adopted.qmp.queryStatus().runState == .running)

            Glibc.kill(adopted.pid, SIGKILL)  // QEMU dies under us
            var sawEvents = 0
            for await _ in adopted.qmp.events { sawEvents += 1 }  // must end
            do {
                _ = try await adopted.qmp.queryStatus()
                Issue.record("query-status answered by a killed QEMU")
            } catch let error as QMPError {
                #expect(error.code == .connectionClosed)
            }
            #expect(await adopted.waitForExit() == .signaled(SIGKILL))
            #expect(!adopted.isAlive && !launched.isAlive)
        }
    }

    @Test func liveMigrationOnLoopbackKeepsTheGuestRunning() async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sourcePort = TestSupport.freePort()
        let source = TestSupport.guestCommand(name: "vq-mig", directory: dir, httpPort: sourcePort)
        let destinationPort = TestSupport.freePort()
        var destination = TestSupport.guestCommand(name: "vq-mig", directory: dir, httpPort: destinationPort)
        destination.qmpSocket = dir + "/dest.qmp"
        destination.pidfile = dir + "/dest.pid"
        destination.serialLog = dir + "/dest.serial"
        let migrationPort = TestSupport.freePort()
        destination.incoming = "tcp:127.0.0.1:\(migrationPort)"

        try await withQEMU(source) { src in
            let before = await TestSupport.waitForGuest(port: sourcePort, timeout: .seconds(60))
            let bootID = try #require(before?["boot_id"] as? String, "source guest never answered; serial:\n\(TestSupport.serial(source.serialLog))")
            try await withQEMU(destination) { dst in
                #expect(try await dst.qmp.queryStatus().runState == .inmigrate)
                try await src.qmp.migrateSetCapabilities(["events": true])
                try await src.qmp.migrateSetParameters(MigrationParameters(downtimeLimit: .milliseconds(300)))
                let started = ContinuousClock.now
                try await src.qmp.migrate(uri: "tcp:127.0.0.1:\(migrationPort)")
                var samples: [MigrationInfo] = []
                var info = try await src.qmp.queryMigrate()
                while !info.status.isFinal, ContinuousClock.now - started < .seconds(60) {
                    samples.append(info)
                    try await Task.sleep(for: .milliseconds(50))
                    info = try await src.qmp.queryMigrate()
                }
                let elapsed = ContinuousClock.now - started
                #expect(info.status == .completed, "migration ended \(info.status): \(info.errorDescription ?? "")")
                #expect((info.transferredBytes ?? 0) > 0 && info.downtime != nil && info.totalTime != nil)
                #expect(samples.allSatisfy { [.setup, .active, .device].contains($0.status) })
                let transferred = samples.compactMap(\.transferredBytes)
                #expect(transferred == transferred.sorted(), "progress only grows")
                print("measured: migration \(elapsed) wall, total-time \(info.totalTime.map { "\($0)" } ?? "?"), downtime \(info.downtime.map { "\($0)" } ?? "?"), passes \(info.dirtySyncCount ?? -1), transferred \(info.transferredBytes ?? -1) B, \(samples.count) progress samples")

                #expect(try await src.qmp.queryStatus().runState == .postmigrate)
                let completedEvent = await event(.migration, from: src.qmp, within: .seconds(2), where: { $0.data["status"] == "completed" })
                #expect(completedEvent != nil, "MIGRATION completed event")
                var destinationState = try await dst.qmp.queryStatus().runState
                for _ in 0..<50 where destinationState != .running {
                    try await Task.sleep(for: .milliseconds(100))
                    destinationState = try await dst.qmp.queryStatus().runState
                }
                #expect(destinationState == .running)
                let after = await TestSupport.waitForGuest(port: destinationPort, timeout: .seconds(20))
                #expect(after?["boot_id"] as? String == bootID, "guest rebooted or died; serial:\n\(TestSupport.serial(destination.serialLog))")
                let counterBefore = (before?["flushed"] as? NSNumber)?.intValue ?? Int.max
                #expect(((after?["counter"] as? NSNumber)?.intValue ?? -1) >= counterBefore, "the workload went on where it was")
                let stopped = try await dst.shutDown(grace: .seconds(20))
                #expect(stopped.clean && stopped.status == .exited(0))
            }
        }
    }

    @Test func kvmProbeDecidesWithinItsTimeoutAndItsFirmwareRunsUnderTCG() async throws {
        let binary = try QEMUBinary.locate()
        let tcgStarted = ContinuousClock.now
        let tcg = await KVMProbe.guestRuns(accelerator: .tcg, binary: binary, timeout: .seconds(10))
        #expect(tcg == .ran, "\(tcg)")
        let tcgElapsed = ContinuousClock.now - tcgStarted

        let started = ContinuousClock.now
        let result = await KVMProbe.run(binary: binary, timeout: .seconds(3))
        let elapsed = ContinuousClock.now - started
        #expect(elapsed < .seconds(6))
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        if !cpuinfo.contains(" vmx") && !cpuinfo.contains(" svm") {
            guard case .tcg = result else { Issue.record("KVM claimed usable without vmx/svm"); return }
        }
        print("measured: KVM probe \(result) in \(elapsed); TCG probe firmware ran in \(tcgElapsed)")
    }

    @Test func deferredIncomingQMPErrorsAndQuitAgainstRealQEMU() async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var command = TestSupport.guestCommand(name: "vq-defer", directory: dir, httpPort: TestSupport.freePort())
        command.incoming = "defer"  // the guest never runs: cheap
        try await withQEMU(command) { qemu in
            #expect(try await qemu.qmp.queryStatus().runState == .inmigrate)
            do {
                try await qemu.qmp.execute("vigil-no-such-command")
                Issue.record("unknown command succeeded")
            } catch let error as QMPError {
                #expect(error.code == .commandFailed && error.errorClass == "CommandNotFound")
                #expect(error.message.contains("vigil-no-such-command") && error.command == "vigil-no-such-command")
            }
            let uri = "tcp:127.0.0.1:\(TestSupport.freePort())"
            try await qemu.qmp.migrateIncoming(uri: uri)
            // Listening now: a second start is refused.
            await #expect(throws: QMPError.self) { try await qemu.qmp.migrateIncoming(uri: uri) }
            #expect(try await qemu.qmp.queryStatus().runState == .inmigrate)
            try await qemu.qmp.quit()
            #expect(await qemu.waitForExit() == .exited(0))
            await qemu.qmp.waitUntilClosed()
            #expect(!qemu.qmp.isConnected)
        }
    }

    @Test func missingKernelFailsWithQEMUsOwnMessage() async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var command = TestSupport.guestCommand(name: "vq-nokernel", directory: dir, httpPort: TestSupport.freePort())
        command.kernel = dir + "/no-such-vmlinux"
        do {
            let process = try await QEMUProcess.launch(command, timeout: .seconds(30), logger: TestSupport.logger)
            _ = try? await process.kill()
            Issue.record("QEMU started without a kernel")
        } catch let error as QEMUError {
            #expect(error.code == .exitedEarly)
            #expect(error.output.contains("no-such-vmlinux"), "stderr: \(error.output)")
        }
    }
}

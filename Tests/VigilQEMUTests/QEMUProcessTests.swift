#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing

@testable import VigilQEMU

/// Process bookkeeping without QEMU: a `sleep` stands in, a scripted peer answers QMP.
@Suite struct QEMUProcessTests {
    func withStandIn(_ body: (pid_t, ProcessTools.Stat, QMPClient) async throws -> Void) async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try FakeQMPServer(path: dir + "/qmp.sock")
        server.serveOne { peer in
            peer.send(QMPClientTests.greeting)
            while let c = peer.readCommand() { peer.send(#"{"return": {}, "id": \#(c.id)}"#) }
        }
        let qmp = try await QMPClient.connect(socketPath: server.path, timeout: .seconds(5), logger: TestSupport.logger)
        let pid = try ProcessTools.spawn(
            executable: "/bin/sleep", arguments: ["sleep", "30"], outputPath: dir + "/out.log", newSession: true)
        defer {
            Glibc.kill(pid, SIGKILL)
            _ = waitpid(pid, nil, 0)
        }
        let stat = try #require(ProcessTools.stat(pid))
        #expect(stat.session == pid)
        try await body(pid, stat, qmp)
        await qmp.close()
    }

    @Test func processThatIsNotOurChildIsWatchedThroughProc() async throws {
        try await withStandIn { pid, stat, qmp in
            let process = QEMUProcess(
                name: "standin", pid: pid, qmp: qmp, isChild: false, startTime: stat.startTime, startupDuration: nil, outputLog: nil)
            #expect(process.isAlive)
            // As a non-child it cannot be reaped here: it ends as a zombie, which /proc shows.
            let status = try await process.kill(.sigterm, timeout: .seconds(5))
            #expect(status == .unknown)
            #expect(!process.isAlive)
        }
    }

    @Test func reusedPidWithAnotherStartTimeIsNotAlive() async throws {
        try await withStandIn { pid, stat, qmp in
            let impostor = QEMUProcess(
                name: "standin", pid: pid, qmp: qmp, isChild: false, startTime: stat.startTime + 1, startupDuration: nil, outputLog: nil)
            #expect(!impostor.isAlive)
            #expect(ProcessTools.stat(pid)?.hasEnded == false, "the real process was left alone")
        }
    }

    @Test func childExitStatusComesFromWaitpid() async throws {
        try await withStandIn { pid, stat, qmp in
            let process = QEMUProcess(
                name: "standin", pid: pid, qmp: qmp, isChild: true, startTime: stat.startTime, startupDuration: nil, outputLog: nil)
            let status = try await process.kill(.sigkill, timeout: .seconds(5))
            #expect(status == .signaled(SIGKILL))
            #expect(process.exitStatus == .signaled(SIGKILL))
        }
    }

    @Test func probeFirmwareIsSixtyFourKiBWithAResetVector() {
        let rom = KVMProbe.firmware()
        #expect(rom.count == 65536)
        #expect(Array(rom[0xFFF0..<0xFFF5]) == [0xEA, 0x00, 0x00, 0x00, 0xF0])
        #expect(rom.starts(with: [0xFA]))  // cli
    }
}

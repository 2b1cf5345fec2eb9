import Foundation
import Testing

@testable import VigilQEMU

/// The client against a scripted peer: no QEMU needed.
@Suite struct QMPClientTests {
    static let greeting = #"{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}, "package": ""}, "capabilities": ["oob"]}}"#

    @Test func concurrentCommandsAreMatchedByIDAndCloseEndsEverything() async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try FakeQMPServer(path: dir + "/qmp.sock")
        server.serveOne { peer in
            peer.send(Self.greeting)
            guard let caps = peer.readCommand(), caps.command == "qmp_capabilities" else { return }
            peer.send(#"{"return": {}, "id": \#(caps.id)}"#)
            guard let first = peer.readCommand(), let second = peer.readCommand() else { return }
            // Answer out of order, with an event in between.
            peer.send(#"{"return": {"echo": "\#(second.command)"}, "id": \#(second.id)}"#)
            peer.send(#"{"timestamp": {"seconds": 1, "microseconds": 2}, "event": "STOP"}"#)
            peer.send(#"{"id": \#(first.id), "error": {"class": "GenericError", "desc": "\#(first.command)"}}"#)
            // Take one more command and hang up without answering: "QEMU died".
            _ = peer.readCommand()
        }
        let client = try await QMPClient.connect(socketPath: server.path, timeout: .seconds(5), logger: TestSupport.logger)
        #expect(client.greeting.version == "7.2.0")

        async let a = Result(catching: { try await client.execute("cmd-a") })
        async let b = Result(catching: { try await client.execute("cmd-b") })
        let results = [("cmd-a", await a), ("cmd-b", await b)]
        var failures = 0
        for (name, result) in results {
            switch result {
            case .success(let value):
                #expect(value == ["echo": .string(name)])
            case .failure(let error as QMPError):
                failures += 1
                #expect(error.code == .commandFailed && error.errorClass == "GenericError")
                #expect(error.message == name && error.command == name)
            case .failure(let error):
                Issue.record("unexpected \(error)")
            }
        }
        #expect(failures == 1)

        do {
            try await client.stop()
            Issue.record("stop answered by a peer that hung up")
        } catch let error as QMPError {
            #expect(error.code == .connectionClosed && error.command == "stop")
        }
        var events: [QMPEvent.Name] = []
        for await event in client.events { events.append(event.name) }  // ends: connection closed
        #expect(events == [.stop])
        #expect(!client.isConnected)
        do {
            _ = try await client.queryStatus()
            Issue.record("command on a closed connection succeeded")
        } catch let error as QMPError {
            #expect(error.code == .connectionClosed)
        }
    }

    @Test func silentPeerTimesOutWithoutGreeting() async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try FakeQMPServer(path: dir + "/qmp.sock")
        server.serveOne { peer in _ = peer.readCommand() }
        let started = ContinuousClock.now
        do {
            _ = try await QMPClient.connect(socketPath: server.path, timeout: .milliseconds(300), logger: TestSupport.logger)
            Issue.record("connected without a greeting")
        } catch let error as QMPError {
            #expect(error.code == .timedOut)
        }
        #expect(ContinuousClock.now - started < .seconds(3))
    }

    @Test func greetingWithoutCapabilitiesReplyTimesOut() async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try FakeQMPServer(path: dir + "/qmp.sock")
        server.serveOne { peer in
            peer.send(Self.greeting)
            _ = peer.readCommand()
            _ = peer.readCommand()  // until the client hangs up
        }
        do {
            _ = try await QMPClient.connect(socketPath: server.path, timeout: .milliseconds(300), logger: TestSupport.logger)
            Issue.record("connected without qmp_capabilities")
        } catch let error as QMPError {
            #expect(error.code == .timedOut && error.command == "qmp_capabilities")
        }
    }

    @Test func timedOutCommandsLateReplyIsDroppedAndTheConnectionStaysUsable() async throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let server = try FakeQMPServer(path: dir + "/qmp.sock")
        server.serveOne { peer in
            peer.send(Self.greeting)
            guard let caps = peer.readCommand() else { return }
            peer.send(#"{"return": {}, "id": \#(caps.id)}"#)
            guard let slow = peer.readCommand(), let fast = peer.readCommand() else { return }
            peer.send(#"{"return": "late", "id": \#(slow.id)}"#)
            peer.send(#"{"return": "\#(fast.command)", "id": \#(fast.id)}"#)
            _ = peer.readCommand()
        }
        let client = try await QMPClient.connect(socketPath: server.path, timeout: .seconds(5), logger: TestSupport.logger)
        do {
            try await client.execute("slow", timeout: .milliseconds(200))
            Issue.record("slow command did not time out")
        } catch let error as QMPError {
            #expect(error.code == .timedOut && error.command == "slow")
        }
        #expect(try await client.execute("fast") == "fast")
        #expect(client.isConnected)
        await client.close()
    }

    @Test func nothingListeningIsConnectFailed() async throws {
        do {
            _ = try await QMPClient.connect(socketPath: "/tmp/vigil-no-such-dir/qmp.sock", timeout: .seconds(1), logger: TestSupport.logger)
            Issue.record("connected to nothing")
        } catch let error as QMPError {
            #expect(error.code == .connectFailed)
        }
    }
}

extension Result where Failure == any Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

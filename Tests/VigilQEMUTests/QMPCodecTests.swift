import Foundation
import Testing

@testable import VigilQEMU

@Suite struct QMPCodecTests {
    /// What QEMU 7.2 really sends: greeting, replies with ids, events, `\r\n` line ends.
    static let transcript = """
        {"QMP": {"version": {"qemu": {"micro": 22, "minor": 2, "major": 7}, "package": "Debian 1:7.2+dfsg-7+deb12u18"}, "capabilities": ["oob"]}}\r
        {"return": {}, "id": 1}\r
        {"timestamp": {"seconds": 1764057600, "microseconds": 250000}, "event": "STOP"}\r
        {"return": {"status": "running", "singlestep": false, "running": true}, "id": 2}\r
        {"timestamp": {"seconds": 1764057601, "microseconds": 5}, "event": "MIGRATION", "data": {"status": "active"}}\r
        {"id": 3, "error": {"class": "CommandNotFound", "desc": "The command foo has not been found"}}\r
        {"timestamp": {"seconds": 1764057602, "microseconds": 0}, "event": "SHUTDOWN", "data": {"guest": true, "reason": "guest-shutdown"}}\r

        """

    static let expected: [QMPMessage] = [
        .greeting(QMPGreeting(major: 7, minor: 2, micro: 22, capabilities: ["oob"])),
        .reply(id: 1, result: .success([:])),
        .event(QMPEvent(name: .stop, timestamp: Date(timeIntervalSince1970: 1_764_057_600.25))),
        .reply(id: 2, result: .success(["status": "running", "singlestep": false, "running": true])),
        .event(QMPEvent(name: .migration, data: ["status": "active"], timestamp: Date(timeIntervalSince1970: 1_764_057_601.000005))),
        .reply(id: 3, result: .failure(QMPError(.commandFailed, "The command foo has not been found", errorClass: "CommandNotFound"))),
        .event(QMPEvent(name: .shutdown, data: ["guest": true, "reason": "guest-shutdown"], timestamp: Date(timeIntervalSince1970: 1_764_057_602))),
    ]

    @Test func decoderFedOneByteAtATimeYieldsEveryMessageOnceComplete() throws {
        var decoder = QMPMessageDecoder()
        var messages: [QMPMessage] = []
        let bytes = Array(Self.transcript.utf8)
        for (index, byte) in bytes.enumerated() {
            decoder.append([byte])
            while let message = try decoder.next() {
                // A message appears exactly when its newline arrives.
                #expect(byte == UInt8(ascii: "\n"), "message completed at byte \(index)")
                messages.append(message)
            }
        }
        #expect(messages == Self.expected)
        #expect(decoder.pendingByteCount == 0)
    }

    @Test func decoderGivesTheSameMessagesForAnyChunking() throws {
        let bytes = Array(Self.transcript.utf8)
        for chunk in [2, 7, 64, bytes.count] {
            var decoder = QMPMessageDecoder()
            var messages: [QMPMessage] = []
            var offset = 0
            while offset < bytes.count {
                decoder.append(bytes[offset..<min(offset + chunk, bytes.count)])
                offset += chunk
                while let m = try decoder.next() { messages.append(m) }
            }
            #expect(messages == Self.expected, "chunk size \(chunk)")
        }
    }

    @Test func decoderKeepsAnIncompleteLineUntilItsNewline() throws {
        var decoder = QMPMessageDecoder()
        decoder.append(Array(#"{"return": {}, "id": 7}"#.utf8))
        #expect(try decoder.next() == nil)
        decoder.append([UInt8(ascii: "\n")])
        #expect(try decoder.next() == .reply(id: 7, result: .success([:])))
    }

    @Test func decoderRejectsGarbageAndUnknownShapes() {
        for line in ["not json\n", "[1,2]\n", #"{"hello": 1}"# + "\n"] {
            var decoder = QMPMessageDecoder()
            decoder.append(Array(line.utf8))
            do {
                _ = try decoder.next()
                Issue.record("accepted \(line)")
            } catch {
                #expect(error.code == .protocolViolation)
            }
        }
    }

    @Test func decoderKeepsLargeIntegersExact() throws {
        let message = try QMPMessageDecoder.decode(line: Array(#"{"return": {"ram": {"total": 9007199254740993}}, "id": 1}"#.utf8))
        guard case .reply(_, .success(let value)) = message else { Issue.record("not a reply"); return }
        #expect(value["ram"]?["total"]?.int64Value == 9_007_199_254_740_993)
    }

    @Test func encoderWritesOneSortedJSONLine() {
        let bytes = QMPCommandEncoder.encode("migrate", arguments: ["uri": "tcp:127.0.0.1:4444"], id: 5)
        #expect(String(decoding: bytes, as: UTF8.self) == #"{"arguments":{"uri":"tcp:127.0.0.1:4444"},"execute":"migrate","id":5}"# + "\n")
        #expect(String(decoding: QMPCommandEncoder.encode("query-status"), as: UTF8.self) == #"{"execute":"query-status"}"# + "\n")
    }

    @Test func valueRoundTripsThroughJSON() throws {
        let value: QMPValue = ["a": [1, 2.5, "x", true, nil], "b": ["c": -3]]
        let data = try JSONEncoder().encode(value)
        #expect(try JSONDecoder().decode(QMPValue.self, from: data) == value)
    }
}

@Suite struct QMPConnectionStateTests {
    private func ready() -> QMPConnectionState<String> {
        var state = QMPConnectionState<String>()
        _ = state.receive(.greeting(QMPGreeting(major: 7, minor: 2, micro: 0)))
        return state
    }

    private func sentID(_ action: QMPConnectionState<String>.SendAction) -> Int64? {
        if case .write(_, let id) = action { return id }
        return nil
    }

    @Test func repliesAreMatchedByIDWhateverTheirOrder() throws {
        var state = ready()
        let a = try #require(sentID(state.send("query-status", arguments: nil, token: "A")))
        let b = try #require(sentID(state.send("query-migrate", arguments: nil, token: "B")))
        #expect(a != b)
        guard case .complete(let first, .success) = state.receive(.reply(id: .int(b), result: .success(["status": "active"]))) else {
            Issue.record("B not completed"); return
        }
        #expect(first == "B")
        guard case .event(let e) = state.receive(.event(QMPEvent(name: .stop))) else { Issue.record("no event"); return }
        #expect(e.name == .stop)
        guard case .complete(let second, .failure(let error)) = state.receive(
            .reply(id: .int(a), result: .failure(QMPError(.commandFailed, "nope", errorClass: "GenericError"))))
        else { Issue.record("A not failed"); return }
        #expect(second == "A")
        #expect(error.command == "query-status" && error.errorClass == "GenericError")
        #expect(state.pendingCount == 0)
    }

    @Test func replyWithoutIDGoesToTheOldestCommand() {
        var state = ready()
        _ = state.send("first", arguments: nil, token: "1")
        _ = state.send("second", arguments: nil, token: "2")
        guard case .complete(let token, _) = state.receive(.reply(id: nil, result: .success(.null))) else {
            Issue.record("not completed"); return
        }
        #expect(token == "1")
    }

    @Test func replyForUnknownIDAndSecondGreetingAreViolations() {
        var state = ready()
        guard case .protocolViolation = state.receive(.reply(id: 99, result: .success(.null))) else {
            Issue.record("unknown id accepted"); return
        }
        guard case .protocolViolation = state.receive(.greeting(QMPGreeting(major: 7, minor: 2, micro: 0))) else {
            Issue.record("second greeting accepted"); return
        }
    }

    @Test func closeFailsEveryPendingCommandAndLaterSends() {
        var state = ready()
        _ = state.send("stop", arguments: nil, token: "S")
        _ = state.send("cont", arguments: nil, token: "C")
        let failed = state.close(with: QMPError(.connectionClosed, "gone"))
        #expect(failed.map(\.0) == ["S", "C"])
        #expect(failed.map { $0.1.command } == ["stop", "cont"])
        #expect(failed.allSatisfy { $0.1.code == .connectionClosed })
        guard case .fail(let error) = state.send("quit", arguments: nil, token: "Q") else { Issue.record("sent after close"); return }
        #expect(error.code == .connectionClosed && error.command == "quit")
    }

}

@Suite struct MigrationTypesTests {
    @Test func queryMigrateAnswerIsParsed() throws {
        let line = #"{"return": {"expected-downtime": 12, "status": "active", "setup-time": 3, "total-time": 420, "ram": {"total": 134750208, "remaining": 2048000, "mbps": 930.5, "transferred": 140000000, "dirty-sync-count": 3, "dirty-pages-rate": 812, "duplicate": 20000}}, "id": 4}"#
        guard case .reply(_, .success(let value)) = try QMPMessageDecoder.decode(line: Array(line.utf8)) else {
            Issue.record("not a reply"); return
        }
        let info = MigrationInfo(value)
        #expect(info.status == .active && !info.status.isFinal)
        #expect(info.totalBytes == 134_750_208 && info.remainingBytes == 2_048_000 && info.transferredBytes == 140_000_000)
        #expect(info.dirtySyncCount == 3 && info.dirtyPagesRate == 812 && info.mbps == 930.5)
        #expect(info.expectedDowntime == .milliseconds(12) && info.totalTime == .milliseconds(420) && info.downtime == nil)
    }

    @Test func migrationParametersUseQMPNames() {
        let p = MigrationParameters(
            maxBandwidth: 1 << 30, downtimeLimit: .milliseconds(300), multifdChannels: 4,
            cpuThrottleInitial: 20, cpuThrottleIncrement: 10)
        #expect(p.arguments == [
            "max-bandwidth": 1_073_741_824, "downtime-limit": 300, "multifd-channels": 4,
            "cpu-throttle-initial": 20, "cpu-throttle-increment": 10,
        ])
        #expect(MigrationParameters(downtimeLimit: .milliseconds(50)).arguments == ["downtime-limit": 50])
    }
}

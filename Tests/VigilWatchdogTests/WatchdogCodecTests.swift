import Testing
import VigilCore
@testable import VigilWatchdog

struct WatchdogCodecTests {
    let deadline = MonotonicInstant(nanoseconds: 123_456_789_012)

    @Test func everyRequestRoundTripsAsOneLine() throws {
        for request: WatchdogRequest in [.pet(deadline: deadline, holder: "n1"), .rearm(deadline: deadline, holder: "n1"), .disarm, .status] {
            let bytes = WatchdogCodec.encode(request)
            #expect(bytes.last == UInt8(ascii: "\n"))
            #expect(bytes.dropLast().contains(UInt8(ascii: "\n")) == false, "one request, one line")
            #expect(try WatchdogCodec.decodeRequest(Array(bytes.dropLast())) == request)
        }
    }

    @Test func petIsTheDocumentedJSON() throws {
        let text = String(decoding: WatchdogCodec.encode(.pet(deadline: deadline, holder: "n1")), as: UTF8.self)
        #expect(text == #"{"deadlineNanos":123456789012,"holder":"n1","op":"pet"}"# + "\n")
        let handWritten = Array(#"{"op":"pet","deadlineNanos":5,"holder":"n2"}"#.utf8)
        #expect(try WatchdogCodec.decodeRequest(handWritten) == .pet(deadline: MonotonicInstant(nanoseconds: 5), holder: "n2"))
    }

    @Test func badRequestsAreRejectedWithAReason() {
        for (line, reason) in [
            (#"{"op":"pet","holder":"n1"}"#, "deadlineNanos"),
            (#"{"op":"rearm","deadlineNanos":5,"holder":""}"#, "holder"),
            (#"{"op":"sleep"}"#, "unknown op"),
            (#"{"op":"pet","deadlineNanos":-5,"holder":"n1"}"#, "request"),
            ("pet 5", "request"),
        ] {
            let error = #expect(throws: WatchdogCodec.DecodingFailure.self) { try WatchdogCodec.decodeRequest(Array(line.utf8)) }
            #expect(error.map { "\($0)".contains(reason) } == true, "\(line): \(String(describing: error))")
        }
    }

    @Test func repliesRoundTripWithAndWithoutAnError() throws {
        let status = WatchdogStatus(pid: 42, state: .fencing, deadlineNanos: 7, holder: "n1", fencing: true, fences: 1, killed: 2, nowNanos: 9)
        for reply in [WatchdogReply.success(status), .failure("fencing", "the deadline passed", status)] {
            let bytes = WatchdogCodec.encode(reply)
            #expect(try WatchdogCodec.decodeReply(Array(bytes.dropLast())) == reply)
        }
        let disarmed = WatchdogStatus(pid: 1, state: .disarmed, deadlineNanos: nil, holder: nil, fencing: false, fences: 0, killed: 0, nowNanos: 1)
        #expect(try WatchdogCodec.decodeReply(Array(WatchdogCodec.encode(.success(disarmed)).dropLast())).status.deadline == nil)
    }

    @Test func lineBufferFedOneByteAtATimeYieldsEachLineOnce() throws {
        let stream = Array("first\n\nthird line\npartial".utf8)
        var buffer = LineBuffer()
        var lines: [String] = []
        for byte in stream {
            try buffer.append([byte])
            while let line = buffer.nextLine() { lines.append(String(decoding: line, as: UTF8.self)) }
        }
        #expect(lines == ["first", "", "third line"])
        try buffer.append(Array("\n".utf8))
        #expect(buffer.nextLine().map { String(decoding: $0, as: UTF8.self) } == "partial")
        #expect(buffer.nextLine() == nil)
    }

    @Test func lineBufferRefusesAnEndlessLine() throws {
        var buffer = LineBuffer(limit: 16)
        try buffer.append(Array("0123456789".utf8))
        #expect(throws: LineBuffer.LineTooLong.self) { try buffer.append(Array("0123456789".utf8)) }
        var withNewline = LineBuffer(limit: 16)
        try withNewline.append(Array("0123456789\n0123456789".utf8))
        #expect(withNewline.nextLine() != nil, "over the limit but holding a complete line is fine")
    }
}

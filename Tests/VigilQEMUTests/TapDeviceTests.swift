import Foundation
import Testing
import VigilTestKit

@testable import VigilQEMU

@Suite(.enabled(if: Capabilities.isRoot && Capabilities.which("ip") != nil))
struct TapDeviceTests {
    @Test func tapCreateAndDeleteAreIdempotentAndAttachToTheBridgeRequiresRoot() async throws {
        let suffix = String(UInt16.random(in: 0...UInt16.max), radix: 16)
        let bridge = "vqbr\(suffix)"
        let ip = try #require(Capabilities.which("ip"))
        _ = try await ProcessTools.run(ip, ["link", "add", "name", bridge, "type", "bridge"])
        defer { _ = Capabilities.which("ip").map { try? Process.run(URL(fileURLWithPath: $0), arguments: ["link", "del", bridge]).waitUntilExit() } }

        let tap = TapDevice(forVM: "vq-tap-test-\(suffix)", bridge: bridge)
        defer { _ = Capabilities.which("ip").map { try? Process.run(URL(fileURLWithPath: $0), arguments: ["link", "del", tap.name]).waitUntilExit() } }
        #expect(!tap.exists)
        try await tap.create()
        try await tap.create()
        #expect(tap.exists)
        #expect(tap.currentBridge == bridge)
        let flags = try String(contentsOfFile: "/sys/class/net/\(tap.name)/flags", encoding: .utf8)
        #expect((Int(flags.trimmingCharacters(in: .whitespacesAndNewlines).dropFirst(2), radix: 16) ?? 0) & 1 == 1, "IFF_UP")
        try await tap.delete()
        try await tap.delete()
        #expect(!tap.exists)
    }
}

import Foundation
import Synchronization
import VigilCore

/// One host route to set: reach `destination` (a peer's cluster address, /32) through
/// `gateway` (the peer's address on `network`), leaving from the interface that holds
/// `localAddress` (our address on that network), with `source` (our cluster address) so
/// connections between cluster addresses keep their endpoints.
public struct RouteRequest: Sendable, Equatable, CustomStringConvertible {
    public var peer: NodeName
    public var network: String
    public var destination: String
    public var gateway: String
    public var localAddress: String
    public var source: String
    public init(peer: NodeName, network: String, destination: String, gateway: String, localAddress: String, source: String) {
        self.peer = peer; self.network = network; self.destination = destination
        self.gateway = gateway; self.localAddress = localAddress; self.source = source
    }
    public var description: String { "\(destination)/32 via \(gateway) (\(network)) src \(source)" }
}

/// Where steered routes go. `IPRouteTable` changes the kernel's; tests substitute a fake.
public protocol RouteTable: Sendable {
    func steer(_ request: RouteRequest) async throws
}

public struct RouteTableError: Error, CustomStringConvertible {
    public var description: String
}

/// The kernel's routing table through `ip`:
/// `ip route replace <destination>/32 via <gateway> dev <device> src <source>`, where the
/// device is the one holding `localAddress` (looked up once per address with
/// `ip -o -4 addr show to <localAddress>`). Touches no other route. `command` is the
/// `ip` invocation, e.g. `["ip", "-n", "ns1"]` to act in another network namespace.
public final class IPRouteTable: RouteTable {
    public let command: [String]
    private let devices = Mutex<[String: String]>([:])

    public init(command: [String] = ["ip"]) { self.command = command }

    public func steer(_ request: RouteRequest) async throws {
        let device = try await device(holding: request.localAddress)
        let args = ["route", "replace", "\(request.destination)/32", "via", request.gateway,
                    "dev", device, "src", request.source]
        let result = try await Self.run(command + args)
        guard result.status == 0 else {
            throw RouteTableError(description: "\((command + args).joined(separator: " ")) failed (\(result.status)): \(result.output)")
        }
    }

    /// The interface that holds `address`.
    public func device(holding address: String) async throws -> String {
        if let cached = devices.withLock({ $0[address] }) { return cached }
        let result = try await Self.run(command + ["-o", "-4", "addr", "show", "to", address])
        // "7: cluster1    inet 10.77.1.1/24 ..." — the second field, minus any "@peer" suffix.
        let fields = result.output.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
        guard result.status == 0, fields.count >= 2 else {
            throw RouteTableError(description: "no interface holds \(address); is the network configured on this host?")
        }
        let device = String(fields[1].split(separator: "@")[0])
        devices.withLock { $0[address] = device }
        return device
    }

    private static func executable(_ name: String) -> String {
        if name.contains("/") { return name }
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/sbin:/usr/bin:/bin"
        for dir in path.split(separator: ":") where FileManager.default.isExecutableFile(atPath: "\(dir)/\(name)") {
            return "\(dir)/\(name)"
        }
        return name
    }

    private static func run(_ argv: [String]) async throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable(argv[0]))
        process.arguments = Array(argv.dropFirst())
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        process.standardInput = FileHandle.nullDevice
        return try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { p in
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                continuation.resume(returning: (p.terminationStatus, String(decoding: data, as: UTF8.self)))
            }
            do { try process.run() } catch { continuation.resume(throwing: error) }
        }
    }
}

import Foundation

/// A tap interface for one VM's NIC, attached to a bridge. Create and delete are
/// idempotent (they look at /sys/class/net first), so the agent can call them on every
/// reconcile. Needs root (CAP_NET_ADMIN) and `ip`.
public struct TapDevice: Sendable, Equatable {
    /// Linux's IFNAMSIZ - 1.
    public static let maximumNameLength = 15

    public var name: String
    /// Bridge to attach to (`ip link set NAME master BRIDGE`); nil leaves it unattached.
    public var bridge: String?

    public init(name: String, bridge: String? = nil) {
        precondition(!name.isEmpty && name.utf8.count <= Self.maximumNameLength, "tap name \(name) longer than 15 bytes")
        self.name = name
        self.bridge = bridge
    }

    /// The tap for VM `name`: `vt-` and 12 hex digits of a stable hash of the name
    /// (15 bytes, the same on every host).
    public init(forVM vm: String, bridge: String? = nil) {
        self.init(name: Self.name(forVM: vm), bridge: bridge)
    }

    public static func name(forVM vm: String) -> String {
        let hex = String(StableHash.fnv1a64(vm), radix: 16)
        let padded = String(repeating: "0", count: max(0, 16 - hex.count)) + hex
        return "vt-" + padded.suffix(12)
    }

    public var exists: Bool {
        FileManager.default.fileExists(atPath: "/sys/class/net/\(name)")
    }

    /// The bridge it is attached to now, if any.
    public var currentBridge: String? {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "/sys/class/net/\(name)/master") else {
            return nil
        }
        return (target as NSString).lastPathComponent
    }

    /// Creates the tap if missing, attaches it to `bridge`, sets it up.
    public func create() async throws {
        if !exists {
            try await ip(["tuntap", "add", "dev", name, "mode", "tap"])
        }
        if let bridge, currentBridge != bridge {
            try await ip(["link", "set", "dev", name, "master", bridge])
        }
        try await ip(["link", "set", "dev", name, "up"])
    }

    /// Deletes the tap if it exists.
    public func delete() async throws {
        guard exists else { return }
        try await ip(["link", "del", "dev", name])
    }

    private func ip(_ arguments: [String]) async throws {
        guard let ip = ProcessTools.which("ip") else {
            throw QEMUError(.commandFailed, "no ip command (install iproute2)")
        }
        let (status, output) = try await ProcessTools.run(ip, arguments)
        guard status == 0 else {
            throw QEMUError(.commandFailed, "ip \(arguments.joined(separator: " ")) failed with status \(status)", output: output)
        }
    }
}

import Foundation

/// What this machine can do for tests. A test that needs a capability says so in
/// its name and uses `.enabled(if: Capabilities.x)`; where the capability is
/// missing it shows as skipped, never as passed. On CI (`VIGIL_REQUIRE_ALL=1`)
/// a missing capability is a failure instead: `Capabilities.require` throws.
public enum Capabilities {
    /// Effective uid 0.
    public static let isRoot: Bool = geteuid() == 0

    /// Root and `ip netns` works (network namespaces, veth, bridges).
    public static let hasNetns: Bool = {
        guard isRoot, let ip = which("ip") else { return false }
        return run(ip, ["netns", "list"]) == 0
    }()

    public static let hasEtcd: Bool = which("etcd") != nil
    public static let hasQEMU: Bool = which("qemu-system-x86_64") != nil
    public static let hasQemuImg: Bool = which("qemu-img") != nil

    /// True on CI: skipping a capability-gated test is then an error.
    public static let requireAll: Bool = ProcessInfo.processInfo.environment["VIGIL_REQUIRE_ALL"] == "1"

    /// Call at the top of a gated test's body set (or in a dedicated test): on CI a
    /// missing capability fails loudly.
    public static func require(_ have: Bool, _ what: String) throws {
        if !have && requireAll { throw MissingCapability(what: what) }
    }

    public struct MissingCapability: Error, CustomStringConvertible {
        public var what: String
        public var description: String { "required capability missing on CI: \(what)" }
    }

    public static func which(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for dir in (path + ":/usr/sbin:/sbin").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    @discardableResult
    static func run(_ exe: String, _ args: [String]) -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return -1 }
        p.waitUntilExit()
        return p.terminationStatus
    }
}

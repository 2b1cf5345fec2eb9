import Foundation

/// Paths of the package's own executables, for tests that start real processes.
/// `VIGIL_BIN_DIR` (set by scripts/test.sh) wins; otherwise `.build/debug` of this package.
public enum BuiltBinaries {
    public static var binDir: String {
        if let d = ProcessInfo.processInfo.environment["VIGIL_BIN_DIR"], !d.isEmpty { return d }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent(".build/debug").path
    }
    public static var vigild: String { binDir + "/vigild" }
    public static var vigil: String { binDir + "/vigil" }
    public static var vigilWatchdog: String { binDir + "/vigil-watchdog" }
    public static var haveAgent: Bool { FileManager.default.isExecutableFile(atPath: vigild) }
    public static var haveCLI: Bool { FileManager.default.isExecutableFile(atPath: vigil) }
    public static var haveWatchdog: Bool { FileManager.default.isExecutableFile(atPath: vigilWatchdog) }
}

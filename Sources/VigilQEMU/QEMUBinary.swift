/// Where `qemu-system-x86_64` is.
public struct QEMUBinary: Sendable, Equatable {
    public static let defaultName = "qemu-system-x86_64"

    public var path: String

    public init(path: String) { self.path = path }

    /// Finds the binary on `PATH` (and the sbin directories).
    /// - Throws: `QEMUError` `.binaryMissing` with what to install; call this at agent
    ///   start so a host without QEMU says so at once, not at the first VM start.
    public static func locate(name: String = defaultName, searchPath: String? = nil) throws -> QEMUBinary {
        let found = searchPath.map { ProcessTools.which(name, path: $0) } ?? ProcessTools.which(name)
        guard let found else {
            throw QEMUError(
                .binaryMissing,
                "QEMU binary missing: no \(name) on PATH; install it (Debian: apt-get install --no-install-recommends qemu-system-x86)")
        }
        return QEMUBinary(path: found)
    }
}

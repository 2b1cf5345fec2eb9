import Foundation

/// Facts about the file system under a path.
///
/// Read from /proc/self/mountinfo rather than `statfs` (which Swift's Glibc module
/// does not export): the mount whose mount point is the longest prefix of the path.
public enum HostFileSystem {
    /// Whether files at `path` (or, if it does not exist yet, in its directory) can be
    /// opened with O_DIRECT, which `cache=none` needs. False on tmpfs and ramfs.
    public static func supportsDirectIO(at path: String) -> Bool {
        guard let type = type(at: path) else { return true }
        return type != "tmpfs" && type != "ramfs"
    }

    /// The file system type (`ext4`, `tmpfs`, …) of `path` or its nearest existing ancestor.
    public static func type(at path: String) -> String? {
        guard let mountinfo = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        return type(at: resolved(path), mountinfo: mountinfo)
    }

    /// The type of the mount holding `path` (absolute, symlinks resolved) in a mountinfo text.
    static func type(at path: String, mountinfo: String) -> String? {
        var best: (point: String, type: String)?
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count > 6, let dash = fields.firstIndex(of: "-"), dash + 1 < fields.count else { continue }
            let point = unescape(String(fields[4]))
            let inside = point == "/" || path == point || path.hasPrefix(point + "/")
            // Later lines mount over earlier ones at the same point, so ">=".
            if inside, point.count >= (best?.point.count ?? -1) {
                best = (point, String(fields[dash + 1]))
            }
        }
        return best?.type
    }

    private static func resolved(_ path: String) -> String {
        var candidate = URL(fileURLWithPath: path)
        while !FileManager.default.fileExists(atPath: candidate.path), candidate.path != "/" {
            candidate.deleteLastPathComponent()
        }
        return candidate.resolvingSymlinksInPath().path
    }

    /// mountinfo writes space, tab, newline and backslash as `\ooo`.
    private static func unescape(_ field: String) -> String {
        guard field.contains("\\") else { return field }
        var out = [UInt8]()
        var bytes = Array(field.utf8)[...]
        while let b = bytes.popFirst() {
            if b == UInt8(ascii: "\\"), bytes.count >= 3, let v = UInt8(String(decoding: bytes.prefix(3), as: UTF8.self), radix: 8) {
                out.append(v)
                bytes.removeFirst(3)
            } else {
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

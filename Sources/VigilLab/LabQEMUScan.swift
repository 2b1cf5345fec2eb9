import Foundation

extension Lab {
    /// VM name → hosts with a live QEMU for it, straight from /proc: a process's host is
    /// its network namespace; zombies (killed, not reaped) run no guest. With
    /// `skipIncoming`, QEMUs started with `-incoming` (a migration's paused destination) are left out.
    public func runningQEMUs(skipIncoming: Bool = false) -> [String: [LabHost]] {
        var inodes: [String: LabHost] = [:]
        for h in hosts {
            guard let ns = namespace(h) else { continue }
            var st = stat()
            if stat("/run/netns/" + ns, &st) == 0 { inodes["net:[\(st.st_ino)]"] = h }
        }
        var out: [String: [LabHost]] = [:]
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return out }
        for e in entries {
            guard Int32(e) != nil, let data = FileManager.default.contents(atPath: "/proc/\(e)/cmdline") else { continue }
            let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let exe = argv.first, exe.hasSuffix("qemu-system-x86_64"), let i = argv.firstIndex(of: "-name"), i + 1 < argv.count else { continue }
            if skipIncoming && argv.contains("-incoming") { continue }
            if let stat = try? String(contentsOfFile: "/proc/\(e)/stat", encoding: .utf8),
               let close = stat.lastIndex(of: ")"), stat[stat.index(close, offsetBy: 2)] == "Z" { continue }
            guard let link = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\(e)/ns/net"), let h = inodes[link] else { continue }
            out[argv[i + 1], default: []].append(h)
        }
        return out
    }
}

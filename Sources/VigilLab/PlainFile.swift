import Foundation

enum PlainFile {
    /// A whole (small, /proc or pid) file with plain open/read, retrying on EINTR: the test process
    /// gets SIGCHLD for every command it runs, and an interrupted read must not look like a dead process.
    static func contents(_ path: String) -> [UInt8]? {
        var fd: Int32
        repeat { fd = open(path, O_RDONLY | O_CLOEXEC) } while fd < 0 && errno == EINTR
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n > 0 { data += buffer[0..<n]; continue }
            if n < 0 && errno == EINTR { continue }
            return n == 0 ? data : nil
        }
    }
}

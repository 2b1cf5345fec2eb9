#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// A scripted QMP peer on a unix socket, on its own thread: tests the client's
/// connection handling without QEMU.
final class FakeQMPServer: @unchecked Sendable {
    let path: String
    private let listener: Int32

    init(path: String) throws {
        self.path = path
        unlink(path)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            let bytes = Array(path.utf8)
            precondition(bytes.count < raw.count)
            raw.copyBytes(from: bytes)
            raw[bytes.count] = 0
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, listen(listener, 4) == 0 else { throw POSIXError(.EADDRINUSE) }
    }

    deinit {
        close(listener)
        unlink(path)
    }

    /// Accepts one client and runs `script` with it on a new thread; closes the connection after.
    func serveOne(_ script: @escaping @Sendable (Connection) -> Void) {
        let listener = self.listener
        Thread.detachNewThread {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { return }
            let connection = Connection(fd: fd)
            script(connection)
            close(fd)
        }
    }

    final class Connection: @unchecked Sendable {
        let fd: Int32
        private var buffer: [UInt8] = []
        init(fd: Int32) { self.fd = fd }

        func send(_ line: String) {
            let bytes = Array((line + "\r\n").utf8)
            _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }

        /// The next line the client sent, as (command, id), or nil at EOF.
        func readCommand() -> (command: String, id: Int)? {
            while true {
                if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = Data(buffer[..<nl])
                    buffer.removeSubrange(...nl)
                    guard let o = try? JSONSerialization.jsonObject(with: line) as? [String: Any] else { return nil }
                    return (o["execute"] as? String ?? "", (o["id"] as? NSNumber)?.intValue ?? -1)
                }
                var chunk = [UInt8](repeating: 0, count: 1024)
                let n = recv(fd, &chunk, chunk.count, 0)
                if n <= 0 { return nil }
                buffer += chunk[0..<n]
            }
        }
    }
}

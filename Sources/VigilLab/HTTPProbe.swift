import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A one-shot HTTP/1.0 GET over a plain IPv4 socket, for readiness checks from the root
/// namespace (etcd `/health`, agent `/healthz`). No connection reuse, no TLS, no redirects.
enum HTTPProbe {
    struct Response: Sendable {
        var status: Int
        var body: String
    }

    /// True when a TCP connection to `host:port` is accepted or refused (something answered) within `timeout`.
    static func answers(host: String, port: Int, timeout: Duration = .seconds(1)) -> Bool {
        switch connectSocket(host: host, port: port, timeout: timeout) {
        case .connected(let fd): close(fd); return true
        case .refused: return true
        case .failed: return false
        }
    }

    enum Connection { case connected(Int32), refused, failed }

    static func connectSocket(host: String, port: Int, timeout: Duration) -> Connection {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { return .failed }
        let (seconds, attoseconds) = timeout.components
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        // On Linux a blocking connect honours SO_SNDTIMEO, so this bounds connect, send and receive.
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { close(fd); return .failed }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc == 0 { return .connected(fd) }
        let error = errno
        close(fd)
        return error == ECONNREFUSED ? .refused : .failed
    }

    /// nil when the connection fails or no complete status line arrives within `timeout`.
    static func get(host: String, port: Int, path: String, timeout: Duration = .seconds(1)) -> Response? {
        guard case .connected(let fd) = connectSocket(host: host, port: port, timeout: timeout) else { return nil }
        defer { close(fd) }

        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n".utf8)
        let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        guard sent == request.count else { return nil }

        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while data.count < 1 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            data += buffer[0..<n]
        }
        let text = String(decoding: data, as: UTF8.self)
        let parts = text.components(separatedBy: "\r\n\r\n")
        let statusLine = parts.first?.split(separator: "\r\n").first ?? ""
        let fields = statusLine.split(separator: " ")
        guard fields.count >= 2, fields[0].hasPrefix("HTTP/"), let status = Int(fields[1]) else { return nil }
        return Response(status: status, body: parts.dropFirst().joined(separator: "\r\n\r\n"))
    }
}

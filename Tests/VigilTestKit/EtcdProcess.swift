import Foundation

/// A real single-member etcd on free loopback ports, in its own temp data dir.
/// Stop it with `stop()`; `restart()` keeps data and ports (for watch resumption tests).
public final class EtcdProcess: @unchecked Sendable {
    public private(set) var clientPort: Int
    public private(set) var peerPort: Int
    public let dataDir: String
    private var process: Process?
    public var endpoint: String { "http://127.0.0.1:\(clientPort)" }

    public init() throws {
        clientPort = try freePort()
        peerPort = try freePort()
        dataDir = NSTemporaryDirectory() + "vigil-etcd-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dataDir, withIntermediateDirectories: true)
        // A port found free can be taken by a parallel test before etcd binds it: then
        // etcd exits at once, and we try again on other ports.
        var lastError: Error?
        for _ in 0..<3 {
            while peerPort == clientPort { peerPort = try freePort() }
            do { try start(); return } catch {
                lastError = error
                stop(kill: true)
                try? FileManager.default.removeItem(atPath: dataDir + "/data")
                clientPort = try freePort()
                peerPort = try freePort()
            }
        }
        throw lastError!
    }

    public func start() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Capabilities.which("etcd") ?? "/usr/bin/etcd")
        let peer = "http://127.0.0.1:\(peerPort)"
        p.arguments = [
            "--name", "t", "--data-dir", dataDir + "/data",
            "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "t=\(peer)", "--initial-cluster-state", "new",
            "--heartbeat-interval", "50", "--election-timeout", "250", "--logger", "zap", "--log-outputs", dataDir + "/etcd.log",
        ]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        try waitHealthy()
    }

    /// Wait until a write goes through.
    func waitHealthy(timeout: TimeInterval = 15) throws {
        let until = Date().addingTimeInterval(timeout)
        while Date() < until {
            if let out = try? httpPost(port: clientPort, path: "/v3/kv/range", body: #"{"key":"AA=="}"#), out.contains("header") { return }
            if let p = process, !p.isRunning {
                throw TestKitError("etcd exited (status \(p.terminationStatus)) on \(endpoint); see \(dataDir)/etcd.log")
            }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw TestKitError("etcd did not become healthy on \(endpoint) within \(timeout) s; see \(dataDir)/etcd.log")
    }

    /// SIGKILL (crash) or SIGTERM, and wait for exit.
    public func stop(kill: Bool = false) {
        guard let p = process, p.isRunning else { return }
        if kill { Foundation.kill(p.processIdentifier, SIGKILL) } else { p.terminate() }
        p.waitUntilExit()
        process = nil
    }

    public func restart() throws {
        stop()
        try start()
    }

    deinit {
        stop(kill: true)
        try? FileManager.default.removeItem(atPath: dataDir)
    }
}

public struct TestKitError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// A TCP port nobody listens on right now (bound once, then released).
public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestKitError("socket failed") }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard r == 0 else { throw TestKitError("bind failed") }
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// A minimal blocking HTTP/1.0 POST on loopback (no client library, for readiness checks).
public func httpPost(host: String = "127.0.0.1", port: Int, path: String, body: String, timeout: TimeInterval = 1) throws -> String {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestKitError("socket failed") }
    defer { close(fd) }
    var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - floor(timeout)) * 1e6))
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr(host)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
    guard r == 0 else { throw TestKitError("connect to \(host):\(port) failed") }
    let req = "POST \(path) HTTP/1.0\r\nHost: \(host)\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    _ = req.withCString { send(fd, $0, strlen($0), 0) }
    var out = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = recv(fd, &buf, buf.count, 0)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}

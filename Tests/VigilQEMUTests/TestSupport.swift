#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

@testable import VigilQEMU

enum TestSupport {
    static let logger: Logger = {
        var l = Logger(label: "vigil.qemu.test")
        l.logLevel = ProcessInfo.processInfo.environment["VIGIL_TEST_DEBUG"] == "1" ? .debug : .warning
        return l
    }()

    static let repoRoot: String = {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }()

    static var guestDirectory: String { repoRoot + "/guest/out" }

    /// Whether the guest image is built (`guest/build.sh`).
    static var hasGuestImage: Bool {
        QEMUCommand.preferredKernel(in: guestDirectory) != nil
            && FileManager.default.fileExists(atPath: guestDirectory + "/initramfs.cpio.gz")
    }

    /// A fresh directory under /tmp (short: unix socket paths are limited to 107 bytes).
    static func makeTemporaryDirectory() throws -> String {
        let path = "/tmp/vq-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    /// A TCP port on 127.0.0.1 that was free a moment ago.
    static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// A TCP listener on 127.0.0.1 that never accepts: a migration into it stalls once
    /// the socket buffers are full. Close the returned descriptor when done.
    static func blackHoleListener() -> (fd: Int32, port: Int) {
        let port = freePort()
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        listen(fd, 1)
        return (fd, port)
    }

    /// A guest VM's command with user-mode networking forwarding `httpPort` to its port 80.
    static func guestCommand(name: String, directory: String, httpPort: Int, memoryMiB: Int = 128) -> QEMUCommand {
        let disk = directory + "/\(name).raw"
        if !FileManager.default.fileExists(atPath: disk) {
            _ = FileManager.default.createFile(atPath: disk, contents: nil)
            let h = FileHandle(forWritingAtPath: disk)!
            try? h.truncate(atOffset: 1 << 20)
            try? h.close()
        }
        return QEMUCommand(
            name: name, memoryMiB: memoryMiB,
            kernel: QEMUCommand.preferredKernel(in: guestDirectory)!,
            initrd: guestDirectory + "/initramfs.cpio.gz",
            append: "console=ttyS0 quiet cryptomgr.notests panic=-1 vigil.ip=10.0.2.15/24 vigil.gw=10.0.2.2 vigil.name=\(name) vigil.write_ms=100",
            disks: [.file(disk)],
            nic: .init(backend: .user(hostForwards: [.init(hostPort: httpPort, guestPort: 80)]), mac: .stable(forVM: name)),
            qmpSocket: directory + "/\(name).qmp", serialLog: directory + "/\(name).serial", pidfile: directory + "/\(name).pid")
    }

    /// One HTTP GET on 127.0.0.1; the body, or nil on any failure. Blocking, with short
    /// socket timeouts; run on its own thread so the cooperative pool stays free.
    static func httpGet(port: Int, path: String = "/") async -> String? {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: blockingGet(port: port, path: path))
            }
        }
    }

    private static func blockingGet(port: Int, path: String) -> String? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard ok == 0 else { return nil }
        let request = Array("GET \(path) HTTP/1.1\r\nHost: guest\r\nConnection: close\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return nil }
        var response = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            response += chunk[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 200"), let split = text.range(of: "\r\n\r\n") else { return nil }
        return String(text[split.upperBound...])
    }

    /// The guest's status JSON, polled until it answers or `timeout` passes.
    static func waitForGuest(port: Int, timeout: Duration) async -> [String: Any]? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let body = await httpGet(port: port),
               let object = try? JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any]
            {
                return object
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    /// Kills a QEMU if it still runs (test cleanup; ignores errors).
    static func cleanUp(_ process: QEMUProcess?) async {
        guard let process else { return }
        _ = try? await process.kill(.sigkill, timeout: .seconds(5))
        await process.qmp.close()
    }

    /// The serial log, for failure messages.
    static func serial(_ path: String?) -> String {
        guard let path, let data = FileManager.default.contents(atPath: path) else { return "(no serial log)" }
        return String(decoding: data.suffix(3000), as: UTF8.self)
    }
}

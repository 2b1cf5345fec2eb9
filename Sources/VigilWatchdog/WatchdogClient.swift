#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import VigilCore

/// vigild's end of the watchdog protocol: one connection to `vigil-watchdog`, kept
/// open and re-made when it breaks (the watchdog restarted).
///
/// Every call blocks a private serial queue, never a thread of Swift's cooperative
/// pool, for at most `timeout` (one retry on a fresh connection after a broken one can
/// double that). Requests are idempotent (absolute deadlines), so a retry is safe.
/// Closing the connection, or vigild dying, leaves the watchdog's deadline in force.
public final class WatchdogClient: Sendable {
    public let socketPath: String
    public let timeout: Duration
    private let queue = DispatchQueue(label: "vigil.watchdog.client")
    private let connection: Connection

    /// - Parameters:
    ///   - socketPath: usually `WatchdogClient.socketPath(stateDirectory:)`.
    ///   - timeout: how long to wait for the watchdog to accept, read or answer.
    public init(socketPath: String, timeout: Duration = .seconds(1)) {
        self.socketPath = socketPath
        self.timeout = timeout
        connection = Connection(path: socketPath, timeout: timeout)
    }

    /// Where vigil-watchdog listens by default: `<stateDir>/watchdog.sock`.
    public static func socketPath(stateDirectory: String) -> String { stateDirectory + "/watchdog.sock" }

    /// "My lease holds until `deadline`": arms the watchdog, or moves its deadline (an
    /// earlier one too). Call after every acknowledged keep-alive, with the keep-alive's
    /// send time plus the fence window.
    /// - Throws: `WatchdogError` `.fencing` when the deadline had already passed (the
    ///   VMs are being killed; only `rearm` ends that), or a connection error.
    @discardableResult
    public func pet(until deadline: MonotonicInstant, holder: String) async throws -> WatchdogStatus {
        try await send(.pet(deadline: deadline, holder: holder))
    }

    /// Ends fencing and watches `deadline`. Only after a fence, once vigild holds a fresh
    /// lease and has reconciled its VMs: it tells the watchdog the QEMUs it now starts
    /// are legitimate. Refused (`.fencing`) if a deadline passed unnoticed just now; retry.
    @discardableResult
    public func rearm(until deadline: MonotonicInstant, holder: String) async throws -> WatchdogStatus {
        try await send(.rearm(deadline: deadline, holder: holder))
    }

    /// Stops watching (vigild leaves the cluster and runs no VMs). Refused while fencing.
    @discardableResult
    public func disarm() async throws -> WatchdogStatus {
        try await send(.disarm)
    }

    public func status() async throws -> WatchdogStatus {
        try await send(.status)
    }

    /// Closes the connection; the watchdog keeps its deadline. A later call reconnects.
    public func close() async {
        await withCheckedContinuation { continuation in
            queue.async {
                self.connection.close()
                continuation.resume()
            }
        }
    }

    private func send(_ request: WatchdogRequest) async throws -> WatchdogStatus {
        let reply = try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try self.connection.exchange(request) }) }
        }
        guard reply.ok else {
            let failure = reply.error ?? .init(code: "unknown", message: "refused without a reason")
            let code: WatchdogError.Code = failure.code == "fencing" ? .fencing : .protocolViolation
            throw WatchdogError(code, failure.message, status: reply.status)
        }
        return reply.status
    }
}

/// The socket of a `WatchdogClient`; only ever touched on the client's queue.
private final class Connection: @unchecked Sendable {
    let path: String
    let timeout: Duration
    private var fd: Int32?

    init(path: String, timeout: Duration) {
        self.path = path
        self.timeout = timeout
    }

    deinit { close() }

    func close() {
        if let fd { Glibc.close(fd) }
        fd = nil
    }

    /// The connection broke (peer gone): worth one retry on a new connection.
    private struct Broken: Error { var reason: String }

    func exchange(_ request: WatchdogRequest) throws -> WatchdogReply {
        let bytes = WatchdogCodec.encode(request)
        let reused = fd != nil
        do {
            return try roundTrip(bytes)
        } catch let broken as Broken {
            close()
            guard reused else { throw WatchdogError(.connectionLost, "\(path): \(broken.reason)") }
        }
        // The watchdog restarted since the last request: once more, on a new connection.
        do {
            return try roundTrip(bytes)
        } catch let broken as Broken {
            close()
            throw WatchdogError(.connectionLost, "\(path): \(broken.reason) (also after reconnecting)")
        }
    }

    private func roundTrip(_ bytes: [UInt8]) throws -> WatchdogReply {
        let socket: Int32
        if let fd {
            socket = fd
        } else {
            socket = try UnixSocket.connect(path: path, timeout: timeout)
            fd = socket
        }
        if let code = UnixSocket.sendAll(socket, bytes) {
            if code == EAGAIN || code == EWOULDBLOCK { throw timedOut("sending") }
            throw Broken(reason: "send: \(UnixSocket.errorText(code))")
        }
        var lines = LineBuffer()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            if let line = lines.nextLine() {
                do {
                    return try WatchdogCodec.decodeReply(line)
                } catch {
                    close()
                    throw WatchdogError(.protocolViolation, "\(path) answered something else: \(error)")
                }
            }
            let n = chunk.withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
            if n > 0 {
                do {
                    try lines.append(chunk[..<n])
                } catch {
                    close()
                    throw WatchdogError(.protocolViolation, "\(path): \(error)")
                }
            } else if n == 0 {
                throw Broken(reason: "the watchdog closed the connection")
            } else if errno == EINTR {
                continue
            } else if errno == EAGAIN || errno == EWOULDBLOCK {
                throw timedOut("waiting for the reply")
            } else {
                throw Broken(reason: "recv: \(UnixSocket.errorText())")
            }
        }
    }

    /// A watchdog that does not answer in time is stopped or starved; the connection
    /// may still deliver the late reply, so it is dropped.
    private func timedOut(_ what: String) -> WatchdogError {
        close()
        return WatchdogError(.timedOut, "\(path): no progress \(what) within \(timeout): is vigil-watchdog stopped or starved?")
    }
}

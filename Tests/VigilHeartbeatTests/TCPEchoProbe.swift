import Foundation
import Synchronization

/// A TCP exchange between two cluster addresses, one byte out and back every 10 ms, on
/// plain threads (blocking sockets, nothing on the concurrency pool). Records when each
/// reply arrived, so a test can find the longest stall.
final class TCPEchoProbe: Sendable {
    private let client: CInt
    private let listener: CInt
    private let replies = Mutex<[ContinuousClock.Instant]>([])
    private let failure = Mutex<String?>(nil)
    private let stopping = Atomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    /// `client` is bound (not connected) in one namespace, `listener` listening in another.
    init(client: CInt, listener: CInt, to address: String, port: UInt16) throws {
        self.client = client
        self.listener = listener
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        Thread { [self] in serve() }.start()
        try NetnsTopology.connect(client, to: address, port: port)
        Thread { [self] in exchange() }.start()
    }

    private func serve() {
        let conn = accept(listener, nil, nil)
        guard conn >= 0 else { return }
        defer { close(conn) }
        var one: Int32 = 1
        setsockopt(conn, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var byte: UInt8 = 0
        while read(conn, &byte, 1) == 1 {
            guard write(conn, &byte, 1) == 1 else { return }
        }
    }

    private func exchange() {
        defer { finished.signal() }
        let clock = ContinuousClock()
        var byte: UInt8 = 0
        while !stopping.load(ordering: .relaxed) {
            byte &+= 1
            var reply: UInt8 = 0
            guard write(client, &byte, 1) == 1 else { failure.withLock { $0 = "write failed: errno \(errno)" }; return }
            guard read(client, &reply, 1) == 1, reply == byte else { failure.withLock { $0 = "no echo within 10 s (errno \(errno))" }; return }
            let now = clock.now
            replies.withLock { $0.append(now) }
            usleep(10_000)
        }
    }

    /// Stops the exchange, closes both sockets, returns the reply times and any failure.
    func stop() -> (replies: [ContinuousClock.Instant], failure: String?) {
        stopping.store(true, ordering: .relaxed)
        finished.wait()
        shutdown(client, Int32(SHUT_RDWR))
        close(client)
        close(listener)
        return (replies.withLock { $0 }, failure.withLock { $0 })
    }

    /// The longest time between two consecutive replies, of those pairs whose later reply
    /// falls in `window` (so a stall that starts just before the window counts).
    static func longestGap(_ replies: [ContinuousClock.Instant], in window: ClosedRange<ContinuousClock.Instant>) -> Duration {
        zip(replies, replies.dropFirst()).filter { window.contains($0.1) }.map { $0.duration(to: $1) }.max() ?? .zero
    }
}

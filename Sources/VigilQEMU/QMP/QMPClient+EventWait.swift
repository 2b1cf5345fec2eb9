import Foundation


extension QMPClient {
    /// When QEMU emitted the first event `name` stamped at or after `since` (QEMU's own
    /// wall-clock stamp), or nil after `timeout` or on cancellation. Reads `events`, whose
    /// single consumer the caller must be meanwhile. When it times out (or is cancelled) the
    /// stream ends for good (an `AsyncStream` consumer's cancellation finishes it), so later
    /// calls return nil at once: use it where the event is expected.
    public func firstEvent(_ name: String, since: Date, timeout: Duration,
                           where matches: @escaping @Sendable (QMPValue) -> Bool = { _ in true }) async -> Date? {
        await withTaskGroup(of: Date?.self) { group in
            group.addTask {
                for await e in self.events where e.name.rawValue == name && matches(e.data) {
                    if let t = e.timestamp, t >= since { return t }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
    }
}

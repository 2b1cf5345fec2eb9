import Synchronization
import VigilStore

/// Lets a reconcile loop sleep until the store changes under a prefix (via a watch),
/// with a periodic full pass as a safety net when a watch is slow to notice a broken
/// connection. Rounds stay idempotent; this only makes them prompt.
final class StoreWakeup: Sendable {
    private let changed = Mutex(true)

    /// Run `body` while a watch on `prefix` flags changes (keys for which `relevant` holds).
    static func watching<T: Sendable>(_ etcd: EtcdClient, prefix: String, relevant: @escaping @Sendable (String) -> Bool = { _ in true },
                                      _ body: @Sendable (StoreWakeup) async -> T) async -> T {
        let wakeup = StoreWakeup()
        return await withTaskGroup(of: T?.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    try? await etcd.watch(prefix: prefix) { batch in
                        if batch.events.contains(where: { relevant($0.kv.key) }) { wakeup.changed.withLock { $0 = true } }
                    }
                    try? await Task.sleep(for: .milliseconds(200))
                }
                return nil
            }
            let result = await body(wakeup)
            group.cancelAll()
            return result
        }
    }

    /// Return when a change was flagged or `maxWait` passed, whichever is first.
    func wait(maxWait: Duration, slice: Duration = .milliseconds(20)) async {
        let deadline = ContinuousClock.now + maxWait
        while ContinuousClock.now < deadline && !Task.isCancelled {
            if changed.withLock({ let c = $0; $0 = false; return c }) { return }
            try? await Task.sleep(for: slice)
        }
        changed.withLock { $0 = false }
    }
}

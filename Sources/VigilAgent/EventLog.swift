import Logging
import Foundation
import Synchronization
import VigilCore
import VigilStore

/// The cluster event log in etcd (`events/`): append, page, trim.
public final class EventLog: Sendable {
    let etcd: EtcdClient
    let keys: KeySpace
    let reporter: NodeName
    private let sequence = Mutex<UInt64>(0)

    public init(etcd: EtcdClient, keys: KeySpace, reporter: NodeName) {
        self.etcd = etcd; self.keys = keys; self.reporter = reporter
    }

    /// Append an event, stamped with the wall clock. With `onlyIf`, the write happens
    /// only while those compares hold (a leader writes only while it still leads).
    @discardableResult
    public func record(_ event: ClusterEvent, onlyIf compares: [Compare] = []) async throws -> EventID {
        var e = event
        e.atMillis = Int64(Date().timeIntervalSince1970 * 1000)
        let seq = sequence.withLock { $0 += 1; return $0 }
        let id = EventID(atMillis: e.atMillis, reporter: reporter, sequence: seq)
        if compares.isEmpty {
            try await etcd.putJSON(keys.event(id), e)
        } else {
            try await etcd.compareAndSwap(compares, then: [try .putJSON(keys.event(id), e)])
        }
        return id
    }

    /// Events after `after` (exclusive), oldest first, at most `limit`.
    public func page(after: EventID?, limit: Int) async throws -> EventPage {
        let from = after.map { keys.event($0) + "\u{0}" } ?? keys.eventsPrefix
        let end = rangeEnd(ofPrefix: keys.eventsPrefix)
        let r = try await etcd.getRange(from: from, to: end, limit: Int64(limit))
        let events = decode(r.kvs)
        return EventPage(events: events, next: events.last?.id ?? after)
    }

    /// The newest `limit` events, oldest first.
    public func tail(limit: Int) async throws -> EventPage {
        let end = rangeEnd(ofPrefix: keys.eventsPrefix)
        let r = try await etcd.getRange(from: keys.eventsPrefix, to: end, limit: Int64(limit), descending: true)
        let events = decode(r.kvs.reversed())
        return EventPage(events: events, next: events.last?.id)
    }

    /// Events from their keys; an entry that does not decode (a newer format) is skipped.
    private func decode(_ kvs: some Sequence<KeyValue>) -> [StoredEvent] {
        kvs.compactMap { kv in
            guard let name = keys.name(of: kv.key, under: keys.eventsPrefix), let e = try? kv.decode(ClusterEvent.self) else { return nil }
            return StoredEvent(id: EventID(rawValue: name), event: e)
        }
    }

    /// Delete all but the newest `keep` events.
    public func trim(keep: Int) async throws {
        let end = rangeEnd(ofPrefix: keys.eventsPrefix)
        // The (keep+1)-th newest key: everything up to and including it goes.
        let r = try await etcd.getRange(from: keys.eventsPrefix, to: end, limit: Int64(keep + 1), descending: true)
        guard r.kvs.count == keep + 1, let cut = r.kvs.last else { return }
        try await etcd.deleteRange(from: keys.eventsPrefix, to: cut.key + "\u{0}")
    }
}

extension Severity {
    /// The log level an event of this severity is logged at.
    var logLevel: Logger.Level {
        switch self {
        case .info: .info
        case .warning: .warning
        case .error: .error
        }
    }
}

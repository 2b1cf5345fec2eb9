import Foundation
import Testing
import VigilTestKit
@testable import VigilStore

/// Against a real etcd on free loopback ports.
@Suite(.enabled(if: Capabilities.hasEtcd, "needs etcd (Debian's etcd-server)"), .serialized)
struct EtcdClientTests {
    let etcd: EtcdProcess
    let client: EtcdClient

    init() throws {
        etcd = try EtcdProcess()
        client = try EtcdClient(endpoints: [etcd.endpoint])
    }

    @Test func putGetPrefixAndDeleteRoundTrip() async throws {
        try await client.put("/t/a", "1")
        try await client.put("/t/b", "2")
        try await client.put("/u/c", "3")
        #expect(try await client.get("/t/a")?.string == "1")
        let r = try await client.getPrefix("/t/")
        #expect(r.kvs.map(\.key) == ["/t/a", "/t/b"])
        #expect(try await client.deletePrefix("/t/") == 2)
        #expect(try await client.get("/t/a") == nil)
        #expect(try await client.get("/u/c")?.string == "3")
    }

    @Test func compareAndSwapDetectsAConflictingWriter() async throws {
        try await client.put("/cas", "v0")
        let seen = try #require(try await client.get("/cas"))
        // Another writer gets in first with the same expectation...
        try await client.compareAndSwap([.modRevision("/cas", equals: seen.modRevision)], then: [.put("/cas", "theirs")])
        // ...so ours must fail, and leave their value.
        await #expect(throws: EtcdError.self) {
            try await client.compareAndSwap([.modRevision("/cas", equals: seen.modRevision)], then: [.put("/cas", "ours")])
        }
        do {
            try await client.compareAndSwap([.modRevision("/cas", equals: seen.modRevision)], then: [.put("/cas", "ours")])
        } catch let e as EtcdError { #expect(e.code == .compareFailed) }
        #expect(try await client.get("/cas")?.string == "theirs")
        // Create-if-absent: only the first succeeds.
        let first = try await client.txn([.absent("/once")], then: [.put("/once", "a")])
        let second = try await client.txn([.absent("/once")], then: [.put("/once", "b")], orElse: [.get(key: "/once")])
        #expect(first.succeeded && !second.succeeded)
        #expect(second.ranges.first?.first?.string == "a")
    }

    @Test func leaseExpiryDeletesBoundKeysAndKeepAliveThenFails() async throws {
        // TTL 3 s: renewals every 250 ms keep it with room for a loaded machine.
        let lease = try await client.grantLease(ttl: 3)
        try await client.put("/alive/x", "here", lease: lease.id)
        #expect(try await client.get("/alive/x")?.lease == lease.id)
        // Kept alive, it outlives its TTL.
        for _ in 0..<16 { try await client.keepAlive(lease.id); try await Task.sleep(for: .milliseconds(250)) }
        #expect(try await client.get("/alive/x") != nil)
        // Left alone, it expires (etcd checks about every 500 ms) and takes the key with it.
        let start = ContinuousClock.now
        while try await client.get("/alive/x") != nil {
            #expect(ContinuousClock.now - start < .seconds(6), "key outlived its lease")
            try await Task.sleep(for: .milliseconds(100))
        }
        do { try await client.keepAlive(lease.id); Issue.record("keepalive on an expired lease succeeded") }
        catch let e as EtcdError { #expect(e.code == .leaseNotFound) }
        do { _ = try await client.timeToLive(lease.id); Issue.record("timeToLive on an expired lease succeeded") }
        catch let e as EtcdError { #expect(e.code == .leaseNotFound) }
    }

    @Test func revokeDeletesBoundKeysAtOnce() async throws {
        let lease = try await client.grantLease(ttl: 30)
        try await client.put("/r/k", "v", lease: lease.id)
        #expect(try await client.timeToLive(lease.id).keys == ["/r/k"])
        try await client.revokeLease(lease.id)
        #expect(try await client.get("/r/k") == nil)
    }

    @Test func watchResumesAfterEtcdRestartWithoutMissingOrRepeating() async throws {
        let writer = try EtcdClient(endpoints: [etcd.endpoint])
        let seen = Collected()
        let start = try await client.getPrefix("/w/").revision + 1
        let watcher = Task {
            try await client.watch(prefix: "/w/", fromRevision: start) { batch in
                for e in batch.events { await seen.add(e.kv.string) }
            }
        }
        for i in 0..<5 { try await writer.put("/w/k\(i)", "\(i)") }
        try await seen.wait(count: 5)
        try etcd.restart()
        // Writes while the watch is still reconnecting.
        for i in 5..<10 { try await writer.put("/w/k\(i)", "\(i)") }
        try await seen.wait(count: 10)
        try await Task.sleep(for: .milliseconds(300))
        #expect(await seen.values == (0..<10).map(String.init))
        watcher.cancel()
    }

    @Test func watchFromACompactedRevisionThrowsCompacted() async throws {
        for i in 0..<5 { try await client.put("/c/k", "\(i)") }
        let rev = try await client.getPrefix("/c/").revision
        let _: WireEmptyResponse = try await client.call("/v3/kv/compaction", CompactRequest(revision: WireInt(rev), physical: true))
        do {
            try await client.watch(prefix: "/c/", fromRevision: 1) { _ in }
            Issue.record("watch from a compacted revision did not throw")
        } catch let e as EtcdError {
            #expect(e.code == .compacted)
            #expect(e.compactRevision == rev)
        }
    }

    @Test func failsOverToALiveMemberAndNamesUnreachableOnes() async throws {
        let dead = "http://127.0.0.1:\(try freePort())"
        let mixed = try EtcdClient(endpoints: [dead, etcd.endpoint])
        try await mixed.put("/f", "ok")
        #expect(try await mixed.get("/f")?.string == "ok")
        let none = try EtcdClient(endpoints: [dead])
        do { _ = try await none.get("/f"); Issue.record("unreachable etcd answered") }
        catch let e as EtcdError { #expect(e.code == .unreachable); #expect(e.message.contains(dead)) }
    }

    @Test func rejectsMalformedEndpoints() {
        #expect(throws: EtcdError.self) { try EtcdClient(endpoints: ["localhost:2379"]) }
        #expect(throws: EtcdError.self) { try EtcdClient(endpoints: []) }
        #expect(throws: EtcdError.self) { try EtcdClient(endpoints: ["http://host"]) }
    }
}

struct CompactRequest: Codable, Sendable { var revision: WireInt; var physical: Bool }

actor Collected {
    var values: [String] = []
    func add(_ v: String) { values.append(v) }
    func wait(count: Int, timeout: Duration = .seconds(10)) async throws {
        let start = ContinuousClock.now
        while values.count < count {
            if ContinuousClock.now - start > timeout { throw TestKitError("saw \(values.count) of \(count) events: \(values)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }
}

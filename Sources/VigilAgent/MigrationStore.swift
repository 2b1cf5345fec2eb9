import Foundation
import VigilCore
import VigilStore

/// Reads and compare-and-swaps `vms/<vm>/migration` records.
struct MigrationStore: Sendable {
    let etcd: EtcdClient
    let keys: KeySpace

    static func nowMillis() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// The VMs, and every migration record with its mod revision, from one read of `vms/`.
    static func decode(_ kvs: [KeyValue], keys: KeySpace) -> (vms: [VMName: VMRecord], migrations: [VMName: MigrationRecord], revisions: [VMName: Int64]) {
        var migrations: [VMName: MigrationRecord] = [:], revisions: [VMName: Int64] = [:]
        for kv in kvs {
            guard let (vm, part) = keys.vmKey(kv.key), part == "migration", let m = try? kv.decode(MigrationRecord.self) else { continue }
            migrations[vm] = m; revisions[vm] = kv.modRevision
        }
        return (VMSnapshot.decode(kvs, keys: keys), migrations, revisions)
    }

    func read(_ vm: VMName) async throws -> (MigrationRecord, Int64)? {
        guard let kv = try await etcd.get(keys.vmMigration(vm)), let m = try? kv.decode(MigrationRecord.self) else { return nil }
        return (m, kv.modRevision)
    }

    /// Read, change with `body` (nil: leave it), write if unchanged meanwhile; retried on conflict.
    /// Returns the record written, or nil when `body` declined.
    @discardableResult
    func update(_ vm: VMName, _ body: (MigrationRecord) -> MigrationRecord?) async throws -> MigrationRecord? {
        for _ in 0..<20 {
            guard let (current, rev) = try await read(vm) else { return nil }
            guard var next = body(current) else { return nil }
            next.updatedAtMillis = Self.nowMillis()
            let r = try await etcd.txn([.modRevision(keys.vmMigration(vm), equals: rev)], then: [try .putJSON(keys.vmMigration(vm), next)])
            if r.succeeded { return next }
        }
        throw EtcdError(.compareFailed, "migration record of \(vm) kept changing")
    }
}

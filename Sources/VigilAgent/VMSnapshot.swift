import VigilCore
import VigilStore

/// Reads every VM's keys (`vms/`) as one consistent snapshot.
enum VMSnapshot {
    static func decode(_ kvs: [KeyValue], keys: KeySpace) -> [VMName: VMRecord] {
        var specs: [VMName: VMSpec] = [:]
        var placements: [VMName: (Placement, Int64)] = [:]
        var runtimes: [VMName: VMRuntime] = [:]
        for kv in kvs {
            guard let (vm, part) = keys.vmKey(kv.key) else { continue }
            switch part {
            case "spec": specs[vm] = try? kv.decode(VMSpec.self)
            case "placement": if let p = try? kv.decode(Placement.self) { placements[vm] = (p, kv.modRevision) }
            case "runtime": runtimes[vm] = try? kv.decode(VMRuntime.self)
            default: break
            }
        }
        var out: [VMName: VMRecord] = [:]
        for (vm, spec) in specs {
            out[vm] = VMRecord(spec: spec, placement: placements[vm]?.0, placementRevision: placements[vm]?.1 ?? 0, runtime: runtimes[vm])
        }
        return out
    }

    static func read(_ etcd: EtcdClient, keys: KeySpace) async throws -> [VMName: VMRecord] {
        decode(try await etcd.getPrefix(keys.vmsPrefix).kvs, keys: keys)
    }
}

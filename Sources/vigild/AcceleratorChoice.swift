import Foundation
import VigilQEMU

/// The KVM probe costs up to its 3 s timeout where KVM hangs, and a restarted vigild
/// must be back before its fence deadline (1.8 s at TTL 2 s) to keep its VMs. So the
/// answer is kept in the state directory, valid for this boot and this QEMU binary;
/// a reboot or a QEMU upgrade probes again.
enum AcceleratorChoice {
    struct Cached: Codable {
        var bootID: String
        var qemuPath: String
        var qemuModified: Double
        var kvm: Bool
        var reason: String
    }

    static func probe(stateDir: String, binary: QEMUBinary) async -> KVMProbe.Result {
        let file = stateDir + "/accel-probe.json"
        let key = currentKey(binary)
        if let key, let data = FileManager.default.contents(atPath: file),
           let c = try? JSONDecoder().decode(Cached.self, from: data),
           c.bootID == key.boot, c.qemuPath == binary.path, c.qemuModified == key.modified {
            return c.kvm ? .kvm : .tcg(reason: c.reason + " (probed earlier this boot)")
        }
        let result = await KVMProbe.run(binary: binary, timeout: .seconds(3))
        if let key {
            let (kvm, reason): (Bool, String) = switch result {
            case .kvm: (true, "")
            case let .tcg(r): (false, r)
            }
            let c = Cached(bootID: key.boot, qemuPath: binary.path, qemuModified: key.modified, kvm: kvm, reason: reason)
            if let data = try? JSONEncoder().encode(c) { try? data.write(to: URL(fileURLWithPath: file), options: .atomic) }
        }
        return result
    }

    static func currentKey(_ binary: QEMUBinary) -> (boot: String, modified: Double)? {
        guard let boot = try? String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8),
              let attrs = try? FileManager.default.attributesOfItem(atPath: binary.path),
              let modified = (attrs[.modificationDate] as? Date)?.timeIntervalSince1970 else { return nil }
        return (boot.trimmingCharacters(in: .whitespacesAndNewlines), modified)
    }
}

import Synchronization
import VigilCore
import VigilQEMU

/// Hands a live migration's destination QEMU from the migration service to the host
/// runtime. While a VM is incoming the runtime's reconciler must neither start a second
/// QEMU for it nor kill the incoming one, so the runtime hides it from the reconciler;
/// once the ownership switch is written, the process is adopted as soon as the runtime
/// reads a snapshot that shows the new placement (never from an older snapshot, where
/// the reconciler would see a QEMU for a VM placed elsewhere and kill it).
public final class MigrationHandoff: Sendable {
    enum Entry {
        case incoming
        case switched(QEMUProcess, epoch: Int64)
    }
    private let entries = Mutex<[VMName: Entry]>([:])
    /// VMs this node is migrating away: their QEMU is the migration's to end.
    private let outgoing = Mutex<Set<VMName>>([])

    public init() {}

    /// Before the destination QEMU starts.
    func begin(_ vm: VMName) { entries.withLock { $0[vm] = .incoming } }
    /// Before the ownership switch is written: from then on the process is the VM's if the switch succeeds.
    func switching(_ vm: VMName, _ p: QEMUProcess, epoch: Int64) { entries.withLock { $0[vm] = .switched(p, epoch: epoch) } }
    /// The migration ended without this node owning the VM (its QEMU is being killed).
    func abandon(_ vm: VMName) { entries.withLock { $0[vm] = nil } }

    func beginOutgoing(_ vm: VMName) { outgoing.withLock { _ = $0.insert(vm) } }
    func endOutgoing(_ vm: VMName) { outgoing.withLock { _ = $0.remove(vm) } }
    func isOutgoing(_ vm: VMName) -> Bool { outgoing.withLock { $0.contains(vm) } }

    public var pending: Set<VMName> { entries.withLock { Set($0.keys) } }

    /// For the runtime, with the snapshot it is about to reconcile: the VMs to hide from
    /// the reconciler, and the migrated-in processes to adopt now.
    func take(seeing snapshot: [VMName: VMRecord], me: NodeName) -> (hidden: Set<VMName>, adopt: [(VMName, QEMUProcess, Int64)]) {
        entries.withLock { entries in
            var hidden: Set<VMName> = [], adopt: [(VMName, QEMUProcess, Int64)] = []
            for (vm, e) in entries {
                switch e {
                case .incoming:
                    hidden.insert(vm)
                case let .switched(p, epoch):
                    if let pl = snapshot[vm]?.placement, pl.node == me, pl.phase == .placed, pl.epoch >= epoch {
                        adopt.append((vm, p, epoch))
                        entries[vm] = nil
                    } else {
                        hidden.insert(vm)
                    }
                }
            }
            return (hidden, adopt.sorted { $0.0 < $1.0 })
        }
    }
}

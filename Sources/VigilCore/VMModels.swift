/// The name of a virtual machine (same rule as node names).
public struct VMName: CheckedName {
    public static let kind = "VM"
    public let rawValue: String
    public init(unchecked raw: String) { rawValue = raw }
}

/// Restart order on failover; `off` VMs are not restarted elsewhere.
public enum HAPriority: String, Codable, Sendable, CaseIterable, Comparable {
    case high, medium, low, off
    public static func < (a: Self, b: Self) -> Bool { a.rank < b.rank }
    /// Lower runs first.
    public var rank: Int {
        switch self {
        case .high: 0
        case .medium: 1
        case .low: 2
        case .off: 3
        }
    }
}

public enum PowerState: String, Codable, Sendable {
    case running, stopped
}

/// One virtual disk of a VM, a file in the cluster storage directory.
public struct DiskSpec: Codable, Equatable, Sendable {
    public var name: String
    public var sizeBytes: Int64
    public var format: String
    /// Path relative to the cluster storage directory.
    public var file: String
    public init(name: String, sizeBytes: Int64, format: String = "raw", file: String) {
        self.name = name; self.sizeBytes = sizeBytes; self.format = format; self.file = file
    }
}

/// `vms/<vm>/spec`: what the operator asked for.
public struct VMSpec: Codable, Equatable, Sendable {
    public var name: VMName
    public var cpus: Int
    public var memoryMiB: Int
    public var disks: [DiskSpec]
    public var haPriority: HAPriority
    /// VMs sharing a group never share a node.
    public var antiAffinityGroup: String?
    /// Place here when it fits (`--node`).
    public var preferredNode: NodeName?
    public var power: PowerState
    /// On stop: seconds to wait for a clean ACPI shutdown before a hard stop; 0 kills at once.
    public var stopGraceSeconds: Int = 30
    /// Client-network address of the guest, e.g. `10.77.3.100/24`.
    public var address: String?
    public var gateway: String?
    public var mac: String
    /// After a failover, move back to the node it ran on once that node has been up
    /// for the controller's failback delay (a restart there, crash-consistent). Absent: no.
    public var failback: Bool?
    public init(name: VMName, cpus: Int, memoryMiB: Int, disks: [DiskSpec], haPriority: HAPriority = .medium,
                antiAffinityGroup: String? = nil, preferredNode: NodeName? = nil, power: PowerState = .stopped,
                address: String? = nil, gateway: String? = nil, mac: String, failback: Bool? = nil) {
        self.name = name; self.cpus = cpus; self.memoryMiB = memoryMiB; self.disks = disks; self.haPriority = haPriority
        self.antiAffinityGroup = antiAffinityGroup; self.preferredNode = preferredNode; self.power = power
        self.address = address; self.gateway = gateway; self.mac = mac; self.failback = failback
    }
}

public enum PlacementPhase: String, Codable, Sendable {
    /// Wants to run, has no node yet (see `reason`).
    case pending
    /// Assigned to `node`, which runs it.
    case placed
    /// Not running and not wanted running.
    case stopped
    /// Gave up (failover policy exhausted); see `reason`.
    case failed
}

/// `vms/<vm>/placement`: who owns the VM. Every change of `node` increments `epoch`
/// in a compare-and-swap; the epoch is the fencing token.
public struct Placement: Codable, Equatable, Sendable {
    public var node: NodeName?
    public var epoch: Int64
    public var phase: PlacementPhase
    public var reason: String?
    /// The node it ran on before its first failover (where failback returns it).
    public var home: NodeName?
    /// Wall-clock times (Unix ms) of its recent failovers, for the failover policy.
    /// Wall time, not monotonic: successive leaders on different hosts must agree.
    public var failovers: [Int64]?
    public init(node: NodeName?, epoch: Int64, phase: PlacementPhase, reason: String? = nil,
                home: NodeName? = nil, failovers: [Int64]? = nil) {
        self.node = node; self.epoch = epoch; self.phase = phase; self.reason = reason
        self.home = home; self.failovers = failovers
    }
}

/// `vms/<vm>/runtime/<node>`: what the owner node reports of its QEMU, bound to its lease.
public struct VMRuntime: Codable, Equatable, Sendable {
    public enum State: String, Codable, Sendable { case starting, running, paused, stopping, stopped, crashed }
    public var node: NodeName
    public var epoch: Int64
    public var state: State
    public var pid: Int32?
    public var accel: String
    public var restarts: Int
    public var message: String?
    public init(node: NodeName, epoch: Int64, state: State, pid: Int32?, accel: String, restarts: Int, message: String? = nil) {
        self.node = node; self.epoch = epoch; self.state = state; self.pid = pid; self.accel = accel
        self.restarts = restarts; self.message = message
    }
}

/// `POST /v1/vms`: what an operator asks for when creating a VM.
public struct CreateVMRequest: Codable, Equatable, Sendable {
    public var name: String
    public var cpus: Int
    public var memoryMiB: Int
    public var diskBytes: Int64
    public var haPriority: HAPriority?
    public var node: String?
    public var antiAffinityGroup: String?
    public var start: Bool?
    /// After a failover, return to the node it ran on once that node is back and stable.
    public var failback: Bool?
    public init(name: String, cpus: Int, memoryMiB: Int, diskBytes: Int64, haPriority: HAPriority? = nil, node: String? = nil,
                antiAffinityGroup: String? = nil, start: Bool? = nil, failback: Bool? = nil) {
        self.name = name; self.cpus = cpus; self.memoryMiB = memoryMiB; self.diskBytes = diskBytes
        self.haPriority = haPriority; self.node = node; self.antiAffinityGroup = antiAffinityGroup; self.start = start
        self.failback = failback
    }

    public static let cpuRange = 1...64
    public static let memoryRange = 64...(1 << 20)          // MiB: 64 MiB … 1 TiB
    public static let diskRange: ClosedRange<Int64> = (1 << 20)...(16 << 40)  // 1 MiB … 16 TiB

    /// The first thing wrong with the request, naming the field, or nil.
    public func problem() -> String? {
        if let p = NameRule.problem(with: name) { return "name '\(name)' \(p)" }
        if !Self.cpuRange.contains(cpus) { return "cpus must be \(Self.cpuRange.lowerBound)…\(Self.cpuRange.upperBound), got \(cpus)" }
        if !Self.memoryRange.contains(memoryMiB) { return "memory must be 64 MiB … 1 TiB, got \(memoryMiB) MiB" }
        if !Self.diskRange.contains(diskBytes) { return "disk must be 1 MiB … 16 TiB, got \(diskBytes) bytes" }
        if let n = node, let p = NameRule.problem(with: n) { return "node '\(n)' \(p)" }
        if let g = antiAffinityGroup, let p = NameRule.problem(with: g) { return "anti-affinity group '\(g)' \(p)" }
        return nil
    }
}

/// `POST /v1/vms/<vm>/stop`.
public struct StopVMRequest: Codable, Equatable, Sendable {
    /// Seconds for a clean ACPI shutdown before a hard stop; 0 = kill now.
    public var graceSeconds: Int?
    public init(graceSeconds: Int? = nil) { self.graceSeconds = graceSeconds }
}

/// What the API says about a VM.
public struct VMInfo: Codable, Equatable, Sendable {
    public var spec: VMSpec
    public var placement: Placement?
    public var runtime: VMRuntime?
    public init(spec: VMSpec, placement: Placement?, runtime: VMRuntime?) {
        self.spec = spec; self.placement = placement; self.runtime = runtime
    }

    /// One word for tables: running, stopped, pending, starting, stopping, failed, crashed.
    public var state: String {
        switch placement?.phase {
        case .pending?: return "pending"
        case .failed?: return "failed"
        case .stopped?, nil: return runtime.map { $0.state == .stopped ? "stopped" : $0.state.rawValue } ?? "stopped"
        case .placed?:
            // Stopped only once the leader has released the place (after the owner's QEMU is down).
            if spec.power == .stopped { return "stopping" }
            guard let r = runtime, r.node == placement?.node else { return "starting" }
            return r.state == .stopped ? "starting" : r.state.rawValue
        }
    }
}

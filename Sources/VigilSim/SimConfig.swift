import VigilCore

/// What one simulated run looks like: the cluster, the fault mix, the timing, and how
/// fencing works. The defaults are issue 5's scenario (16 nodes, 500 VMs).
public struct SimConfig: Sendable {
    public var seed: UInt64
    public var nodes = 16
    public var vms = 500
    /// Simulated time per step.
    public var step: Duration = .milliseconds(50)
    /// Steps without faults first, so every VM is placed and running.
    public var warmupSteps = 200
    /// Steps with random faults.
    public var faultSteps = 2000
    /// After the faults stop and everything heals: the most steps the cluster gets to
    /// settle (convergence is checked from `settleMinSteps` on; the run ends when it holds).
    public var settleMaxSteps = 1600
    public var settleMinSteps = 100

    public var leaseTTL: Duration = .seconds(2)
    public var fencing: Fencing = .policy
    /// The separate watchdog process that kills a node's VMs at its fence deadline even
    /// when vigild is frozen or dead (ARCHITECTURE.md, "vigil-watchdog").
    public var watchdog = true
    /// At most this many nodes are crashed, frozen, partitioned or slow at once.
    public var maxFaultyNodes = 5
    /// Relative rates of the fault kinds per step (probability that one starts).
    public var faultRate = 0.02

    public var controller: ClusterController.Settings = {
        var s = ClusterController.Settings()
        s.failbackDelay = .seconds(10)
        s.failoverPeriod = .seconds(60)
        return s
    }()

    /// How a node decides to kill its VMs when it cannot renew its lease.
    public enum Fencing: Sendable, Equatable {
        /// `FencePolicy(leaseTTL:).fenceAfter` from the last acknowledged send: the real rule.
        case policy
        /// A fixed deadline after the last acknowledged send (a test of the checker: TTL
        /// or more is unsafe).
        case after(Duration)
        /// Never kill (the watchdog is off too): the checker must catch it.
        case disabled
    }

    /// Takeover writes also require the lost node's alive key absent (`TakeoverGuard`,
    /// as ControllerRunner does); off shows the race it closes.
    public var takeoverGuard = true
    /// Print every trace line that contains this text (debugging a seed: a VM or node name).
    public var echo: String?

    public init(seed: UInt64) { self.seed = seed }

    /// The fence deadline's distance from the last acknowledged send, nil for never.
    var fenceAfter: Duration? {
        switch fencing {
        case .policy: FencePolicy(leaseTTL: leaseTTL).fenceAfter
        case let .after(d): d
        case .disabled: nil
        }
    }
    var killBudget: Duration { FencePolicy(leaseTTL: leaseTTL).killBudget }
    var renewEvery: Duration { leaseTTL / 6 }
}

/// The cluster a run starts with: node records and VM specs, drawn from the seed.
struct SimCluster {
    var nodes: [NodeRecord]
    var vms: [VMSpec]

    static func make(_ config: SimConfig, _ rng: inout SimRandom) -> SimCluster {
        // ~80 % of memory in use with every node up: losing a few nodes leaves VMs pending.
        let nodes = (1...config.nodes).map { i in
            NodeRecord(name: NodeName(unchecked: "n\(i)"), clusterAddress: "10.99.0.\(i)", apiPort: 7700, networks: [],
                       capacity: Capacity(cpus: 80, memoryMiB: 80 * 1024))
        }
        let memories = [512, 1024, 1024, 2048, 2048, 2048, 4096]
        let vms = (1...config.vms).map { i -> VMSpec in
            let roll = rng.below(100)
            let prio: HAPriority = roll < 20 ? .high : roll < 55 ? .medium : roll < 85 ? .low : .off
            let group = rng.chance(0.1) ? "g\(rng.int(in: 1...25))" : nil
            var spec = VMSpec(name: VMName(unchecked: "vm\(i)"), cpus: rng.pick([1, 1, 2, 2, 4]), memoryMiB: rng.pick(memories), disks: [],
                              haPriority: prio, antiAffinityGroup: group, power: rng.chance(0.03) ? .stopped : .running,
                              mac: "52:54:00:00:\(String(i / 256, radix: 16)):\(String(i % 256, radix: 16))",
                              failback: prio != .off && rng.chance(0.2) ? true : nil)
            spec.stopGraceSeconds = 0
            return spec
        }
        return SimCluster(nodes: nodes, vms: vms)
    }
}

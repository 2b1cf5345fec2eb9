import VigilCore

/// One simulated host: the machine (power), its QEMU processes (the fake hypervisor),
/// its watchdog, and the vigild process (`SimAgent`, nil while it is dead).
struct SimHost {
    let name: NodeName
    var powered = true
    var agent: SimAgent?
    /// vigild is stopped (SIGSTOP) until then; the watchdog and QEMUs run on.
    var frozenUntil: Duration?
    /// Cut off from etcd (the minority side of a partition) until then.
    var partitionedUntil: Duration?
    /// Messages to and from etcd are slow until then.
    var slowUntil: Duration?
    /// Crashed (vigild or the whole host); comes back then.
    var returnAt: Duration?
    /// The lease id vigild keeps in its state directory (survives vigild restarts).
    var savedLease: Int64?
    /// What vigild last petted the watchdog with; the watchdog outlives vigild.
    var watchdogDeadline: Duration?
    /// QEMU processes by VM index.
    var instances: [Int: SimInstance] = [:]

    var reachable: Bool { partitionedUntil == nil }
    var acting: Bool { powered && agent != nil && frozenUntil == nil }
    var faulty: Bool { !powered || agent == nil || frozenUntil != nil || partitionedUntil != nil || slowUntil != nil }
}

/// One QEMU process. It counts as running from its launch until it dies.
struct SimInstance {
    var epoch: Int64
    /// The lease vigild held when it launched or adopted it (fencing is judged against it).
    var lease: Int64?
    var startedAt: Duration
    /// The guest's counter: advanced while it runs, flushed to the shared disk.
    var counter: Int64
    var startCounter: Int64
    /// When it dies (kill or fence); reaped once that time has passed.
    var dieAt: Duration?
    /// Killed by fencing (vigild's guard or the watchdog), not on request.
    var fenced = false
}

/// One renewal (keep-alive) on its way: sent, maybe received by etcd, maybe answered.
struct SimRenewal {
    var sentAt: Duration
    var timeout: Duration
    /// When it reaches etcd (nil: lost in a partition).
    var arriveAt: Duration?
    /// Set by etcd: when the answer reaches the node, and whether the lease was there.
    var answerAt: Duration?
    var leaseFound = false
}

/// The vigild process: session (lease, renewals, fence deadline), host runtime
/// (HostReconciler and the actions it asked for), and leadership. Lost on a crash.
struct SimAgent {
    var reconciler: HostReconciler
    /// `NodeState.leaseID`: the lease the node counts on (nil while suspended).
    var lease: Int64?
    /// The lease the session keeps renewing (also while suspended).
    var sessionLease: Int64?
    var suspended = false
    /// The first attempt to join (or resume) is over; the fence guard starts then.
    var settled = false
    var fenceDeadline: Duration?
    var lastAcked: Duration = .zero
    /// Next join attempt or next renewal send.
    var nextSessionAt: Duration
    var renewal: SimRenewal?
    /// Since when vigild has been able to act (started or thawed).
    var awakeSince: Duration
    /// QEMU exits not yet reaped by the runtime loop: (VM, killed by fencing).
    var exits: [(vm: Int, fenced: Bool)] = []
    var runtimeQueue: [(due: Duration, action: HostReconciler.Action)] = []
    var nextRuntimeRound: Duration
    var lastLease: Int64?
    var nextCampaign: Duration
    var leader: SimLeader?

    func mayRunVMs(at t: Duration) -> Bool {
        guard lease != nil, let d = fenceDeadline else { return false }
        return t < d
    }
}

/// The controller role on the leader: ControllerRunner's loop around ClusterController.
struct SimLeader {
    var controller: ClusterController
    let lease: Int64
    var started = false
    var lastAliveVersion = -1
    var lastVMsVersion = -1
    var lastAlive: Set<NodeName> = []
    /// Effects to carry out, each with the node whose alive key its write requires absent.
    var queue: [(due: Duration, effect: ClusterController.Effect, mustBeDown: Int?)] = []
    var nextRound: Duration
}

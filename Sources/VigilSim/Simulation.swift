import VigilCore

/// A deterministic in-process run of Vigil's real state machines — `ClusterController` on
/// the elected leader, `HostReconciler` on every host — against a model of etcd
/// (`SimStore`), of QEMU processes with a guest counter on shared storage, of each
/// host's fencing (vigild's fence guard and the watchdog), and of faults: crashes,
/// freezes, partitions, slow links, etcd elections, a leader dying mid-round.
///
/// Time is a step counter; randomness is one `SimRandom`. A seed replays exactly: the
/// same seed gives the same `traceHash`. Invariants are checked as it runs, by
/// `InvariantChecker`; `run()` returns the first violation with its step.
public struct Simulation {
    public enum Phase: String, Sendable { case warmup, faults, settle, done }

    public struct Outcome: Sendable {
        public var seed: UInt64
        public var steps: Int
        public var simulated: Duration
        public var violations: [InvariantChecker.Violation]
        /// The step of the first violation.
        public var failedAtStep: Int?
        public var traceHash: UInt64
        public var counts: [String: Int]
        /// The last trace lines before the first violation (or the end).
        public var recentTrace: [String]
        public var settledAfterSteps: Int?
    }

    public let config: SimConfig
    var rng: SimRandom
    var now: Duration = .zero
    var stepIndex = 0
    var phase: Phase = .warmup
    var store: SimStore
    var hosts: [SimHost]
    let specs: [VMSpec]
    /// The shared disk: per VM, the last counter value a guest flushed.
    var disks: [Int64]
    var checker = InvariantChecker()
    /// Live QEMU instances per VM (what the checker samples).
    var running: [VMName: [NodeName]] = [:]
    var traceHash: UInt64 = 0xcbf2_9ce4_8422_2325
    var recent: [String] = []
    var counts: [String: Int] = [:]
    var firstViolationStep: Int?
    var reportedViolations = 0
    var settledAfter: Int?
    /// Instances with a death time, not yet reaped: (host, VM).
    var dying: [(host: Int, vm: Int)] = []

    public init(config: SimConfig) {
        self.config = config
        rng = SimRandom(seed: config.seed)
        let cluster = SimCluster.make(config, &rng)
        specs = cluster.vms
        store = SimStore(cluster: cluster, ttl: config.leaseTTL)
        disks = Array(repeating: 0, count: cluster.vms.count)
        hosts = cluster.nodes.map { SimHost(name: $0.name) }
        for h in hosts.indices { hosts[h].agent = newAgent(h) }
    }

    func newAgent(_ h: Int) -> SimAgent {
        SimAgent(reconciler: HostReconciler(me: hosts[h].name, accel: "tcg"), nextSessionAt: now, awakeSince: now,
                 nextRuntimeRound: now, nextCampaign: now)
    }

    /// Run to the end (or until `stopAtFirstViolation` and one is found).
    public mutating func run(stopAtFirstViolation: Bool = true) -> Outcome {
        let total = config.warmupSteps + config.faultSteps + config.settleMaxSteps
        while phase != .done && stepIndex < total {
            step()
            if stopAtFirstViolation && firstViolationStep != nil { break }
        }
        if phase != .done && firstViolationStep == nil { finalCheck() }
        return Outcome(seed: config.seed, steps: stepIndex, simulated: now, violations: checker.violations,
                       failedAtStep: firstViolationStep, traceHash: traceHash, counts: counts, recentTrace: recent,
                       settledAfterSteps: settledAfter)
    }

    /// One step of simulated time.
    mutating func step() {
        stepIndex += 1
        now += config.step
        if stepIndex == config.warmupSteps + 1 { phase = .faults; trace("phase faults") }
        if phase == .faults && stepIndex > config.warmupSteps + config.faultSteps { healEverything(); phase = .settle }
        endFaults()
        if phase == .faults { injectFaults() }
        fenceByWatchdogs()
        reapDead()
        etcdSide()
        // Hosts act in a random order each step: interleavings differ, seeds replay.
        var order = Array(hosts.indices)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, rng.below(i + 1)) }
        for h in order where hosts[h].acting { agentStep(h) }
        reapDead()
        guests()
        checker.sample(at: now, running: running)
        noteViolations()
        if phase == .settle { settleCheck() }
    }

    // MARK: instances

    /// Launch a QEMU on `h` for VM `v` (HostReconciler's `.start`).
    mutating func launch(_ h: Int, _ v: Int, epoch: Int64) {
        precondition(hosts[h].instances[v] == nil, "a second QEMU for one VM on one host")
        let c = disks[v]
        hosts[h].instances[v] = SimInstance(epoch: epoch, lease: hosts[h].agent?.lease, startedAt: now, counter: c, startCounter: c)
        running[store.vmNames[v], default: []].append(hosts[h].name)
        checker.guest(store.vmNames[v], at: now, flushed: c, startCounter: c, restartedSinceLast: true)
        checker.sample(at: now, running: running)
        trace("start \(store.vmNames[v]) on \(hosts[h].name) epoch \(epoch) from \(c)")
        count("start")
    }

    /// The instance dies at `at` (not before now); `fenced` when fencing killed it.
    mutating func kill(_ h: Int, _ v: Int, at: Duration, fenced: Bool, why: String) {
        guard var i = hosts[h].instances[v], i.dieAt == nil else { return }
        i.dieAt = max(at, i.startedAt); i.fenced = fenced
        hosts[h].instances[v] = i
        dying.append((h, v))
        trace("\(fenced ? "fence" : "kill") \(store.vmNames[v]) on \(hosts[h].name) at \(i.dieAt!): \(why)")
        count(fenced ? "fence" : "kill")
        if i.dieAt! <= now { reap(h, v) }
    }

    mutating func reap(_ h: Int, _ v: Int) {
        guard let i = hosts[h].instances.removeValue(forKey: v) else { return }
        let name = store.vmNames[v]
        running[name]?.removeAll { $0 == hosts[h].name }
        if running[name]?.isEmpty == true { running[name] = nil }
        hosts[h].agent?.exits.append((v, i.fenced))
    }

    mutating func reapDead() {
        guard !dying.isEmpty else { return }
        var still: [(host: Int, vm: Int)] = []
        for (h, v) in dying {
            guard let d = hosts[h].instances[v]?.dieAt else { continue }
            if d <= now { reap(h, v) } else { still.append((h, v)) }
        }
        dying = still
    }

    /// Every 200 ms each guest writes its counter on; half the time it flushes, and the
    /// flush reaches the shared disk (with two instances, the last writer wins).
    mutating func guests() {
        guard stepIndex % 4 == 0 else { return }
        for h in hosts.indices where hosts[h].powered {
            for v in hosts[h].instances.keys.sorted() {
                guard hosts[h].instances[v]!.dieAt == nil else { continue }
                hosts[h].instances[v]!.counter += 1
                if rng.chance(0.5) {
                    let i = hosts[h].instances[v]!
                    disks[v] = i.counter
                    checker.guest(store.vmNames[v], at: now, flushed: i.counter, startCounter: i.startCounter, restartedSinceLast: false)
                }
            }
        }
    }

    // MARK: fencing

    /// The watchdog kills a host's VMs at the deadline vigild last petted it with, whether
    /// vigild is frozen, dead or fine. It takes up to the kill budget.
    mutating func fenceByWatchdogs() {
        guard config.watchdog, config.fenceAfter != nil else { return }
        for h in hosts.indices where hosts[h].powered {
            guard let d = hosts[h].watchdogDeadline, d <= now else { continue }
            for v in hosts[h].instances.keys.sorted() where hosts[h].instances[v]!.dieAt == nil {
                let at = max(d, hosts[h].instances[v]!.startedAt) + rng.millis(0...config.killBudget.milliseconds)
                kill(h, v, at: at, fenced: true, why: "watchdog: fence deadline \(d) passed")
            }
        }
    }

    // MARK: etcd

    /// Keep-alives reach etcd in time order, interleaved with lease expiries.
    mutating func etcdSide() {
        var arrivals: [(at: Duration, host: Int)] = []
        for h in hosts.indices {
            if let r = hosts[h].agent?.renewal, let a = r.arriveAt, a <= now, r.answerAt == nil { arrivals.append((a, h)) }
        }
        arrivals.sort { ($0.at, $0.host) < ($1.at, $1.host) }
        for (at, h) in arrivals {
            expireLeases(upTo: at)
            guard var r = hosts[h].agent?.renewal, let lease = hosts[h].agent?.sessionLease else { continue }
            r.leaseFound = store.keepAlive(lease, at: at)
            r.answerAt = at + linkDelay(h)
            hosts[h].agent!.renewal = r
        }
        expireLeases(upTo: now)
    }

    mutating func expireLeases(upTo t: Duration) {
        while let (id, lease) = store.nextExpiry(upTo: t) {
            let h = lease.node
            let under = hosts[h].instances.keys.sorted().compactMap { v -> (VMName, diedAt: Duration?)? in
                let i = hosts[h].instances[v]!
                return i.lease == id ? (store.vmNames[v], i.dieAt) : nil
            }
            checker.leaseExpired(node: hosts[h].name, at: lease.expiresAt, stillRunning: under)
            store.expire(id)
            trace("lease \(id) of \(hosts[h].name) expired at etcd at \(lease.expiresAt)")
            count("leaseExpired")
        }
    }

    /// One-way delay between a host and etcd.
    mutating func linkDelay(_ h: Int) -> Duration {
        if hosts[h].slowUntil != nil { return rng.millis(50...1500) }
        return rng.chance(0.02) ? rng.millis(20...300) : rng.millis(0...5)
    }

    // MARK: bookkeeping

    mutating func trace(_ line: String) {
        let s = "[\(stepIndex)] \(line)"
        for b in s.utf8 { traceHash = (traceHash ^ UInt64(b)) &* 0x100_0000_01b3 }
        if let e = config.echo, s.contains(e) { print(s) }
        if firstViolationStep == nil {
            recent.append(s)
            if recent.count > 60 { recent.removeFirst(recent.count - 60) }
        }
    }

    mutating func count(_ what: String) { counts[what, default: 0] += 1 }

    mutating func noteViolations() {
        guard checker.violations.count > reportedViolations else { return }
        for v in checker.violations[reportedViolations...] { trace("VIOLATION \(v)") }
        reportedViolations = checker.violations.count
        if firstViolationStep == nil { firstViolationStep = stepIndex }
    }
}

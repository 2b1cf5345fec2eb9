import VigilCore

/// Faults: what starts them (at random, within a budget of faulty nodes), what ends
/// them, the heal that ends the fault phase, and the convergence check after it.
extension Simulation {
    mutating func injectFaults() {
        // A leader that dies mid-round: some of its writes done, the rest lost.
        if let h = hosts.indices.first(where: { (hosts[$0].agent?.leader?.queue.count ?? 0) >= 2 }), rng.chance(0.05),
           faultyCount < config.maxFaultyNodes {
            crash(h, wholeHost: rng.chance(0.3), why: "leader dies mid-round with \(hosts[h].agent!.leader!.queue.count) effects left")
            count("fault.leaderMidRound")
        }
        guard rng.chance(config.faultRate) else { return }
        if rng.chance(0.05) {
            store.etcdLeaderChanged(at: now, electionTimeout: .seconds(1))
            trace("etcd elects a new leader: every lease renewed to TTL + 1 s")
            count("fault.etcdElection")
            return
        }
        let budget = config.maxFaultyNodes - faultyCount
        guard budget > 0 else { return }
        let healthy = hosts.indices.filter { !hosts[$0].faulty }
        guard !healthy.isEmpty else { return }
        let h = rng.pick(healthy)
        switch rng.below(100) {
        case 0..<25:
            crash(h, wholeHost: rng.chance(0.4), why: "random crash")
        case 25..<50:
            let d = rng.millis(300...6000)
            hosts[h].frozenUntil = now + d
            trace("freeze vigild on \(hosts[h].name) for \(d)")
            count("fault.freeze")
        case 50..<75:
            // The minority side of a partition loses etcd.
            var side = [h]
            for other in healthy.filter({ $0 != h }) where side.count < min(budget, config.nodes / 2 - 1) && rng.chance(0.15) {
                side.append(other)
            }
            let d = rng.millis(500...10_000)
            for n in side { hosts[n].partitionedUntil = now + d }
            trace("partition: \(side.map { hosts[$0].name.rawValue }.joined(separator: ",")) lose etcd for \(d)")
            count("fault.partition")
        default:
            let d = rng.millis(1000...8000)
            hosts[h].slowUntil = now + d
            trace("slow link to etcd on \(hosts[h].name) for \(d)")
            count("fault.slow")
        }
    }

    var faultyCount: Int { hosts.filter(\.faulty).count }

    /// vigild dies (its QEMUs and the watchdog live on), or the whole host does.
    mutating func crash(_ h: Int, wholeHost: Bool, why: String) {
        hosts[h].agent = nil
        hosts[h].frozenUntil = nil
        hosts[h].returnAt = now + rng.millis(500...20_000)
        if wholeHost {
            hosts[h].powered = false
            hosts[h].watchdogDeadline = nil
            for v in hosts[h].instances.keys.sorted() { kill(h, v, at: now, fenced: false, why: "host powered off") }
        }
        trace("\(wholeHost ? "host" : "vigild") on \(hosts[h].name) crashes: \(why)")
        count(wholeHost ? "fault.hostCrash" : "fault.agentCrash")
    }

    mutating func endFaults() {
        for h in hosts.indices {
            if let t = hosts[h].frozenUntil, t <= now { thaw(h) }
            if let t = hosts[h].partitionedUntil, t <= now { hosts[h].partitionedUntil = nil; trace("\(hosts[h].name) reaches etcd again") }
            if let t = hosts[h].slowUntil, t <= now { hosts[h].slowUntil = nil }
            if let t = hosts[h].returnAt, t <= now { restart(h) }
        }
    }

    mutating func thaw(_ h: Int) {
        hosts[h].frozenUntil = nil
        hosts[h].agent?.awakeSince = now
        trace("thaw vigild on \(hosts[h].name)")
    }

    /// The host (if it was off) and vigild start again; vigild adopts the QEMUs still running.
    mutating func restart(_ h: Int) {
        hosts[h].returnAt = nil
        hosts[h].powered = true
        var a = newAgent(h)
        for v in hosts[h].instances.keys.sorted() where hosts[h].instances[v]!.dieAt == nil {
            let i = hosts[h].instances[v]!
            _ = a.reconciler.handle(.started(store.vmNames[v], pid: Int32(1000 + v), epoch: i.epoch, adopted: true, now: now))
            trace("\(hosts[h].name) adopts \(store.vmNames[v]) (epoch \(i.epoch))")
        }
        hosts[h].agent = a
        trace("\(hosts[h].name) returns (vigild starts)")
    }

    /// End of the fault phase: every fault heals at once.
    mutating func healEverything() {
        trace("phase settle: every fault heals")
        for h in hosts.indices {
            if hosts[h].frozenUntil != nil { thaw(h) }
            hosts[h].partitionedUntil = nil
            hosts[h].slowUntil = nil
            if hosts[h].returnAt != nil { restart(h) }
        }
    }

    /// Whether the cluster has converged: every VM that should run runs once on a live
    /// node or is visibly pending or failed, and a leader leads.
    var converged: Bool {
        guard store.leader != nil else { return false }
        let alive = store.aliveSet
        for spec in specs where spec.power == .running {
            let live = (running[spec.name] ?? []).filter(alive.contains)
            if live.count == 1 { continue }
            let p = store.records[spec.name]?.placement
            if p?.phase == .pending && p?.reason != nil { continue }
            if p?.phase == .failed && store.failedWithEvent.contains(spec.name) { continue }
            return false
        }
        return true
    }

    mutating func settleCheck() {
        let settled = stepIndex - config.warmupSteps - config.faultSteps
        guard settled >= config.settleMinSteps, settled % 20 == 0 else { return }
        if converged || settled >= config.settleMaxSteps {
            if converged { settledAfter = settled }
            finalCheck()
        }
    }

    /// Invariants 2 (on the whole timeline) and 4, then the run is over.
    mutating func finalCheck() {
        checker.checkFenceBeforeTakeover()
        let placements = store.records.compactMapValues(\.placement)
        checker.checkNothingDropped(specs.filter { $0.power == .running }.map(\.name), at: now, running: running,
                                    alive: store.aliveSet, placements: placements, failedWithEvent: store.failedWithEvent)
        noteViolations()
        trace("done: \(counts.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
        phase = .done
    }
}

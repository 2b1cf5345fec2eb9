import VigilCore

/// vigild on one host, as its services behave (StoreSessionService, the fence guard of
/// HostRuntimeService, its runtime loop, LeaderElectionService), driven by the step.
extension Simulation {
    mutating func agentStep(_ h: Int) {
        session(h)
        fenceGuard(h)
        runtime(h)
        leadership(h)
    }

    // MARK: session

    /// Join (or resume the saved lease), then renew every TTL/6; suspend past the fence
    /// deadline; start over when etcd says the lease is gone.
    mutating func session(_ h: Int) {
        guard var a = hosts[h].agent else { return }
        defer { if hosts[h].agent != nil { hosts[h].agent = a } }
        guard let lease = a.sessionLease else {
            guard now >= a.nextSessionAt else { return }
            establish(h, &a)
            return
        }
        if let r = a.renewal {
            if let at = r.answerAt, at <= now, at - r.sentAt <= r.timeout {
                a.renewal = nil
                a.nextSessionAt = at + config.renewEvery
                guard r.leaseFound else {
                    trace("\(hosts[h].name): lease \(lease) is gone at etcd")
                    a.sessionLease = nil; a.lease = nil; a.nextSessionAt = now
                    return
                }
                // The guard fires at the old deadline if it came before the answer.
                if let d = a.fenceDeadline, d <= at { hosts[h].agent = a; fenceGuard(h, upTo: at); a = hosts[h].agent! }
                a.lastAcked = r.sentAt
                if a.suspended {
                    a.suspended = false
                    trace("\(hosts[h].name): quorum back, lease \(lease) still valid")
                }
                a.lease = lease
                acked(h, &a, sentAt: r.sentAt)
            } else if now >= r.sentAt + r.timeout {
                a.renewal = nil
                a.nextSessionAt = r.sentAt + r.timeout + config.renewEvery
            }
            return
        }
        guard now >= a.nextSessionAt else { return }
        let sent = now
        let left = a.lastAcked + (config.fenceAfter ?? .seconds(1_000_000)) - sent
        if left <= .zero && !a.suspended {
            a.suspended = true; a.lease = nil
            trace("\(hosts[h].name): no renewal acknowledged before the fence deadline; suspended")
        }
        let timeout = a.suspended ? config.renewEvery * 3 : min(left, config.renewEvery * 2)
        a.renewal = SimRenewal(sentAt: sent, timeout: timeout, arriveAt: hosts[h].reachable ? sent + linkDelay(h) : nil)
    }

    /// A renewal sent at `sentAt` was acknowledged: the deadline moves on, the watchdog is petted.
    mutating func acked(_ h: Int, _ a: inout SimAgent, sentAt: Duration) {
        guard let after = config.fenceAfter else { a.fenceDeadline = .seconds(1_000_000_000); return }
        a.fenceDeadline = max(a.fenceDeadline ?? sentAt, sentAt + after)
        hosts[h].watchdogDeadline = a.fenceDeadline
    }

    mutating func establish(_ h: Int, _ a: inout SimAgent) {
        let sent = now
        a.settled = true
        a.nextSessionAt = now + .milliseconds(300)
        guard hosts[h].reachable else { return }
        if let held = store.alive[h] {
            guard held == hosts[h].savedLease, store.keepAlive(held, at: now + linkDelay(h)) else { return }  // held by another lease: wait
            trace("\(hosts[h].name): resumed lease \(held)")
            joined(h, &a, held, sent: sent)
            return
        }
        let lease = store.grant(node: h, at: now)
        guard store.createAlive(node: h, lease: lease) else { return }
        hosts[h].savedLease = lease
        trace("\(hosts[h].name): joined with lease \(lease)")
        count("join")
        joined(h, &a, lease, sent: sent)
    }

    mutating func joined(_ h: Int, _ a: inout SimAgent, _ lease: Int64, sent: Duration) {
        a.sessionLease = lease; a.lease = lease; a.suspended = false
        a.lastAcked = sent
        acked(h, &a, sentAt: sent)
        a.nextSessionAt = now + config.renewEvery
    }

    // MARK: fence guard

    /// HostRuntimeService's fence guard: once the session has settled, no lease or a
    /// passed deadline kills every local QEMU. Awake at the deadline, it kills then;
    /// frozen at the deadline, it kills on thaw.
    mutating func fenceGuard(_ h: Int, upTo t: Duration? = nil) {
        guard config.fenceAfter != nil, let a = hosts[h].agent, a.settled else { return }
        let t = t ?? now
        if a.mayRunVMs(at: t) { return }
        let when = max(a.awakeSince, min(t, a.fenceDeadline ?? t))
        for v in hosts[h].instances.keys.sorted() where hosts[h].instances[v]!.dieAt == nil {
            kill(h, v, at: when + rng.millis(0...config.killBudget.milliseconds), fenced: true,
                 why: a.lease == nil ? "no lease" : "fence deadline \(a.fenceDeadline!) passed")
        }
    }

    // MARK: runtime

    /// HostRuntimeService's loop: reap exits, then (with a lease and its deadline ahead)
    /// read the VMs and reconcile; actions run one after another, starts take time.
    mutating func runtime(_ h: Int) {
        runQueuedActions(h)
        guard var a = hosts[h].agent, a.runtimeQueue.isEmpty, now >= a.nextRuntimeRound else { return }
        // The real loop wakes on every change under vms/ or after 250 ms; rounds here
        // are 150–350 ms apart (a debug build cannot afford more, and reads coalesce).
        a.nextRuntimeRound = now + rng.millis(150...350)
        var actions: [HostReconciler.Action] = []
        for (v, fenced) in a.exits {
            let name = store.vmNames[v]
            actions += a.reconciler.handle(fenced ? .fenced(name, now: now) : .exited(name, status: "killed", now: now))
        }
        a.exits = []
        if a.lease != a.lastLease { a.reconciler.forgetReports(); a.lastLease = a.lease }
        if a.lease != nil, a.mayRunVMs(at: now), hosts[h].reachable {
            let mine = a.reconciler.runningHere.compactMap { store.vmIndex[$0] }.sorted()
            actions += a.reconciler.handle(.snapshot(store.snapshot(for: h, also: mine), now: now))
        }
        var due = now
        for action in canonical(actions) {
            if case .start = action { due += rng.millis(1...30) }
            a.runtimeQueue.append((due, action))
        }
        hosts[h].agent = a
        runQueuedActions(h)
    }

    /// HostReconciler kills what it no longer wants in dictionary order; sort that part
    /// so a seed replays across processes (Swift seeds its hashing per process).
    func canonical(_ actions: [HostReconciler.Action]) -> [HostReconciler.Action] {
        func key(_ a: HostReconciler.Action) -> String {
            switch a {
            case let .kill(vm, _): "0 \(vm.rawValue)"
            case let .powerdown(vm): "1 \(vm.rawValue)"
            default: "2"
            }
        }
        let kills = actions.prefix { if case .kill = $0 { true } else { false } }
        return kills.sorted { key($0) < key($1) } + actions.dropFirst(kills.count)
    }

    mutating func runQueuedActions(_ h: Int) {
        while let first = hosts[h].agent?.runtimeQueue.first, first.due <= now, hosts[h].acting {
            hosts[h].agent!.runtimeQueue.removeFirst()
            perform(h, first.action)
        }
    }

    /// HostRuntimeService.perform.
    mutating func perform(_ h: Int, _ action: HostReconciler.Action) {
        switch action {
        case let .start(spec, epoch):
            let v = store.vmIndex[spec.name]!
            var follow: [HostReconciler.Action]
            if hosts[h].agent!.mayRunVMs(at: now), hosts[h].instances[v] == nil {
                launch(h, v, epoch: epoch)
                follow = hosts[h].agent!.reconciler.handle(.started(spec.name, pid: Int32(1000 + v), epoch: epoch, adopted: false, now: now))
            } else {
                follow = hosts[h].agent!.reconciler.handle(.startFailed(spec.name, message: "not started: this node holds no valid lease (fenced)", now: now))
            }
            for f in follow { perform(h, f) }
        case let .powerdown(vm), let .kill(vm, _):
            kill(h, store.vmIndex[vm]!, at: now, fenced: false, why: "asked by the runtime")
        case let .report(vm, rt):
            guard let lease = hosts[h].agent!.lease, hosts[h].reachable else { return }
            _ = store.putRuntime(vm, rt, lease: lease)
        case let .record(e):
            if hosts[h].reachable { store.record(e) }
        }
    }
}

extension Duration {
    /// Whole milliseconds.
    var milliseconds: Int { Int(components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000) }
}

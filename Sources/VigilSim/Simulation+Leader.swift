import VigilCore

/// Leadership as LeaderElectionService and ControllerRunner do it: campaign for the
/// `leader` key with the node's lease; while holding it, read a snapshot, feed the
/// controller, and carry out its effects one by one — each write conditional on still
/// holding the leader key (and a takeover on the lost node still being down, see
/// `TakeoverGuard`). Effects take time, so a round can be cut short.
extension Simulation {
    mutating func leadership(_ h: Int) {
        guard var a = hosts[h].agent else { return }
        if let l = a.leader, a.lease != l.lease {
            // The session lost the lease: step down, and give the key up if it is still ours.
            trace("\(hosts[h].name) steps down (lease \(l.lease) lost)")
            if hosts[h].reachable { store.resign(lease: l.lease) }
            a.leader = nil
        }
        if a.leader == nil, let lease = a.lease, now >= a.nextCampaign {
            a.nextCampaign = now + .milliseconds(200)
            if hosts[h].reachable, store.campaign(node: h, lease: lease) {
                a.leader = SimLeader(controller: ClusterController(me: hosts[h].name, settings: config.controller), lease: lease, nextRound: now)
                trace("\(hosts[h].name) elected leader with lease \(lease)")
                count("elected")
            }
        }
        hosts[h].agent = a
        guard hosts[h].agent?.leader != nil else { return }
        runEffects(h)
        controllerRound(h)
        runEffects(h)
    }

    var wallMillis: Int64 { 1_700_000_000_000 + Int64(now.milliseconds) }

    /// One ControllerRunner round: a consistent snapshot in, effects queued.
    mutating func controllerRound(_ h: Int) {
        guard var l = hosts[h].agent?.leader, l.queue.isEmpty, now >= l.nextRound else { return }
        // ControllerRunner reads at the latest every 500 ms, sooner on a watch event.
        l.nextRound = now + rng.millis(200...600)
        guard hosts[h].reachable else { hosts[h].agent!.leader = l; return }  // the read fails; try again
        let alive = store.aliveSet
        var effects: [ClusterController.Effect] = []
        if !l.started {
            effects += l.controller.handle(.vmsChanged(store.records))
            effects += l.controller.handle(.becameLeader(registered: store.registered, alive: alive, lastKnownAlive: store.membership,
                                                         now: now, wallMillis: wallMillis))
            l.started = true
        } else {
            if alive != l.lastAlive { effects += l.controller.handle(.aliveChanged(alive)) }
            if store.vmsVersion != l.lastVMsVersion { effects += l.controller.handle(.vmsChanged(store.records)) }
        }
        l.lastAlive = alive; l.lastVMsVersion = store.vmsVersion
        effects += l.controller.handle(.tick(now: now, wallMillis: wallMillis))
        // Each effect is one round trip to etcd; now and then one is slow.
        var due = now
        let slow = hosts[h].slowUntil != nil
        for e in effects {
            due += slow ? rng.millis(20...400) : (rng.chance(0.01) ? rng.millis(50...500) : rng.millis(0...3))
            var down: Int?
            if config.takeoverGuard, case let .writePlacement(vm, p, _, _) = e {
                down = TakeoverGuard.mustStillBeDown(from: l.controller.vms[vm]?.placement, to: p, alive: l.controller.alive)
                    .flatMap { store.nodeIndex[$0] }
            }
            l.queue.append((due, e, down))
        }
        hosts[h].agent!.leader = l
    }

    /// Carry out the due effects in order (ControllerRunner.execute).
    mutating func runEffects(_ h: Int) {
        while let l = hosts[h].agent?.leader, let first = l.queue.first, first.due <= now {
            hosts[h].agent!.leader!.queue.removeFirst()
            guard hosts[h].reachable else {
                // The round fails with an error; the next one re-reads.
                hosts[h].agent!.leader!.queue = []
                return
            }
            switch first.effect {
            case let .record(e):
                if store.isLeader(l.lease) { store.record(e) }
            case let .writeMembership(set):
                _ = store.writeMembership(set, leaderLease: l.lease)
            case .trimEvents:
                break
            case let .writePlacement(vm, p, expected, event):
                switch store.writePlacement(vm, p, expected: expected, leaderLease: l.lease, mustBeDown: first.mustBeDown) {
                case let .written(old):
                    checker.placementChanged(vm, at: now, from: old, to: p)
                    trace("\(hosts[h].name) wrote \(vm) (\(event?.kind.rawValue ?? "-")): \(p.phase) on \(p.node?.rawValue ?? "-") epoch \(p.epoch)\(p.reason.map { " (\($0.prefix(60)))" } ?? "")")
                    count("placement.\(p.phase)")
                    if let event { store.record(event) }
                case .revisionChanged:
                    count("casFailed")
                case .notLeader:
                    trace("\(hosts[h].name) finds the leader key is no longer its own; steps down")
                    hosts[h].agent!.leader = nil
                    return
                }
            }
        }
    }
}

/// The decisions of `vigil-watchdog`, the per-host fence (ARCHITECTURE.md, invariant 2).
///
/// vigild pets it with an absolute deadline on CLOCK_MONOTONIC, computed from the send
/// time of the last keep-alive etcd acknowledged. When the deadline passes without a
/// pet moving it, the watchdog kills every QEMU of the host, and keeps killing every
/// QEMU it finds until vigild re-arms it explicitly — which vigild does only once it
/// holds a valid lease again. The shell (vigil-watchdog's server loop) feeds in the
/// requests and ticks of its clock and carries out the effects; this type does no I/O.
///
/// Rules, and why:
/// - A tick exactly at the deadline fences: vigild's deadline is the moment by which
///   the VMs must be dead (its margin before any takeover is already taken off), so
///   one tick later would be late.
/// - A pet's deadline replaces the current one as-is, even when it is earlier: vigild
///   computed it from what etcd acknowledged and knows best. A deadline already in the
///   past therefore fences at once.
/// - A pet never rescues a deadline that has already passed, even if the tick that
///   should have noticed it has not run yet (the watchdog was not scheduled): events
///   carry `now`, and an expired deadline is fenced before the pet is looked at.
/// - A request that leaves the watchdog fencing is answered with a refusal, including
///   a pet whose own deadline has already passed: it was accepted, and fenced at once.
/// - Once fencing, pets and disarms are refused. Other nodes may already be taking the
///   VMs over, and QEMUs vigild starts from stale state must die too; only `rearm`,
///   sent by a vigild that holds a fresh lease, ends fencing.
/// - Scan results that arrive when no longer fencing are dropped: a re-arm in between
///   means those QEMUs are legitimate again.
public struct WatchdogStateMachine: Sendable, Equatable {
    public enum State: Sendable, Equatable {
        /// Nothing to enforce: no vigild has armed it (or vigild disarmed it).
        case disarmed
        /// Fences when `deadline` passes without a pet.
        case armed(deadline: MonotonicInstant, holder: String)
        /// `deadline` passed: every QEMU found is killed until a `rearm`.
        case fencing(deadline: MonotonicInstant, holder: String)
    }

    public enum Event: Sendable, Equatable {
        /// vigild: "my lease holds until `deadline`". Arms a disarmed watchdog.
        case pet(deadline: MonotonicInstant, holder: String, now: MonotonicInstant)
        /// vigild, after a fence and with a fresh lease: leave fencing, watch `deadline`.
        case rearm(deadline: MonotonicInstant, holder: String, now: MonotonicInstant)
        /// vigild: stop watching (it is leaving the cluster with no VMs to protect).
        case disarm(now: MonotonicInstant)
        /// The shell's clock: at the deadline, and every poll interval while fencing.
        case tick(now: MonotonicInstant)
        /// The QEMUs of this host the shell found after a `.scan` effect.
        case scanned([FenceTarget], now: MonotonicInstant)
    }

    /// Run in the order given: a `.kill` before anything that follows it.
    public enum Effect: Sendable, Equatable {
        /// Look for this host's QEMUs now and report them with `.scanned`.
        case scan
        /// SIGKILL each target (after checking it is still that process), confirm it is gone.
        case kill([FenceTarget], deadline: MonotonicInstant, holder: String)
        /// The request is not carried out; reply with this reason.
        case refuse(WatchdogRefusal)
        case log(WatchdogNotice)
    }

    public private(set) var state: State = .disarmed

    public init() {}

    public var isFencing: Bool {
        if case .fencing = state { return true }
        return false
    }

    /// The deadline being watched or enforced, nil when disarmed.
    public var deadline: MonotonicInstant? {
        switch state {
        case .disarmed: nil
        case let .armed(deadline, _), let .fencing(deadline, _): deadline
        }
    }

    public var holder: String? {
        switch state {
        case .disarmed: nil
        case let .armed(_, holder), let .fencing(_, holder): holder
        }
    }

    /// When the shell must deliver the next `.tick` at the latest: the deadline while
    /// armed, one poll interval from `now` while fencing (to catch QEMUs that appear
    /// late), nil while disarmed.
    public func nextTick(now: MonotonicInstant, pollInterval: Duration) -> MonotonicInstant? {
        switch state {
        case .disarmed: nil
        case let .armed(deadline, _): deadline
        case .fencing: now + pollInterval
        }
    }

    public mutating func handle(_ event: Event) -> [Effect] {
        switch event {
        case let .tick(now):
            return isFencing ? [.scan] : expireIfDue(now: now)
        case let .pet(deadline, holder, now):
            // An expired deadline fences before the pet is looked at.
            var effects = expireIfDue(now: now)
            if !isFencing {
                effects += arm(deadline: deadline, holder: holder, now: now)
                effects += expireIfDue(now: now)
            }
            return effects + refusalIfFencing()
        case let .rearm(deadline, holder, now):
            // A deadline that passed unnoticed fences first; the rearm is then refused,
            // so the QEMUs it condemned die before vigild may re-arm (it retries).
            let expiredNow = expireIfDue(now: now)
            if !expiredNow.isEmpty { return expiredNow + refusalIfFencing() }
            var effects: [Effect] = []
            if case let .fencing(expired, _) = state {
                effects.append(.log(.rearmedAfterFence(expiredAt: expired, holder: holder, deadline: deadline)))
                state = .disarmed
            }
            effects += arm(deadline: deadline, holder: holder, now: now)
            effects += expireIfDue(now: now)
            return effects + refusalIfFencing()
        case let .disarm(now):
            let effects = expireIfDue(now: now)
            if case let .armed(_, holder) = state {
                state = .disarmed
                return effects + [.log(.disarmed(holder: holder))]
            }
            return effects + refusalIfFencing()
        case let .scanned(found, _):
            guard case let .fencing(deadline, holder) = state, !found.isEmpty else { return [] }
            return [.kill(found, deadline: deadline, holder: holder)]
        }
    }

    /// A request that leaves the watchdog fencing did not keep the VMs alive: say so.
    private func refusalIfFencing() -> [Effect] {
        guard case let .fencing(expired, _) = state else { return [] }
        return [.refuse(.fencing(since: expired))]
    }

    /// Accepts `deadline` as the one to watch (state must not be fencing).
    private mutating func arm(deadline: MonotonicInstant, holder: String, now: MonotonicInstant) -> [Effect] {
        switch state {
        case .disarmed:
            state = .armed(deadline: deadline, holder: holder)
            return [.log(.armed(holder: holder, deadline: deadline, remaining: deadline - now))]
        case let .armed(previous, previousHolder):
            state = .armed(deadline: deadline, holder: holder)
            var effects: [Effect] = []
            if holder != previousHolder {
                effects.append(.log(.holderChanged(from: previousHolder, to: holder)))
            }
            if deadline < previous {
                effects.append(.log(.deadlineMovedEarlier(from: previous, to: deadline, holder: holder)))
            }
            return effects
        case .fencing:
            preconditionFailure("arm(deadline:) while fencing: the caller must refuse or re-arm first")
        }
    }

    /// Armed with a deadline at or before `now`: start fencing, and scan at once.
    private mutating func expireIfDue(now: MonotonicInstant) -> [Effect] {
        guard case let .armed(deadline, holder) = state, now >= deadline else { return [] }
        state = .fencing(deadline: deadline, holder: holder)
        return [.log(.expired(deadline: deadline, holder: holder, noticedLate: now - deadline)), .scan]
    }
}

/// One QEMU the watchdog found: pid plus start time (clock ticks after boot, from
/// /proc/PID/stat), which together name one process for good despite pid reuse.
public struct FenceTarget: Sendable, Hashable {
    public var vm: VMName
    public var pid: Int32
    public var startTime: UInt64

    public init(vm: VMName, pid: Int32, startTime: UInt64) {
        self.vm = vm
        self.pid = pid
        self.startTime = startTime
    }
}

/// Why a request was not carried out.
public enum WatchdogRefusal: Sendable, Equatable {
    /// The deadline passed at `since`; only `rearm` ends fencing.
    case fencing(since: MonotonicInstant)
}

/// What the watchdog should log about its decisions (the shell words it).
public enum WatchdogNotice: Sendable, Equatable {
    case armed(holder: String, deadline: MonotonicInstant, remaining: Duration)
    case holderChanged(from: String, to: String)
    /// Accepted as-is: vigild knows best.
    case deadlineMovedEarlier(from: MonotonicInstant, to: MonotonicInstant, holder: String)
    /// The deadline passed; `noticedLate` is how long after it the watchdog saw it.
    case expired(deadline: MonotonicInstant, holder: String, noticedLate: Duration)
    case rearmedAfterFence(expiredAt: MonotonicInstant, holder: String, deadline: MonotonicInstant)
    case disarmed(holder: String)
}

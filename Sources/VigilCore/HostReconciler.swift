/// The host runtime's decisions, as a pure state machine: which local QEMUs to start,
/// power down or kill, and what to report, from the store's snapshot and what the shell
/// saw happen to its processes. The shell (`HostRuntimeService`) carries out the actions.
///
/// Rules:
/// - run every VM placed here (phase `placed`, this node) whose spec wants it running,
///   once no other node reports running it at an older epoch;
/// - a VM that should stop gets an ACPI power-down, then a kill after its grace period;
/// - a local QEMU for a VM that is no longer placed here (deleted, moved) is killed at once;
/// - a QEMU that dies on its own is restarted here (local restart policy), at most
///   `maxRestarts` times per `restartWindow`, then left crashed with a reason.
public struct HostReconciler: Sendable {
    public enum Event: Equatable, Sendable {
        case snapshot([VMName: VMRecord], now: Duration)
        /// A local QEMU is now running (launched or adopted).
        case started(VMName, pid: Int32, epoch: Int64, adopted: Bool, now: Duration)
        case startFailed(VMName, message: String, now: Duration)
        /// The shell could not start it yet for a reason that is no fault of the VM (the
        /// watchdog not armed yet): not a failure, the next round tries again.
        case startDeferred(VMName)
        /// A local QEMU ended; `expected` when we asked it to (power-down or kill).
        case exited(VMName, status: String, now: Duration)
        /// Fencing killed a local QEMU (no valid lease): not a crash. If the VM is still
        /// placed here once the lease is back, it starts afresh.
        case fenced(VMName, now: Duration)
        /// A QEMU that arrived by live migration now runs the VM here (ownership already switched).
        case migratedIn(VMName, pid: Int32, epoch: Int64, now: Duration)
    }

    public enum Action: Equatable, Sendable {
        case start(VMSpec, epoch: Int64)
        case powerdown(VMName)
        case kill(VMName, reason: String)
        /// Write `vms/<vm>/runtime` (bound to this node's lease).
        case report(VMName, VMRuntime)
        case record(ClusterEvent)
    }

    public struct Settings: Equatable, Sendable {
        public var maxRestarts = 3
        public var restartWindow: Duration = .seconds(60)
        public var restartDelay: Duration = .milliseconds(500)
        public init() {}
    }

    struct Local: Equatable, Sendable {
        var epoch: Int64
        var pid: Int32?
        var running: Bool
        var starting: Bool
        var stopAsked: Duration?
        var killAsked: Bool
        var restarts: [Duration]
        var nextStartAt: Duration?
        var lastExit: String?
        var gaveUp: Bool
        /// Killed because the VM now runs elsewhere: its runtime key is the new owner's.
        var movedAway = false
    }

    public let me: NodeName
    public let accel: String
    public let settings: Settings
    var local: [VMName: Local] = [:]
    var reported: [VMName: VMRuntime] = [:]
    /// VMs fencing killed whose "running" report may still stand (written while the lease
    /// could not be used): corrected to `stopped` once the lease is usable again, or a
    /// failback to another node would wait on it for ever.
    var fencedReports: [VMName: Int64] = [:]

    public init(me: NodeName, accel: String, settings: Settings = Settings()) {
        self.me = me; self.accel = accel; self.settings = settings
    }

    /// VMs with a QEMU running (or starting) here.
    public var runningHere: Set<VMName> { Set(local.filter { $0.value.running || $0.value.starting }.keys) }

    public mutating func handle(_ event: Event) -> [Action] {
        switch event {
        case let .started(vm, pid, epoch, adopted, _):
            var l = local[vm] ?? Local(epoch: epoch, pid: nil, running: false, starting: false, stopAsked: nil, killAsked: false, restarts: [], nextStartAt: nil, lastExit: nil, gaveUp: false)
            l.pid = pid; l.running = true; l.starting = false; l.epoch = epoch
            local[vm] = l
            var actions: [Action] = []
            if adopted {
                actions.append(.record(ClusterEvent(kind: .vmAdopted, severity: .info, reporter: me, node: me, vm: vm.rawValue,
                                                    message: "\(vm) still running on \(me) after an agent restart (pid \(pid)): adopted, not restarted")))
            } else {
                let again = l.restarts.isEmpty ? "" : " (restart \(l.restarts.count) after \(l.lastExit ?? "exit"))"
                actions.append(.record(ClusterEvent(kind: l.restarts.isEmpty ? .vmStarted : .vmRestarted, severity: l.restarts.isEmpty ? .info : .warning,
                                                    reporter: me, node: me, vm: vm.rawValue, message: "\(vm) started on \(me), pid \(pid), epoch \(epoch)\(again)")))
            }
            return actions + report(vm, .running)

        case let .startDeferred(vm):
            local[vm]?.starting = false
            return []

        case let .startFailed(vm, message, now):
            guard var l = local[vm] else { return [] }
            l.starting = false; l.running = false; l.lastExit = message
            local[vm] = l
            return crashed(vm, message: "QEMU failed to start: \(message)", now: now)

        case let .exited(vm, status, now):
            guard var l = local[vm] else { return [] }
            let expected = l.stopAsked != nil || l.killAsked
            l.running = false; l.starting = false; l.pid = nil; l.lastExit = status
            local[vm] = l
            if expected {
                local[vm] = nil
                if l.movedAway { reported[vm] = nil; return [] }
                return report(vm, .stopped, message: nil)
            }
            return crashed(vm, message: "QEMU exited unexpectedly (\(status))", now: now)

        case let .fenced(vm, _):
            guard let l = local.removeValue(forKey: vm) else { return [] }
            reported[vm] = nil
            fencedReports[vm] = l.epoch
            return [.record(ClusterEvent(kind: .vmFenced, severity: .error, reporter: me, node: me, vm: vm.rawValue,
                                         message: "\(vm) killed on \(me) by fencing: no lease renewal acknowledged before the fence deadline"))]

        case let .snapshot(vms, now):
            return reconcile(vms, now: now)

        case let .migratedIn(vm, pid, epoch, _):
            local[vm] = Local(epoch: epoch, pid: pid, running: true, starting: false, stopAsked: nil, killAsked: false, restarts: [], nextStartAt: nil, lastExit: nil, gaveUp: false)
            return report(vm, .running)
        }
    }

    /// Local restart policy after an unexpected exit or a failed start.
    mutating func crashed(_ vm: VMName, message: String, now: Duration) -> [Action] {
        guard var l = local[vm] else { return [] }
        l.restarts = l.restarts.filter { now - $0 < settings.restartWindow }
        var actions: [Action] = [.record(ClusterEvent(kind: .vmCrashed, severity: .warning, reporter: me, node: me, vm: vm.rawValue,
                                                      message: "\(vm) on \(me): \(message)"))]
        if l.restarts.count >= settings.maxRestarts {
            l.gaveUp = true
            local[vm] = l
            let why = "gave up after \(settings.maxRestarts) restarts within \(settings.restartWindow); last: \(message)"
            actions.append(.record(ClusterEvent(kind: .vmCrashed, severity: .error, reporter: me, node: me, vm: vm.rawValue, message: "\(vm) on \(me): \(why)")))
            return actions + report(vm, .crashed, message: why)
        }
        l.restarts.append(now)
        l.nextStartAt = now + settings.restartDelay
        local[vm] = l
        return actions + report(vm, .crashed, message: message)
    }

    mutating func reconcile(_ vms: [VMName: VMRecord], now: Duration) -> [Action] {
        var actions: [Action] = []
        for (vm, epoch) in fencedReports.sorted(by: { $0.key < $1.key }) {
            if let rt = vms[vm]?.runtime, rt.node == me, rt.epoch <= epoch, rt.state != .stopped, rt.state != .crashed, local[vm] == nil {
                actions.append(.report(vm, VMRuntime(node: me, epoch: epoch, state: .stopped, pid: nil, accel: accel, restarts: 0,
                                                     message: "killed by fencing")))
            } else {
                fencedReports[vm] = nil
            }
        }
        // Local QEMUs that must not run here any more.
        for (vm, l) in local where l.running && !l.killAsked {
            guard let r = vms[vm], r.placement?.node == me, r.placement?.phase == .placed else {
                local[vm]?.killAsked = true
                // Its runtime key already names the new owner (a live migration wrote it at the
                // switch): leave it. Otherwise our "stopped" is what a failback waits for.
                if let owner = vms[vm]?.placement?.node, owner != me, let rt = vms[vm]?.runtime, rt.node != me {
                    local[vm]?.movedAway = true
                }
                let why = vms[vm] == nil ? "\(vm) was deleted" : "\(vm) is no longer placed on \(me)"
                actions.append(.kill(vm, reason: why))
                continue
            }
        }
        for (vm, r) in vms.sorted(by: { $0.key < $1.key }) {
            guard r.placement?.node == me, r.placement?.phase == .placed, let epoch = r.placement?.epoch else { continue }
            var l = local[vm] ?? Local(epoch: epoch, pid: nil, running: false, starting: false, stopAsked: nil, killAsked: false, restarts: [], nextStartAt: nil, lastExit: nil, gaveUp: false)
            switch r.spec.power {
            case .running:
                if l.running { local[vm] = l; actions += report(vm, .running); continue }  // re-reported after a new lease
                if l.starting || l.gaveUp { local[vm] = l; continue }
                if let at = l.nextStartAt, now < at { local[vm] = l; continue }
                // A move between live nodes (failback): the old owner kills its QEMU when it
                // sees the new placement; start only once its report says that QEMU is gone
                // (a report is bound to its node's lease, so a dead owner's report vanishes).
                if let rt = r.runtime, rt.node != me, rt.epoch < epoch, rt.state != .stopped, rt.state != .crashed {
                    local[vm] = l; continue
                }
                l.starting = true; l.epoch = epoch; l.stopAsked = nil; l.killAsked = false; l.nextStartAt = nil
                local[vm] = l
                actions += report(vm, .starting)
                actions.append(.start(r.spec, epoch: epoch))
            case .stopped:
                if l.running {
                    if r.spec.stopGraceSeconds == 0 {
                        if !l.killAsked { l.killAsked = true; actions.append(.kill(vm, reason: "\(vm) killed on request")) }
                    } else if let asked = l.stopAsked {
                        if now - asked >= .seconds(r.spec.stopGraceSeconds) && !l.killAsked {
                            l.killAsked = true
                            actions.append(.kill(vm, reason: "\(vm) did not power off within \(r.spec.stopGraceSeconds) s; hard stop"))
                        }
                    } else {
                        l.stopAsked = now
                        actions.append(.powerdown(vm))
                        actions += report(vm, .stopping)
                    }
                    local[vm] = l
                } else if !l.starting {
                    local[vm] = nil
                    actions += report(vm, .stopped)
                }
            }
        }
        return actions
    }

    /// The store lost our reports (a new lease): report everything again.
    public mutating func forgetReports() { reported = [:] }

    /// A runtime report, only when it changes what the store says.
    mutating func report(_ vm: VMName, _ state: VMRuntime.State, message: String? = nil) -> [Action] {
        let l = local[vm]
        let rt = VMRuntime(node: me, epoch: l?.epoch ?? reported[vm]?.epoch ?? 0, state: state, pid: state == .running ? l?.pid : nil,
                           accel: accel, restarts: l?.restarts.count ?? 0, message: message)
        if reported[vm] == rt { return [] }
        reported[vm] = rt
        return [.report(vm, rt)]
    }
}

import Foundation
import Logging
import ServiceLifecycle
import VigilCore
import VigilQEMU
import VigilStore

/// Runs this node's VMs: one QEMU each, reconciled to the store every `every`.
/// Decisions are `HostReconciler`'s; this shell launches, powers down, kills and
/// watches QEMU processes, and writes runtime reports bound to the node's lease.
/// QEMUs outlive vigild: after a restart they are adopted from their pidfiles.
public struct HostRuntimeService: Service, AgentPart {
    public let context: AgentContext
    let accel: QEMUCommand.Accelerator
    let binary: QEMUBinary
    let logger: Logger
    /// The longest a round waits when nothing changed (a watch wakes it at once; QEMU exits are polled).
    let every: Duration = .milliseconds(250)
    /// The local QEMUs; shared with the migration service (which drives the source's QMP).
    let table = ProcessTable()
    /// VMs arriving by live migration: hidden from the reconciler until they are ours, then adopted.
    public let incoming = MigrationHandoff()

    public init(context: AgentContext, accel: QEMUCommand.Accelerator, binary: QEMUBinary, logger: Logger) {
        self.context = context; self.accel = accel; self.binary = binary; self.logger = logger
    }

    var vmsDir: String { config.stateDir + "/vms" }

    public func run() async throws {
        let table = self.table
        try? await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await StoreWakeup.watching(self.etcd, prefix: self.keys.vmsPrefix) { wakeup in await self.loop(table, wakeup) } }
                group.addTask { await self.fenceGuard(table) }
                await group.waitForAll()
            }
        }
        // Graceful shutdown leaves VMs running: a restarted vigild adopts them.
        await table.closeAll()
    }

    private func loop(_ table: ProcessTable, _ wakeup: StoreWakeup) async {
        var reconciler = HostReconciler(me: config.node, accel: accel.rawValue)
        let origin = ContinuousClock.now
        // Adopt what an earlier vigild left running, before any decision.
        for action in await adoptRunning(table, &reconciler, now: .zero) {
            await perform(action, table, &reconciler, origin: origin)
        }
        var lease: Int64?
        while !Task.isCancelled {
            let now = ContinuousClock.now - origin
            // Processes that ended since the last round.
            // A QEMU that died while this node could not run VMs was fenced (by the guard
            // or by the watchdog while vigild was frozen), not crashed.
            let fencing = await !state.mayRunVMs()
            for (vm, status, fenced) in await table.reapExited() {
                let event: HostReconciler.Event = fenced || fencing ? .fenced(vm, now: now) : .exited(vm, status: status, now: now)
                for a in reconciler.handle(event) { await perform(a, table, &reconciler, origin: origin) }
            }
            await state.setLocalVMs(await table.count)
            let current = await state.leaseID
            if current != lease { reconciler.forgetReports(); lease = current }
            // Nothing is decided without a lease whose fence deadline is still ahead.
            if current != nil, await state.mayRunVMs() {
                do {
                    var snapshot = try await VMSnapshot.read(etcd, keys: keys)
                    let (hidden, arrived) = incoming.take(seeing: snapshot, me: config.node)
                    for (vm, p, epoch) in arrived {
                        await table.add(vm, p)
                        for a in reconciler.handle(.migratedIn(vm, pid: p.pid, epoch: epoch, now: now)) { await perform(a, table, &reconciler, origin: origin) }
                    }
                    for vm in hidden { snapshot[vm] = nil }
                    for a in reconciler.handle(.snapshot(snapshot, now: now)) { await perform(a, table, &reconciler, origin: origin) }
                } catch {
                    logger.debug("runtime could not read the store", metadata: ["error": "\(error)"])
                }
            }
            await wakeup.wait(maxWait: every)
        }
    }

    func perform(_ action: HostReconciler.Action, _ table: ProcessTable, _ reconciler: inout HostReconciler, origin: ContinuousClock.Instant) async {
        let now = ContinuousClock.now - origin
        switch action {
        case let .start(spec, epoch):
            do {
                guard await state.mayStartVMs(watchdogRequired: config.watchdogRequired) else {
                    // No fence yet (watchdog not armed, or the lease just lapsed): wait, don't count it as a failure.
                    let watchdog = await state.watchdogState
                    logger.debug("start deferred: no armed fence yet", metadata: ["vigil.vm": "\(spec.name)", "vigil.watchdog": "\(watchdog)"])
                    for a in reconciler.handle(.startDeferred(spec.name)) { await perform(a, table, &reconciler, origin: origin) }
                    return
                }
                let p = try await launch(spec, epoch: epoch)
                await table.add(spec.name, p)
                for a in reconciler.handle(.started(spec.name, pid: p.pid, epoch: epoch, adopted: false, now: now)) {
                    await perform(a, table, &reconciler, origin: origin)
                }
            } catch {
                logger.error("VM failed to start", metadata: ["vigil.vm": "\(spec.name)", "error": "\(error)"])
                for a in reconciler.handle(.startFailed(spec.name, message: "\(error)", now: now)) {
                    await perform(a, table, &reconciler, origin: origin)
                }
            }
        case let .powerdown(vm):
            logger.info("powering down (ACPI)", metadata: ["vigil.vm": "\(vm)"])
            try? await table.process(vm)?.qmp.systemPowerdown()
        case let .kill(vm, reason):
            // A migration's source QEMU is ended by the migration service once it has its final figures.
            if incoming.isOutgoing(vm) { logger.info("leaving the migrated-away QEMU to the migration", metadata: ["vigil.vm": "\(vm)"]); return }
            logger.warning("killing QEMU", metadata: ["vigil.vm": "\(vm)", "vigil.reason": "\(reason)"])
            if let p = await table.process(vm) { _ = try? await p.kill(.sigkill, timeout: .seconds(5)) }
        case let .report(vm, runtime):
            guard let lease = await state.leaseID else { return }
            do { try await etcd.putJSON(keys.vmRuntime(vm), runtime, lease: lease) }
            catch { logger.debug("runtime report failed", metadata: ["vigil.vm": "\(vm)", "error": "\(error)"]) }
        case let .record(event):
            logger.log(level: event.severity.logLevel, "\(event.kind): \(event.message)", metadata: ["vigil.vm": "\(event.vm ?? "-")"])
            _ = try? await events.record(event)
        }
    }

    func vmDir(_ vm: VMName) -> String { vmsDir + "/" + vm.rawValue }

    /// With `incoming` (`tcp:ADDR:PORT`): a live migration's destination, started paused (`-S`)
    /// so the guest runs only once this node owns it.
    func launch(_ spec: VMSpec, epoch: Int64, incoming: String? = nil) async throws -> QEMUProcess {
        guard let kernel = config.guestKernel, let initrd = config.guestInitrd else {
            throw QEMUError(.exitedEarly, "no guest kernel/initrd configured (config field 'guest')", vm: spec.name.rawValue)
        }
        let dir = vmDir(spec.name)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try String(epoch).write(toFile: dir + "/epoch", atomically: true, encoding: .utf8)
        let client = config.networks.first { $0.role == .client }
        var nic: QEMUCommand.NIC?
        if let mac = MACAddress(spec.mac) {
            let tap = TapDevice(forVM: spec.name.rawValue, bridge: client?.bridge)
            try await tap.create()
            nic = QEMUCommand.NIC(backend: .tap(tap), mac: mac)
        }
        var append = "console=ttyS0 quiet cryptomgr.notests pti=on panic=-1 vigil.name=\(spec.name)"
        if let a = spec.address { append += " vigil.ip=\(a)/\(client?.prefix ?? 24)" }
        if let g = spec.gateway { append += " vigil.gw=\(g)" }
        let command = QEMUCommand(
            name: spec.name.rawValue, cpus: spec.cpus, memoryMiB: spec.memoryMiB, accelerator: accel,
            kernel: kernel, initrd: initrd, append: append,
            disks: spec.disks.map { .file(config.storageDir + "/" + $0.file) }, nic: nic,
            qmpSocket: dir + "/qmp.sock", serialLog: dir + "/serial.log", pidfile: dir + "/qemu.pid",
            incoming: incoming, extraArguments: incoming == nil ? [] : ["-S"])
        return try await QEMUProcess.launch(command, binary: binary, outputLog: dir + "/qemu.log", logger: logger)
    }

    /// Find QEMUs left by an earlier vigild (pidfile + QMP) and take them back.
    func adoptRunning(_ table: ProcessTable, _ reconciler: inout HostReconciler, now: Duration) async -> [HostReconciler.Action] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: vmsDir) else { return [] }
        var actions: [HostReconciler.Action] = []
        for raw in names.sorted() {
            guard let vm = try? VMName(raw) else { continue }
            let dir = vmDir(vm)
            guard FileManager.default.fileExists(atPath: dir + "/qemu.pid") else { continue }
            do {
                let p = try await QEMUProcess.adopt(pidfile: dir + "/qemu.pid", qmpSocket: dir + "/qmp.sock", name: vm.rawValue,
                                                    timeout: .seconds(5), logger: logger)
                let epoch = Int64((try? String(contentsOfFile: dir + "/epoch", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0
                await table.add(vm, p)
                actions += reconciler.handle(.started(vm, pid: p.pid, epoch: epoch, adopted: true, now: now))
                logger.info("adopted a running VM", metadata: ["vigil.vm": "\(vm)", "vigil.qemu.pid": "\(p.pid)"])
            } catch {
                logger.debug("nothing to adopt", metadata: ["vigil.vm": "\(vm)", "error": "\(error)"])
            }
        }
        return actions
    }
}

/// The QEMU processes this agent holds, by VM.
actor ProcessTable {
    private var processes: [VMName: QEMUProcess] = [:]

    func add(_ vm: VMName, _ p: QEMUProcess) { processes[vm] = p }
    func process(_ vm: VMName) -> QEMUProcess? { processes[vm] }

    private var fenced: Set<VMName> = []
    var count: Int { processes.count }

    /// Remove and return the ones that ended, with how, and whether fencing killed them.
    func reapExited() async -> [(VMName, String, Bool)] {
        var out: [(VMName, String, Bool)] = []
        for (vm, p) in processes {
            guard let status = p.exitStatus else { continue }
            processes[vm] = nil
            await p.qmp.close()
            try? await TapDevice(forVM: vm.rawValue).delete()
            out.append((vm, "\(status)", fenced.remove(vm) != nil))
        }
        return out.sorted { $0.0 < $1.0 }
    }

    /// SIGKILL every QEMU held here and wait until each is gone; returns the VMs and
    /// how long each took to die.
    func fenceAll() async -> [(VMName, Duration)] {
        let live = processes.filter { $0.value.exitStatus == nil }
        guard !live.isEmpty else { return [] }
        fenced.formUnion(live.keys)
        return await withTaskGroup(of: (VMName, Duration).self) { group in
            for (vm, p) in live {
                group.addTask {
                    let t0 = ContinuousClock.now
                    _ = try? await p.kill(.sigkill, timeout: .seconds(2))
                    return (vm, ContinuousClock.now - t0)
                }
            }
            return await group.reduce(into: []) { $0.append($1) }.sorted { $0.0 < $1.0 }
        }
    }

    func closeAll() async {
        for p in processes.values { await p.qmp.close() }
    }
}

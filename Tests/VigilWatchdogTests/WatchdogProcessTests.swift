import Foundation
import Testing
import VigilCore
import VigilTestKit
@testable import VigilWatchdog

/// The real `vigil-watchdog` binary against fake QEMUs (bash under a qemu-system name,
/// with `-name vmX`): it kills them at their deadline, not before, and never anything
/// else. Serialized: the timing bounds assume no sibling test loads the machine.
@Suite(.enabled(if: BuiltBinaries.haveWatchdog, "needs the built vigil-watchdog (swift build --product vigil-watchdog)"),
       .serialized, .timeLimit(.minutes(2)))
struct WatchdogProcessTests {
    /// How late after the deadline a QEMU may die: poll rounding (1 ms), the scan, the
    /// kill, and the scheduler on a loaded 2-core machine.
    static let allowedLateness = Duration.milliseconds(100)

    let host: WatchdogHost

    init() throws {
        host = try WatchdogHost()
    }

    func withHost(_ body: (WatchdogHost) async throws -> Void) async throws {
        defer { host.cleanUp() }
        do {
            try await body(host)
        } catch {
            Issue.record("watchdog log:\n\(host.log())")
            throw error
        }
    }

    /// Pets `ahead` from now and returns the deadline.
    func pet(_ client: WatchdogClient, ahead: Duration, holder: String = "n1") async throws -> MonotonicInstant {
        let deadline = MonotonicClock.now() + ahead
        try await client.pet(until: deadline, holder: holder)
        return deadline
    }

    /// The QEMU died in [deadline, deadline + allowedLateness]; returns how late.
    func expectKilledOnTime(_ qemu: ChildProcess, deadline: MonotonicInstant, _ what: Comment) async throws -> Duration? {
        let diedAt = try await qemu.died(within: (deadline - MonotonicClock.now()) + .seconds(2))
        guard let diedAt else {
            Issue.record("\(what): the QEMU is still alive 2 s after its deadline")
            return nil
        }
        let late = diedAt - deadline
        #expect(late >= .zero, "\(what): killed \(late) BEFORE the deadline")
        #expect(late <= Self.allowedLateness, "\(what): killed \(late) after the deadline")
        #expect(qemu.waitStatus.map { $0 & 0x7f } == SIGKILL, "\(what): ended by SIGKILL")
        return late
    }

    @Test func killsAQEMUAtItsDeadlineNotBeforeEvenAfterTheClientLeft() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            let qemu = try host.startFakeQEMU(vm: "vmx")
            let client = host.client()
            let deadline = try await pet(client, ahead: .milliseconds(300))
            await client.close()  // vigild gone: the deadline must stay in force
            _ = try await expectKilledOnTime(qemu, deadline: deadline, "single fence")
            let status = try await host.client().status()
            #expect(status.fencing && status.fences == 1 && status.killed == 1)
            #expect(host.log().contains("fence: QEMU killed"), "one line per VM killed")
        }
    }

    /// Fences `trials` QEMUs one after another (each running 0.6 s before a 300 ms deadline)
    /// and prints how late each died.
    func measureKillLatency(_ host: WatchdogHost, trials: Int, label: String,
                            startQEMU: (String) async throws -> ChildProcess) async throws {
        let client = host.client()
        var lateness: [Duration] = []
        for trial in 0..<trials {
            // Re-arm far ahead first: the watchdog is still fencing from the last trial
            // and would kill the new QEMU at its next scan.
            try await client.rearm(until: MonotonicClock.now() + .seconds(60), holder: "n1")
            let qemu = try await startQEMU("vm\(trial)")
            // Like a VM that ran for a while: the watchdog's periodic scan has seen it.
            try await Task.sleep(for: WatchdogServer.refreshInterval + .milliseconds(100))
            let deadline = try await pet(client, ahead: .milliseconds(300))
            if let late = try await expectKilledOnTime(qemu, deadline: deadline, "\(label), trial \(trial)") { lateness.append(late) }
        }
        lateness.sort()
        let ms = { (d: Duration?) in String(format: "%.2f", Double(d?.wholeNanoseconds ?? 0) / 1e6) }
        let nice = Self.niceness(try await client.status().pid)
        print("watchdog kill latency after the deadline, \(label) (watchdog nice \(nice)): \(lateness.count) trials, p50 \(ms(lateness.isEmpty ? nil : lateness[lateness.count / 2])) ms, max \(ms(lateness.last)) ms, min \(ms(lateness.first)) ms")
        // The watchdog's own view: when it sent SIGKILL, without this test's scheduling delays.
        let signalled = Self.loggedMilliseconds("signalled_after_deadline", in: host.log()).suffix(trials).sorted()
        if !signalled.isEmpty {
            print("  as the watchdog logged it: SIGKILL sent p50 \(signalled[signalled.count / 2]) ms, max \(signalled.last!) ms after the deadline")
        }
        #expect(lateness.count == trials)
        #expect(try await client.status().killed == trials)
    }

    /// Values of `vigil.<key>=1.234ms` in the watchdog's log, in order.
    static func loggedMilliseconds(_ key: String, in log: String) -> [Double] {
        log.split(separator: "\n").compactMap { line in
            guard let range = line.range(of: "vigil.\(key)=") else { return nil }
            return Double(line[range.upperBound...].prefix { $0.isNumber || $0 == "." || $0 == "-" })
        }
    }

    static func niceness(_ pid: Int32) -> String {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else { return "?" }
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 16 ? String(fields[16]) : "?"
    }

    @Test func killLatencyAfterTheDeadlineOverTwentyTrials() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            try await measureKillLatency(host, trials: 20, label: "idle machine") { try host.startFakeQEMU(vm: $0) }
        }
    }

    @Test func killLatencyWhileFourBusyLoopsSaturateTheCores() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            let hogs = try (0..<4).map { _ in try host.spawn("/bin/sh", ["sh", "-c", "while :; do :; done"]) }
            defer { for hog in hogs { kill(hog.pid, SIGKILL) } }
            try await measureKillLatency(host, trials: 20, label: "4 busy loops at nice 0") { try host.startFakeQEMU(vm: $0) }
        }
    }

    @Test(.enabled(if: Capabilities.hasQEMU))
    func killsARealQEMUThatWroteItsOwnPidfileRequiresQEMU() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            let qemuBinary = try #require(Capabilities.which("qemu-system-x86_64"))
            try await measureKillLatency(host, trials: 3, label: "real QEMU") { vm in
                let pidfile = host.stateDirectory + "/vms/\(vm)/qemu.pid"
                try FileManager.default.createDirectory(atPath: host.stateDirectory + "/vms/\(vm)", withIntermediateDirectories: true)
                let qemu = try host.spawn(qemuBinary, [
                    qemuBinary, "-name", "guest=\(vm),debug-threads=on", "-machine", "none", "-nodefaults",
                    "-display", "none", "-S", "-pidfile", pidfile,
                ])
                let ready = await eventually(timeout: .seconds(10), every: .milliseconds(10)) {
                    (try? String(contentsOfFile: pidfile, encoding: .utf8))?.contains("\(qemu.pid)") == true
                }
                try #require(ready && qemu.isAlive, "QEMU did not start; log:\n\(host.log())")
                return qemu
            }
        }
    }

    @Test func pettingKeepsTheQEMUAliveAcrossTwoSeconds() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            let qemu = try host.startFakeQEMU(vm: "vmx")
            let client = host.client()
            let start = MonotonicClock.now()
            var deadline = start
            // 500 ms ahead every 100 ms, like vigild's keep-alives: slack for a loaded machine.
            while MonotonicClock.now() - start < .seconds(2) {
                deadline = try await pet(client, ahead: .milliseconds(500))
                try await Task.sleep(for: .milliseconds(100))
                #expect(qemu.isAlive, "killed while petted, \(MonotonicClock.now() - start) in")
            }
            #expect(try await client.status().killed == 0)
            _ = try await expectKilledOnTime(qemu, deadline: deadline, "after the pets stopped")
        }
    }

    @Test func aFrozenPetterIsFenced() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            let qemu = try host.startFakeQEMU(vm: "vmx")
            let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
            let petter = try host.spawnTestChild(exe, filter: "petterChildProcess", environment: [PetterChild.socketVariable: host.socketPath])
            let client = host.client()
            let petting = await eventually(timeout: .seconds(30)) { (try? await client.status())?.holder == PetterChild.holder }
            #expect(petting, "the petter child never petted")
            try await Task.sleep(for: .seconds(1))
            #expect(qemu.isAlive, "killed while the petter ran")
            kill(petter.pid, SIGSTOP)
            // The last pet may be in flight: read the deadline once it can no longer move.
            try await Task.sleep(for: .milliseconds(50))
            let deadline = try #require(try await client.status().deadline)
            _ = try await expectKilledOnTime(qemu, deadline: deadline, "petter frozen")
            kill(petter.pid, SIGKILL)
        }
    }

    @Test func aPidfileNamingAnotherProgramOrAnotherVMIsNotKilled() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            let target = try host.startFakeQEMU(vm: "vmx")
            let stranger = try host.startStranger(inPidfileOf: "vmy")
            let otherVM = try host.startFakeQEMU(vm: "vmz", nameInArgv: "someone-else")
            let deadline = try await pet(host.client(), ahead: .milliseconds(200))
            _ = try await expectKilledOnTime(target, deadline: deadline, "the real target")
            try await Task.sleep(for: .milliseconds(300))  // several scans while fencing
            #expect(stranger.isAlive, "a pidfile naming sleep (pid reuse) must not be killed")
            #expect(otherVM.isAlive, "a QEMU of another VM under this VM's pidfile must not be killed")
            #expect(try await host.client().status().killed == 1)
            #expect(host.log().contains("pidfile names no QEMU of its VM"))
        }
    }

    @Test func findsQEMUsThroughProcWithoutTheirPidfilesAndSparesAnotherHostsQEMUs() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            // Its pidfile is not (yet) written: /proc alone must find it.
            let unwritten = try host.startFakeQEMU(vm: "vmx", writesPidfile: false)
            // Another lab host on this machine: same /proc, its pidfile in another state directory.
            let otherHost = try host.startFakeQEMU(vm: "vmy", pidfileInArgv: host.directory + "/other-host/vms/vmy/qemu.pid", writesPidfile: false)
            let deadline = try await pet(host.client(), ahead: .milliseconds(200))
            _ = try await expectKilledOnTime(unwritten, deadline: deadline, "QEMU without a pidfile")
            try await Task.sleep(for: .milliseconds(300))
            #expect(otherHost.isAlive, "another host's QEMU must never be killed")
            #expect(try await host.client().status().killed == 1)
        }
    }

    @Test func misbehavingClientsNeitherDelayTheFenceNorLockVigildOut() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            let qemu = try host.startFakeQEMU(vm: "vmx")
            let deadline = try await pet(host.client(), ahead: .milliseconds(400))
            // 40 raw connections (more than the watchdog keeps): garbage, half lines, silence.
            var sockets: [Int32] = []
            defer { for fd in sockets { close(fd) } }
            for i in 0..<40 {
                let fd = try UnixSocket.connect(path: host.socketPath, timeout: .seconds(1))
                sockets.append(fd)
                let junk = [Array("{not json}\n".utf8), Array(#"{"op":"pet","deadlineNa"#.utf8), []][i % 3]
                _ = UnixSocket.sendAll(fd, junk)
            }
            let status = try await host.client().status()
            #expect(status.state == .armed, "a new client still gets through")
            _ = try await expectKilledOnTime(qemu, deadline: deadline, "with 40 misbehaving clients")
        }
    }

    @Test func aWatchdogStoppedPastItsDeadlineFencesAsSoonAsItRunsAgain() async throws {
        try await withHost { host in
            let watchdog = try await host.startWatchdog()
            let qemu = try host.startFakeQEMU(vm: "vmx")
            let deadline = try await pet(host.client(), ahead: .milliseconds(200))
            kill(watchdog.pid, SIGSTOP)
            try await Task.sleep(for: .milliseconds(500))
            #expect(qemu.isAlive, "a stopped watchdog fences nothing (the documented limit)")
            let resumed = MonotonicClock.now()
            kill(watchdog.pid, SIGCONT)
            let diedAt = try #require(try await qemu.died(within: .seconds(2)))
            #expect(diedAt - resumed <= Self.allowedLateness, "killed \(diedAt - resumed) after SIGCONT")
            #expect(diedAt >= resumed && resumed - deadline >= .milliseconds(250), "stopped well past the deadline")
            #expect(host.log().contains("deadline passed without a pet"))
        }
    }

    @Test func disarmPreventsFencing() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            let qemu = try host.startFakeQEMU(vm: "vmx")
            let client = host.client()
            _ = try await pet(client, ahead: .milliseconds(300))
            let status = try await client.disarm()
            #expect(status.state == .disarmed && status.deadline == nil)
            try await Task.sleep(for: .milliseconds(600))
            #expect(qemu.isAlive)
            #expect(try await client.status().fences == 0)
        }
    }

    @Test func afterAFenceOnlyRearmStopsTheKilling() async throws {
        try await withHost { host in
            try await host.startWatchdog()
            let client = host.client()
            let first = try host.startFakeQEMU(vm: "vmx")
            let deadline = try await pet(client, ahead: .milliseconds(100))
            _ = try await expectKilledOnTime(first, deadline: deadline, "first")
            // A pet after the deadline is refused and changes nothing.
            let refusal = await #expect(throws: WatchdogError.self) {
                try await client.pet(until: MonotonicClock.now() + .seconds(30), holder: "n1")
            }
            #expect(refusal?.code == .fencing && refusal?.status?.fencing == true)
            await #expect(throws: WatchdogError.self) { try await client.disarm() }
            // A QEMU that appears while fencing dies within a poll interval or so.
            let late = try host.startFakeQEMU(vm: "vmx")
            #expect(try await late.died(within: .seconds(1)) != nil, "a QEMU started while fencing must die")
            // Re-armed (vigild holds a fresh lease): QEMUs live again.
            let rearmed = try await client.rearm(until: MonotonicClock.now() + .seconds(30), holder: "n1")
            #expect(rearmed.state == .armed)
            let third = try host.startFakeQEMU(vm: "vmx")
            try await Task.sleep(for: .milliseconds(300))
            #expect(third.isAlive)
            #expect(host.log().contains("re-armed after a fence"))
        }
    }

    @Test func sigtermStopsTheWatchdogWithoutKillingAndTheClientSaysTheSocketIsGone() async throws {
        try await withHost { host in
            let watchdog = try await host.startWatchdog()
            let qemu = try host.startFakeQEMU(vm: "vmx")
            let client = host.client()
            _ = try await pet(client, ahead: .milliseconds(300))
            kill(watchdog.pid, SIGTERM)
            #expect(try await watchdog.died(within: .seconds(5)) != nil)
            try await Task.sleep(for: .milliseconds(500))
            #expect(qemu.isAlive, "SIGTERM must not kill the VMs")
            #expect(host.log().contains("stopping on signal"))
            let gone = await #expect(throws: WatchdogError.self) { try await client.status() }
            #expect(gone?.code == .socketMissing, "a clear 'no watchdog', not a hang: \(String(describing: gone))")
        }
    }

    @Test func aRestartedWatchdogServesTheSameClientAndClearsTheStaleSocket() async throws {
        try await withHost { host in
            let first = try await host.startWatchdog()
            let client = host.client()
            _ = try await pet(client, ahead: .seconds(30))
            kill(first.pid, SIGKILL)  // leaves its socket file behind
            #expect(try await first.died(within: .seconds(5)) != nil)
            let dead = await #expect(throws: WatchdogError.self) { try await client.status() }
            #expect(dead?.code == .notListening || dead?.code == .connectionLost, "\(String(describing: dead))")
            let second = try await host.startWatchdog()
            let qemu = try host.startFakeQEMU(vm: "vmx")
            let deadline = try await pet(client, ahead: .milliseconds(300))
            #expect(try await client.status().pid == second.pid, "the same client reached the new watchdog")
            _ = try await expectKilledOnTime(qemu, deadline: deadline, "after the restart")
        }
    }

    @Test func statusFlagPrintsTheRunningWatchdogsStatusOrSaysThereIsNone() async throws {
        try await withHost { host in
            let none = try runProcess(BuiltBinaries.vigilWatchdog, ["--status", "--state-dir", host.stateDirectory], timeout: 10)
            #expect(none.status == 69 && none.stderr.contains("socketMissing"), "\(none.stderr)")
            let watchdog = try await host.startWatchdog()
            let some = try runProcess(BuiltBinaries.vigilWatchdog, ["--status", "--state-dir", host.stateDirectory], timeout: 10)
            #expect(some.status == 0)
            let status = try JSONDecoder().decode(WatchdogStatus.self, from: Data(some.stdout.utf8))
            #expect(status.pid == watchdog.pid && status.state == .disarmed)
        }
    }

    @Test func aSecondWatchdogOnTheSameStateDirectoryIsRefused() async throws {
        try await withHost { host in
            let first = try await host.startWatchdog()
            let result = try runProcess(BuiltBinaries.vigilWatchdog, ["--state-dir", host.stateDirectory], timeout: 10)
            #expect(result.status == 75)
            #expect(result.stderr.contains("another vigil-watchdog"), "says why: \(result.stderr)")
            #expect(try await host.client().status().pid == first.pid, "the first one still serves")
        }
    }
}

/// The child side of `aFrozenPetterIsFenced`: this test binary re-executed, petting like
/// vigild (every 50 ms, 300 ms ahead) until the parent stops or kills it.
struct PetterChild {
    static let socketVariable = "VIGIL_WATCHDOG_PETTER_SOCKET"
    static let holder = "petter"

    @Test(.enabled(if: ProcessInfo.processInfo.environment[socketVariable] != nil))
    func petterChildProcess() async throws {
        let client = WatchdogClient(socketPath: ProcessInfo.processInfo.environment[Self.socketVariable]!)
        while true {
            _ = try? await client.pet(until: MonotonicClock.now() + .milliseconds(300), holder: Self.holder)
            try await Task.sleep(for: .milliseconds(50))
        }
    }
}

extension WatchdogHost {
    /// Re-executes the test binary to run only the test `filter`, with `environment` added
    /// (through `env`, leaving this process's environment alone).
    func spawnTestChild(_ executable: String, filter: String, environment: [String: String]) throws -> ChildProcess {
        let assignments = environment.map { "\($0.key)=\($0.value)" }
        return try spawn("/usr/bin/env", ["env"] + assignments + [executable, "--testing-library", "swift-testing", "--filter", filter])
    }
}

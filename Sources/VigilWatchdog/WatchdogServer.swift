#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import VigilCore

/// vigil-watchdog's loop: one thread, one `poll` over the listening socket, the
/// clients and the stop pipe, with its timeout set to the next deadline. Decisions
/// come from `WatchdogStateMachine`; this type only carries them out.
///
/// A client that disconnects changes nothing: the deadline stays in force, so vigild
/// crashing (or being killed) does not disarm the fence.
public final class WatchdogServer {
    public struct Configuration: Sendable {
        public var stateDirectory: String
        public var socketPath: String
        /// How often to scan for QEMUs while fencing (and the longest `poll` sleep).
        public var pollInterval: Duration
        /// How long a kill waits for the QEMUs to be gone before moving on.
        public var killConfirmation: Duration

        public init(stateDirectory: String, socketPath: String? = nil, pollInterval: Duration = .milliseconds(50),
                    killConfirmation: Duration = .milliseconds(500)) {
            // The fencer matches QEMUs' `-pidfile <stateDir>/vms/…` as text: no trailing "/".
            self.stateDirectory = (stateDirectory as NSString).standardizingPath
            self.socketPath = socketPath ?? WatchdogClient.socketPath(stateDirectory: stateDirectory)
            self.pollInterval = pollInterval
            self.killConfirmation = killConfirmation
        }
    }

    private let configuration: Configuration
    let logger: Logger
    private let listener: WatchdogListener
    private var machine = WatchdogStateMachine()
    private var fencer: QEMUFencer
    /// Connected clients: what they sent so far, and when they last sent anything.
    private var clients: [Int32: (buffer: LineBuffer, lastHeard: MonotonicInstant)] = [:]
    private var fences = 0
    /// Every QEMU signalled, so one that needs a second SIGKILL is counted once.
    private var killed: Set<FenceTarget> = []
    private let maxClients = 32
    private var lastRefresh = MonotonicInstant(nanoseconds: 0)
    /// How often an armed watchdog re-scans for QEMUs (see `refreshKnownQEMUs`).
    public static let refreshInterval = Duration.milliseconds(500)

    /// Claims the socket (see `WatchdogListener`).
    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        self.logger = logger
        listener = try WatchdogListener(path: configuration.socketPath)
        fencer = QEMUFencer(stateDirectory: configuration.stateDirectory, logger: logger)
    }

    /// Serves until SIGTERM or SIGINT, then returns without killing anything.
    public func run() {
        let stopPipe = StopSignals.install()
        // Touch the fence path once now, so its pages are resident (and locked) before
        // a deadline needs them.
        let present = Set((fencer.scanProc() + fencer.scanPidfiles()).map(\.pid))
        logger.info("watchdog ready", metadata: [
            "vigil.socket": "\(configuration.socketPath)", "vigil.vms": "\(fencer.vmsDirectory)",
            "vigil.qemus.present": "\(present.count)", "vigil.poll": "\(configuration.pollInterval)",
        ])
        defer {
            for fd in clients.keys { close(fd) }
            listener.closeAndUnlink()
        }
        while true {
            perform(machine.handle(.tick(now: MonotonicClock.now())))
            refreshKnownQEMUs()
            var fds = [pollfd(fd: stopPipe, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: listener.fd, events: Int16(POLLIN), revents: 0)]
            fds += clients.keys.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let ready = poll(&fds, nfds_t(fds.count), pollTimeoutMilliseconds())
            if ready < 0 {
                if errno == EINTR { continue }
                logger.error("poll failed", metadata: ["vigil.error": "\(UnixSocket.errorText())"])
                usleep(10_000)
                continue
            }
            if fds[0].revents != 0 {
                var signalNumber: UInt8 = 0
                _ = read(stopPipe, &signalNumber, 1)
                logger.notice("stopping on signal: nothing killed, the deadline is abandoned", metadata: [
                    "vigil.signal": "\(signalNumber)", "vigil.state": "\(status(now: MonotonicClock.now()).state.rawValue)",
                ])
                return
            }
            for client in fds[2...] where client.revents != 0 { serve(client.fd) }
            if fds[1].revents != 0 { acceptClients() }
        }
    }

    /// While armed, re-scan /proc (never the state disk) every `refreshInterval` so that
    /// at the deadline the fencer already knows the QEMUs to kill (`QEMUFencer.lastFound`);
    /// never in the last 100 ms before the deadline, when a scan could delay the fence.
    /// A scan costs 1–10 ms of CPU (debug build, ~100 processes): twice a second is cheap.
    private func refreshKnownQEMUs() {
        guard case let .armed(deadline, _) = machine.state else { return }
        let now = MonotonicClock.now()
        guard now - lastRefresh >= Self.refreshInterval, deadline - now > .milliseconds(100) else { return }
        _ = fencer.scanProc()
        lastRefresh = now
    }

    /// Until the next tick the state machine asks for, never longer than one poll
    /// interval; rounded up, so the wake-up is at or just after the deadline.
    private func pollTimeoutMilliseconds() -> Int32 {
        let now = MonotonicClock.now()
        var wait = configuration.pollInterval
        if let next = machine.nextTick(now: now, pollInterval: configuration.pollInterval) {
            wait = min(wait, max(.zero, next - now))
        }
        let nanos = wait.wholeNanoseconds
        return Int32((nanos + 999_999) / 1_000_000)
    }

    private func acceptClients() {
        while true {
            let fd = accept(listener.fd, nil, nil)
            guard fd >= 0 else { return }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            UnixSocket.setNonBlocking(fd)
            // Full: the client silent the longest goes, so leaked or idle connections can
            // never lock vigild out.
            if clients.count >= maxClients, let quietest = clients.min(by: { $0.value.lastHeard < $1.value.lastHeard })?.key {
                logger.warning("too many watchdog clients; dropped the quietest", metadata: ["vigil.clients": "\(clients.count)"])
                drop(quietest)
            }
            clients[fd] = (LineBuffer(), MonotonicClock.now())
        }
    }

    /// Reads what the client sent and answers every complete request line.
    private func serve(_ fd: Int32) {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0, errno == EAGAIN || errno == EINTR { return }
        guard n > 0, var buffer = clients[fd]?.buffer else { return drop(fd) }
        do {
            try buffer.append(chunk[..<n])
        } catch {
            logger.warning("client sent garbage; dropped", metadata: ["vigil.error": "\(error)"])
            return drop(fd)
        }
        while let line = buffer.nextLine() {
            let reply = answer(line)
            // Replies are small; a client whose socket buffer is full is not reading: drop it.
            if UnixSocket.sendAll(fd, WatchdogCodec.encode(reply)) != nil { return drop(fd) }
        }
        clients[fd] = (buffer, MonotonicClock.now())
    }

    private func drop(_ fd: Int32) {
        clients[fd] = nil
        close(fd)
    }

    private func answer(_ line: [UInt8]) -> WatchdogReply {
        let request: WatchdogRequest
        do {
            request = try WatchdogCodec.decodeRequest(line)
        } catch {
            return .failure("badRequest", "\(error)", status(now: MonotonicClock.now()))
        }
        let now = MonotonicClock.now()
        let event: WatchdogStateMachine.Event? = switch request {
        case let .pet(deadline, holder): .pet(deadline: deadline, holder: holder, now: now)
        case let .rearm(deadline, holder): .rearm(deadline: deadline, holder: holder, now: now)
        case .disarm: .disarm(now: now)
        case .status: nil
        }
        let refusal = event.flatMap { perform(machine.handle($0)) }
        let current = status(now: MonotonicClock.now())
        guard let refusal else { return .success(current) }
        switch refusal {
        case let .fencing(since):
            return .failure("fencing", "the deadline passed \(MonotonicClock.now() - since) ago and QEMUs are being killed; only rearm (with a fresh lease) ends fencing", current)
        }
    }

    /// Carries out effects in order; returns the refusal among them, if any.
    @discardableResult
    private func perform(_ effects: [WatchdogStateMachine.Effect]) -> WatchdogRefusal? {
        var refusal: WatchdogRefusal?
        for effect in effects {
            switch effect {
            case .scan:
                // Cheapest first: the QEMUs already known (a stat each), then the rest of
                // /proc, then the pidfiles on the state disk (which may be what hangs).
                // What an earlier step killed has ended, so no later step finds it again.
                let known = fencer.lastFoundStillRunning()
                if !known.isEmpty { perform(machine.handle(.scanned(known, now: MonotonicClock.now()))) }
                perform(machine.handle(.scanned(fencer.scanProc(), now: MonotonicClock.now())))
                perform(machine.handle(.scanned(fencer.scanPidfiles(), now: MonotonicClock.now())))
            case let .kill(targets, deadline, holder):
                kill(targets, deadline: deadline, holder: holder)
            case let .refuse(reason):
                refusal = reason
            case let .log(notice):
                if case .expired = notice { fences += 1 }
                log(notice)
            }
        }
        return refusal
    }

    private func kill(_ targets: [FenceTarget], deadline: MonotonicInstant, holder: String) {
        for outcome in fencer.kill(targets, confirmWithin: configuration.killConfirmation) {
            let target = outcome.target
            var metadata: Logger.Metadata = [
                "vigil.vm": "\(target.vm)", "vigil.qemu.pid": "\(target.pid)", "vigil.holder": "\(holder)",
            ]
            guard let signalled = outcome.signalledAt else {
                logger.debug("fence: QEMU ended by itself before the signal", metadata: metadata)
                continue
            }
            killed.insert(target)
            metadata["vigil.signalled_after_deadline"] = "\(milliseconds(signalled - deadline))"
            if let gone = outcome.goneAt {
                metadata["vigil.gone_after_deadline"] = "\(milliseconds(gone - deadline))"
                logger.warning("fence: QEMU killed", metadata: metadata)
            } else {
                logger.error("fence: QEMU still alive after SIGKILL (uninterruptible I/O?); will signal again", metadata: metadata)
            }
        }
    }

    private func status(now: MonotonicInstant) -> WatchdogStatus {
        let state: WatchdogStatus.State = switch machine.state {
        case .disarmed: .disarmed
        case .armed: .armed
        case .fencing: .fencing
        }
        return WatchdogStatus(
            pid: getpid(), state: state, deadlineNanos: machine.deadline?.nanoseconds, holder: machine.holder,
            fencing: machine.isFencing, fences: fences, killed: killed.count, nowNanos: now.nanoseconds)
    }
}

/// `vms/<vm>/migration`: one live migration of a VM, its protocol phase and progress.
///
/// Who moves it from phase to phase (every write is a compare-and-swap on the key's
/// mod revision, so two writers never both win):
///
///     requested ──leader──▶ preparing ──destination──▶ ready ──source──▶ copying
///        │                      │                        │                 │
///        │                      ▼                        ▼                 ▼
///        └──(any)──▶ cancelling ──source or leader──▶ cancelled      switchingOver
///                                                                          │
///     failed (reason) from any active phase            done ◀──destination─┘
///
/// `done` is written by the destination in the same transaction as the ownership
/// switch (the placement CAS); the source writes `switchingOver` when its QEMU says
/// `completed` and resumes its own guest only if it wins the placement instead.
public struct MigrationRecord: Codable, Equatable, Sendable {
    public var id: String
    public var vm: VMName
    public var source: NodeName
    public var destination: NodeName
    /// The placement epoch on the source when the migration was requested.
    public var sourceEpoch: Int64
    /// The placement's mod revision when the leader admitted the migration (0 until then):
    /// the compare of the ownership switch.
    public var placementRevision: Int64
    public var phase: MigrationPhase
    /// Why: `operator`, `drain of n1`, …
    public var origin: String
    public var policy: MigrationPolicy
    /// `tcp:ADDR:PORT` where the destination QEMU listens (set with `ready`).
    public var incoming: String?
    /// Which network the migration stream uses, and why (set with `ready`).
    public var network: String?
    public var progress: MigrationProgress?
    /// What convergence control did, in order.
    public var steps: [String]
    /// Why it failed or was cancelled.
    public var reason: String?
    /// Destination: from seeing its QEMU's incoming migration complete to the guest resumed
    /// after the ownership switch (added to QEMU's own downtime).
    public var switchoverMs: Int64?
    /// When the guest's CPUs stopped on the source and resumed on the destination (QEMU's
    /// `STOP`/`RESUME` event stamps, microseconds since 1970): the pause the guest saw.
    public var stoppedAtMicros: Int64?
    public var resumedAtMicros: Int64?
    public var guestPauseMs: Double? {
        guard let s = stoppedAtMicros, let r = resumedAtMicros, r >= s else { return nil }
        return Double(r - s) / 1000
    }
    /// Wall-clock milliseconds, stamped by the writer's shell.
    public var requestedAtMillis: Int64
    public var updatedAtMillis: Int64

    public init(id: String, vm: VMName, source: NodeName, destination: NodeName, sourceEpoch: Int64, phase: MigrationPhase = .requested,
                origin: String = "operator", policy: MigrationPolicy = MigrationPolicy(), requestedAtMillis: Int64 = 0) {
        self.id = id; self.vm = vm; self.source = source; self.destination = destination; self.sourceEpoch = sourceEpoch
        self.placementRevision = 0; self.phase = phase; self.origin = origin; self.policy = policy
        self.incoming = nil; self.network = nil; self.progress = nil; self.steps = []; self.reason = nil; self.switchoverMs = nil
        self.stoppedAtMicros = nil; self.resumedAtMicros = nil
        self.requestedAtMillis = requestedAtMillis; self.updatedAtMillis = requestedAtMillis
    }

    /// This record moved to `phase` (with a reason for failed/cancelled), or nil when the
    /// protocol does not allow that move from the current phase.
    public func moved(to phase: MigrationPhase, reason: String? = nil) -> MigrationRecord? {
        guard self.phase.allows(phase) else { return nil }
        var r = self
        r.phase = phase
        if let reason { r.reason = reason }
        return r
    }
}

public enum MigrationPhase: String, Codable, Sendable, CaseIterable {
    case requested, preparing, ready, copying, switchingOver, done, cancelling, cancelled, failed

    /// No further change: the key may be replaced by a new request.
    public var isFinal: Bool { self == .done || self == .cancelled || self == .failed }
    /// Holds resources on its nodes (counts against the per-node limit).
    public var isActive: Bool { !isFinal && self != .requested }

    /// The protocol's allowed moves (see `MigrationRecord`).
    public func allows(_ next: MigrationPhase) -> Bool {
        switch (self, next) {
        case (.requested, .preparing), (.preparing, .ready), (.ready, .copying), (.copying, .switchingOver),
             (.copying, .done), (.switchingOver, .done):
            return true
        case (.requested, .cancelling), (.preparing, .cancelling), (.ready, .cancelling), (.copying, .cancelling):
            return true
        case (.requested, .cancelled), (.cancelling, .cancelled):
            return true
        case (.requested, .failed), (.preparing, .failed), (.ready, .failed), (.copying, .failed),
             (.switchingOver, .failed), (.cancelling, .failed):
            return true
        default:
            return false
        }
    }
}

/// How a migration is run and when convergence control steps in.
public struct MigrationPolicy: Codable, Equatable, Sendable {
    /// Bytes per second; nil lifts QEMU's cap (Vigil's default, see architecture-notes).
    public var maxBandwidth: Int64?
    /// The downtime QEMU aims at first, in milliseconds.
    public var downtimeLimitMs: Int
    /// Convergence control on: CPU throttling, then larger downtime limits up to `maxDowntimeMs`.
    public var convergence: Bool
    public var maxDowntimeMs: Int
    /// A migration not done by then is cancelled (the VM stays on the source).
    public var timeLimitSeconds: Int
    /// multifd channels (0: one stream, no multifd).
    public var multifdChannels: Int

    public init(maxBandwidth: Int64? = nil, downtimeLimitMs: Int = 300, convergence: Bool = true, maxDowntimeMs: Int = 2000,
                timeLimitSeconds: Int = 120, multifdChannels: Int = 0) {
        self.maxBandwidth = maxBandwidth; self.downtimeLimitMs = downtimeLimitMs; self.convergence = convergence
        self.maxDowntimeMs = maxDowntimeMs; self.timeLimitSeconds = timeLimitSeconds; self.multifdChannels = multifdChannels
    }

    /// The first thing wrong, naming the field, or nil.
    public func problem() -> String? {
        if let b = maxBandwidth, b < 1 << 20 { return "bandwidth must be at least 1 MiB/s" }
        if !(10...60_000).contains(downtimeLimitMs) { return "downtime limit must be 10…60000 ms, got \(downtimeLimitMs)" }
        if !(downtimeLimitMs...60_000).contains(maxDowntimeMs) { return "max downtime must be \(downtimeLimitMs)…60000 ms, got \(maxDowntimeMs)" }
        if !(1...3600).contains(timeLimitSeconds) { return "time limit must be 1…3600 s, got \(timeLimitSeconds)" }
        if !(0...16).contains(multifdChannels) { return "multifd channels must be 0…16, got \(multifdChannels)" }
        return nil
    }
}

/// What the source's QEMU said at the last look (`query-migrate`).
public struct MigrationProgress: Codable, Equatable, Sendable {
    /// Dirty-sync count: passes over memory so far.
    public var passes: Int64
    public var totalBytes: Int64
    public var transferredBytes: Int64
    public var remainingBytes: Int64
    /// Bytes per second dirtied, as QEMU last measured.
    public var dirtyRate: Int64
    /// Bytes per second sent.
    public var bandwidth: Int64
    public var expectedDowntimeMs: Int64?
    /// Actual downtime, once completed (QEMU's, plus the ownership switch when known).
    public var downtimeMs: Int64?
    public var elapsedMs: Int64
    /// CPU throttle QEMU applies (auto-converge), percent.
    public var throttlePercent: Int?

    public init(passes: Int64 = 0, totalBytes: Int64 = 0, transferredBytes: Int64 = 0, remainingBytes: Int64 = 0, dirtyRate: Int64 = 0,
                bandwidth: Int64 = 0, expectedDowntimeMs: Int64? = nil, downtimeMs: Int64? = nil, elapsedMs: Int64 = 0, throttlePercent: Int? = nil) {
        self.passes = passes; self.totalBytes = totalBytes; self.transferredBytes = transferredBytes; self.remainingBytes = remainingBytes
        self.dirtyRate = dirtyRate; self.bandwidth = bandwidth; self.expectedDowntimeMs = expectedDowntimeMs; self.downtimeMs = downtimeMs
        self.elapsedMs = elapsedMs; self.throttlePercent = throttlePercent
    }

    /// Fraction of memory sent, 0…1 (for progress bars).
    public var fraction: Double {
        guard totalBytes > 0 else { return 0 }
        return min(1, max(0, Double(totalBytes - remainingBytes) / Double(totalBytes)))
    }
}

/// `POST /v1/vms/<vm>/migrate`.
public struct MigrateRequest: Codable, Equatable, Sendable {
    /// Destination node; the planner chooses when nil.
    public var to: String?
    /// Convergence control (default on).
    public var convergence: Bool?
    /// MiB per second; nil: Vigil's default (cap lifted).
    public var bandwidthMiBs: Int?
    public var downtimeLimitMs: Int?
    public var maxDowntimeMs: Int?
    public var timeLimitSeconds: Int?
    public var multifdChannels: Int?

    public init(to: String? = nil, convergence: Bool? = nil, bandwidthMiBs: Int? = nil, downtimeLimitMs: Int? = nil,
                maxDowntimeMs: Int? = nil, timeLimitSeconds: Int? = nil, multifdChannels: Int? = nil) {
        self.to = to; self.convergence = convergence; self.bandwidthMiBs = bandwidthMiBs; self.downtimeLimitMs = downtimeLimitMs
        self.maxDowntimeMs = maxDowntimeMs; self.timeLimitSeconds = timeLimitSeconds; self.multifdChannels = multifdChannels
    }

    /// The policy this request asks for, on top of `defaults`.
    public func policy(defaults: MigrationPolicy = MigrationPolicy()) -> MigrationPolicy {
        var p = defaults
        if let c = convergence { p.convergence = c }
        if let b = bandwidthMiBs { p.maxBandwidth = Int64(b) << 20 }
        if let d = downtimeLimitMs { p.downtimeLimitMs = d; p.maxDowntimeMs = max(p.maxDowntimeMs, d) }
        if let m = maxDowntimeMs { p.maxDowntimeMs = m }
        if let t = timeLimitSeconds { p.timeLimitSeconds = t }
        if let m = multifdChannels { p.multifdChannels = m }
        return p
    }
}

/// `POST /v1/nodes/<node>/drain`.
public struct DrainRequest: Codable, Equatable, Sendable {
    /// Pause and migrate what fits even when some VMs would stay.
    public var force: Bool?
    public init(force: Bool? = nil) { self.force = force }
}

/// What a drain did (or would do, when refused).
public struct DrainPlan: Codable, Equatable, Sendable {
    public struct Move: Codable, Equatable, Sendable {
        public var vm: VMName
        public var to: NodeName
        public init(vm: VMName, to: NodeName) { self.vm = vm; self.to = to }
    }
    public struct Stay: Codable, Equatable, Sendable {
        public var vm: VMName
        public var reason: String
        public init(vm: VMName, reason: String) { self.vm = vm; self.reason = reason }
    }
    public var node: NodeName
    public var moves: [Move]
    public var stays: [Stay]
    public init(node: NodeName, moves: [Move], stays: [Stay]) { self.node = node; self.moves = moves; self.stays = stays }
}

extension EventKind {
    public static let migrationRequested = EventKind(rawValue: "migration.requested")
    public static let migrationStarted = EventKind(rawValue: "migration.started")
    public static let migrationConvergence = EventKind(rawValue: "migration.convergence")
    public static let migrationDone = EventKind(rawValue: "migration.done")
    public static let migrationCancelled = EventKind(rawValue: "migration.cancelled")
    public static let migrationFailed = EventKind(rawValue: "migration.failed")
    public static let nodeDrain = EventKind(rawValue: "node.drain")
    public static let nodeResumed = EventKind(rawValue: "node.resumed")
}

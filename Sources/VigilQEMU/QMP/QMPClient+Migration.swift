/// Live migration commands.
extension QMPClient {
    /// `migrate-set-capabilities`, e.g. `["multifd": true, "events": true]`. Both ends
    /// must agree on capabilities such as `multifd`; set them before `migrate`.
    public func migrateSetCapabilities(_ capabilities: [String: Bool]) async throws {
        let list: [QMPValue] = capabilities.sorted { $0.key < $1.key }.map { name, state in
            ["capability": .string(name), "state": .bool(state)]
        }
        try await execute("migrate-set-capabilities", arguments: ["capabilities": .array(list)])
    }

    /// `migrate-set-parameters` with the fields that are set.
    public func migrateSetParameters(_ parameters: MigrationParameters) async throws {
        try await execute("migrate-set-parameters", arguments: parameters.arguments)
    }

    /// Starts an outgoing migration, e.g. `tcp:10.0.0.2:4444`. Returns at once; poll
    /// `queryMigrate()` or watch `MIGRATION` events.
    public func migrate(uri: String) async throws {
        try await execute("migrate", arguments: ["uri": .string(uri)])
    }

    /// `query-migrate`.
    public func queryMigrate() async throws -> MigrationInfo {
        MigrationInfo(try await execute("query-migrate"))
    }

    /// Cancels an outgoing migration; the source keeps running (the destination QEMU exits).
    public func migrateCancel() async throws { try await execute("migrate_cancel") }

    /// Starts listening for an incoming migration on a QEMU started with `-incoming defer`.
    public func migrateIncoming(uri: String) async throws {
        try await execute("migrate-incoming", arguments: ["uri": .string(uri)])
    }
}

/// What `migrate-set-parameters` may change; nil fields are left as they are.
public struct MigrationParameters: Sendable, Equatable {
    /// Bytes per second (QEMU's default is 128 MiB/s).
    public var maxBandwidth: Int64?
    /// Longest acceptable stop of the guest at the switch-over (QEMU's default 300 ms).
    public var downtimeLimit: Duration?
    /// Parallel connections with the `multifd` capability.
    public var multifdChannels: Int?
    /// Auto-converge: first throttle (percent) and each further step (percent).
    public var cpuThrottleInitial: Int?
    public var cpuThrottleIncrement: Int?

    public init(
        maxBandwidth: Int64? = nil, downtimeLimit: Duration? = nil, multifdChannels: Int? = nil,
        cpuThrottleInitial: Int? = nil, cpuThrottleIncrement: Int? = nil
    ) {
        self.maxBandwidth = maxBandwidth
        self.downtimeLimit = downtimeLimit
        self.multifdChannels = multifdChannels
        self.cpuThrottleInitial = cpuThrottleInitial
        self.cpuThrottleIncrement = cpuThrottleIncrement
    }

    /// The command's arguments, in QMP's names.
    public var arguments: [String: QMPValue] {
        var a: [String: QMPValue] = [:]
        if let maxBandwidth { a["max-bandwidth"] = .int(maxBandwidth) }
        if let downtimeLimit { a["downtime-limit"] = .int(downtimeLimit.milliseconds) }
        if let multifdChannels { a["multifd-channels"] = .int(Int64(multifdChannels)) }
        if let cpuThrottleInitial { a["cpu-throttle-initial"] = .int(Int64(cpuThrottleInitial)) }
        if let cpuThrottleIncrement { a["cpu-throttle-increment"] = .int(Int64(cpuThrottleIncrement)) }
        return a
    }
}

/// `MigrationStatus`; unknown values are kept.
public struct MigrationStatus: QMPName {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    public static let none: MigrationStatus = "none"
    public static let setup: MigrationStatus = "setup"
    public static let active: MigrationStatus = "active"
    public static let postcopyActive: MigrationStatus = "postcopy-active"
    public static let preSwitchover: MigrationStatus = "pre-switchover"
    public static let device: MigrationStatus = "device"
    public static let waitUnplug: MigrationStatus = "wait-unplug"
    public static let cancelling: MigrationStatus = "cancelling"
    public static let cancelled: MigrationStatus = "cancelled"
    public static let completed: MigrationStatus = "completed"
    public static let failed: MigrationStatus = "failed"

    /// No further change will come (`completed`, `failed`, `cancelled`).
    public var isFinal: Bool { self == .completed || self == .failed || self == .cancelled }
}

/// `query-migrate`'s answer. Byte counts are RAM only (QEMU's `ram` object).
public struct MigrationInfo: Sendable, Equatable {
    public var status: MigrationStatus
    public var totalBytes: Int64?
    public var remainingBytes: Int64?
    public var transferredBytes: Int64?
    /// Pages dirtied per second, as QEMU last measured.
    public var dirtyPagesRate: Int64?
    /// Passes over dirty memory so far.
    public var dirtySyncCount: Int64?
    /// Throughput in megabits per second.
    public var mbps: Double?
    /// Estimated stop time if it switched over now (while active).
    public var expectedDowntime: Duration?
    /// Actual stop time (when completed).
    public var downtime: Duration?
    /// Since `migrate` (running total while active).
    public var totalTime: Duration?
    public var setupTime: Duration?
    /// Why it failed, if it did.
    public var errorDescription: String?

    public init(status: MigrationStatus) { self.status = status }

    public init(_ value: QMPValue) {
        status = MigrationStatus(rawValue: value["status"]?.stringValue ?? "none")
        let ram = value["ram"]
        totalBytes = ram?["total"]?.int64Value
        remainingBytes = ram?["remaining"]?.int64Value
        transferredBytes = ram?["transferred"]?.int64Value
        dirtyPagesRate = ram?["dirty-pages-rate"]?.int64Value
        dirtySyncCount = ram?["dirty-sync-count"]?.int64Value
        mbps = ram?["mbps"]?.doubleValue
        expectedDowntime = value["expected-downtime"]?.int64Value.map { .milliseconds($0) }
        downtime = value["downtime"]?.int64Value.map { .milliseconds($0) }
        totalTime = value["total-time"]?.int64Value.map { .milliseconds($0) }
        setupTime = value["setup-time"]?.int64Value.map { .milliseconds($0) }
        errorDescription = value["error-desc"]?.stringValue
    }
}

extension Duration {
    var milliseconds: Int64 {
        let (s, atto) = components
        return s * 1000 + atto / 1_000_000_000_000_000
    }
}

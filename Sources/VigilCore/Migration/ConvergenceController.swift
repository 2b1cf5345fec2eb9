/// Convergence control on the source, as a pure state machine: fed every progress
/// sample of a running migration, it decides when to step in and says why.
///
/// Escalation (only with `policy.convergence`), each step once the previous one had
/// `settle` passes (or `settleTime`) to work and the migration is still behind:
/// 1. CPU throttling (auto-converge) — the guest dirties less;
/// 2. a larger downtime limit, doubling up to `policy.maxDowntimeMs`.
/// "Behind" means QEMU's dirty rate is at least half the bandwidth it achieves, or the
/// downtime it expects exceeds the current limit. Whatever the policy, a migration still
/// running at `policy.timeLimitSeconds` is cancelled (the VM stays on the source).
public struct ConvergenceController: Sendable {
    public enum Action: Equatable, Sendable {
        /// Let QEMU throttle the guest's CPUs (auto-converge): `increment` percent more at each
        /// pass that stays behind, up to `max` percent.
        case throttle(increment: Int, max: Int)
        case setDowntimeLimit(ms: Int)
        case cancel(reason: String)
    }

    public struct Step: Equatable, Sendable {
        public var action: Action
        /// What it did and why, for the event log.
        public var message: String
    }

    public let policy: MigrationPolicy
    public var settle: Int64 = 2
    public var settleTime: Duration = .seconds(4)
    public private(set) var downtimeLimitMs: Int
    public private(set) var throttling = false
    public private(set) var cancelled = false
    private var lastPass: Int64 = 0
    private var behindPasses = 0
    private var lastStepPass: Int64 = 0
    private var lastStepAt: Duration = .zero

    public init(policy: MigrationPolicy) {
        self.policy = policy
        downtimeLimitMs = policy.downtimeLimitMs
    }

    public mutating func observe(_ p: MigrationProgress) -> [Step] {
        if cancelled { return [] }
        let elapsed = Duration.milliseconds(p.elapsedMs)
        if elapsed >= .seconds(policy.timeLimitSeconds) {
            cancelled = true
            let why = "did not converge within \(policy.timeLimitSeconds) s (pass \(p.passes), dirty \(mib(p.dirtyRate)) MiB/s vs \(mib(p.bandwidth)) MiB/s sent, \(mib(p.remainingBytes)) MiB left, expected downtime \(p.expectedDowntimeMs.map { "\($0) ms" } ?? "?") vs limit \(downtimeLimitMs) ms\(policy.convergence ? "" : ", convergence control off"))"
            return [Step(action: .cancel(reason: why), message: "cancelling: \(why)")]
        }
        guard policy.convergence, p.passes > lastPass else { return [] }
        lastPass = p.passes
        // The first pass copies all of memory; judge from the second on.
        guard p.passes >= 2 else { return [] }
        let behind = (p.bandwidth > 0 && p.dirtyRate * 2 >= p.bandwidth) || (p.expectedDowntimeMs ?? 0) > Int64(downtimeLimitMs)
        behindPasses = behind ? behindPasses + 1 : 0
        guard behind else { return [] }
        let settled = p.passes - lastStepPass >= settle || elapsed - lastStepAt >= settleTime
        let why = "dirty rate \(mib(p.dirtyRate)) MiB/s vs bandwidth \(mib(p.bandwidth)) MiB/s, expected downtime \(p.expectedDowntimeMs.map { "\($0) ms" } ?? "?") vs limit \(downtimeLimitMs) ms at pass \(p.passes)"
        if !throttling {
            guard behindPasses >= 2 else { return [] }
            throttling = true
            lastStepPass = p.passes; lastStepAt = elapsed
            return [Step(action: .throttle(increment: 20, max: 99), message: "auto-converge: throttling the guest's CPUs in steps of 20 % up to 99 % (\(why))")]
        }
        guard settled, downtimeLimitMs < policy.maxDowntimeMs else { return [] }
        let wanted = max(downtimeLimitMs * 2, Int(p.expectedDowntimeMs ?? 0) * 5 / 4)
        let next = min(policy.maxDowntimeMs, wanted)
        downtimeLimitMs = next
        lastStepPass = p.passes; lastStepAt = elapsed
        return [Step(action: .setDowntimeLimit(ms: next), message: "downtime limit raised to \(next) ms (max \(policy.maxDowntimeMs) ms) with throttle at \(p.throttlePercent.map { "\($0) %" } ?? "?"): \(why)")]
    }

    func mib(_ bytes: Int64) -> Int64 { bytes >> 20 }
}

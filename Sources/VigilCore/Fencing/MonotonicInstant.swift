/// A point on the host's CLOCK_MONOTONIC, in nanoseconds since boot.
///
/// vigild and vigil-watchdog compare deadlines on this clock because both processes
/// read the same kernel counter: an absolute instant means the same moment to both,
/// whatever either was doing (or not scheduled to do) in between. Wall time would not
/// do: it jumps. Reading the clock is I/O, so it lives outside VigilCore
/// (`MonotonicClock.now()` in VigilWatchdog); here it is only a value.
public struct MonotonicInstant: Hashable, Comparable, Sendable, Codable, CustomStringConvertible {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }

    /// `self` moved by `duration`, clamped to the clock's range (0…UInt64.max).
    public static func + (instant: Self, duration: Duration) -> Self {
        let delta = duration.wholeNanoseconds
        if delta >= 0 {
            let (sum, overflow) = instant.nanoseconds.addingReportingOverflow(UInt64(delta))
            return Self(nanoseconds: overflow ? .max : sum)
        }
        let magnitude = delta.magnitude
        return Self(nanoseconds: instant.nanoseconds > magnitude ? instant.nanoseconds - magnitude : 0)
    }

    public static func - (instant: Self, duration: Duration) -> Self { instant + (.zero - duration) }

    /// Signed time from `b` to `a` (negative when `a` is earlier).
    public static func - (a: Self, b: Self) -> Duration {
        a >= b ? .nanoseconds(Int64(clamping: a.nanoseconds - b.nanoseconds))
               : .zero - .nanoseconds(Int64(clamping: b.nanoseconds - a.nanoseconds))
    }

    public var description: String { "mono:\(nanoseconds)ns" }

    /// Coded as a bare number of nanoseconds.
    public init(from decoder: Decoder) throws { nanoseconds = try decoder.singleValueContainer().decode(UInt64.self) }
    public func encode(to encoder: Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(nanoseconds) }
}

extension Duration {
    /// The duration in whole nanoseconds, clamped to Int64.
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        let (scaled, overflowed) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        let (sum, overflowedAgain) = scaled.addingReportingOverflow(attoseconds / 1_000_000_000)
        return overflowed || overflowedAgain ? (seconds < 0 ? .min : .max) : sum
    }
}

#if canImport(Glibc)
import Glibc
#endif
import VigilCore

/// Reads CLOCK_MONOTONIC, the clock vigild and vigil-watchdog share for fence deadlines.
///
/// vigild should take `now()` when it *sends* a keep-alive and, once etcd acknowledges
/// it, pet with `sendTime + fenceWindow` (ARCHITECTURE.md, invariant 2).
public enum MonotonicClock {
    public static func now() -> MonotonicInstant {
        var time = timespec()
        // Cannot fail for CLOCK_MONOTONIC with a valid pointer (EINVAL/EFAULT only).
        clock_gettime(CLOCK_MONOTONIC, &time)
        return MonotonicInstant(nanoseconds: UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec))
    }

    /// The same moment as `instant` of Swift's `ContinuousClock` (CLOCK_BOOTTIME on
    /// Linux, which only differs across a suspend), found by its offset from now.
    public static func instant(of instant: ContinuousClock.Instant) -> MonotonicInstant {
        let offset = instant - ContinuousClock.now
        return now() + offset
    }
}

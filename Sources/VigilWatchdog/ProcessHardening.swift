#if canImport(Glibc)
import Glibc
#endif
import Logging

/// Makes the watchdog hard to starve, so it can fence while the host is overloaded or
/// short of memory: a high CPU priority, its pages locked in RAM, and last place for the
/// OOM killer. All need root (without it, as in a loopback lab, they are skipped with a
/// notice); failures are logged and the watchdog runs on regardless.
public enum ProcessHardening {
    /// glibc's MCL_ONFAULT (Linux 4.4), not exported to Swift.
    private static let lockOnFault: Int32 = 4

    public static func apply(niceness: Int32 = -15, logger: Logger) {
        guard geteuid() == 0 else {
            logger.notice("not root: running without raised priority or locked memory", metadata: ["vigil.uid": "\(geteuid())"])
            return
        }
        if setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness) != 0 {
            logger.warning("cannot raise priority; the watchdog may be starved under load", metadata: [
                "vigil.niceness": "\(niceness)", "vigil.error": "\(String(cString: strerror(errno)))",
            ])
        }
        // Last in line for the OOM killer: killing the fence would leave the VMs unguarded.
        if !writeOOMScoreAdjustment(-1000) {
            logger.warning("cannot set oom_score_adj; the OOM killer may pick the watchdog", metadata: [
                "vigil.error": "\(String(cString: strerror(errno)))",
            ])
        }
        // MCL_ONFAULT locks pages as they are touched rather than every mapped page at
        // once: locking all of Foundation's and ICU's libraries would pin tens of MiB
        // per host. The watchdog touches its fence path at start (a scan), so what it
        // needs at the deadline is resident and stays so.
        var flags = MCL_CURRENT | MCL_FUTURE | lockOnFault
        if mlockall(flags) != 0 {
            flags = MCL_CURRENT | MCL_FUTURE
            if mlockall(flags) != 0 {
                logger.warning("cannot lock memory; paging could delay a fence", metadata: [
                    "vigil.error": "\(String(cString: strerror(errno)))",
                ])
                return
            }
        }
        logger.debug("memory locked", metadata: ["vigil.mlockall.flags": "\(flags)"])
    }

    private static func writeOOMScoreAdjustment(_ value: Int) -> Bool {
        let fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let text = Array("\(value)\n".utf8)
        return write(fd, text, text.count) == text.count
    }
}

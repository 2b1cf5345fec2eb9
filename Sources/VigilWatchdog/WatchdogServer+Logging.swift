import Foundation
import Logging
import VigilCore

/// How the watchdog words its decisions: constant messages, data in metadata.
extension WatchdogServer {
    func log(_ notice: WatchdogNotice) {
        switch notice {
        case let .armed(holder, deadline, remaining):
            logger.info("armed", metadata: ["vigil.holder": "\(holder)", "vigil.deadline": "\(deadline)", "vigil.remaining": "\(milliseconds(remaining))"])
        case let .holderChanged(from, to):
            logger.notice("pet from a new holder", metadata: ["vigil.holder.previous": "\(from)", "vigil.holder": "\(to)"])
        case let .deadlineMovedEarlier(from, to, holder):
            logger.notice("deadline moved earlier, as vigild asked", metadata: [
                "vigil.holder": "\(holder)", "vigil.deadline.previous": "\(from)", "vigil.deadline": "\(to)",
            ])
        case let .expired(deadline, holder, late):
            logger.warning("deadline passed without a pet: fencing this host's QEMUs", metadata: [
                "vigil.holder": "\(holder)", "vigil.deadline": "\(deadline)", "vigil.noticed_after": "\(milliseconds(late))",
            ])
        case let .rearmedAfterFence(expired, holder, deadline):
            logger.notice("re-armed after a fence: QEMUs are no longer killed", metadata: [
                "vigil.holder": "\(holder)", "vigil.fenced_since": "\(expired)", "vigil.deadline": "\(deadline)",
            ])
        case let .disarmed(holder):
            logger.info("disarmed", metadata: ["vigil.holder": "\(holder)"])
        }
    }

    func milliseconds(_ duration: Duration) -> String {
        let ms = Double(duration.wholeNanoseconds) / 1_000_000
        return String(format: "%.3fms", ms)
    }
}

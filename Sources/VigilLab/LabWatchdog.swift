import Foundation

/// Every lab host that runs an agent also runs `vigil-watchdog` (ARCHITECTURE.md,
/// "Processes"), started before vigild so the fence is in place before anything could
/// arm it, with the host's state directory. It is one more daemon of `LabDaemons`:
/// `down`, `killHost` and the fault helpers find it by its pidfile like the others.
extension LabRecord {
    /// `vigil-watchdog` in the same directory as the lab's vigild; nil without agents.
    var watchdogBinary: String? {
        vigildBinary.map { URL(fileURLWithPath: $0).deletingLastPathComponent().appendingPathComponent("vigil-watchdog").path }
    }

    /// The watchdog's socket on `host`: where vigild (its stateDir is the host directory) looks.
    func watchdogSocket(_ host: LabHost) -> String { hostDirectory(host) + "/watchdog.sock" }
}

extension LabDaemons {
    /// Its own `setpriority(-15)` and `mlockall` (as root) put it above the lab's `nice -n -10`.
    static func watchdogArguments(_ record: LabRecord, _ host: LabHost) throws -> [String] {
        guard let watchdog = record.watchdogBinary else {
            throw LabError(.noSuchTarget, "lab '\(record.spec.name)' was started without agents, so without watchdogs")
        }
        return [watchdog, "--state-dir", record.hostDirectory(host)]
    }

    /// Refuses a lab with agents but no watchdog binary next to vigild.
    static func checkWatchdogBinary(_ record: LabRecord) throws {
        guard let path = record.watchdogBinary, !FileManager.default.isExecutableFile(atPath: path) else { return }
        throw LabError(.missingBinary,
            "vigil-watchdog not found at \(path) (next to vigild): build it (`swift build --product vigil-watchdog`); every agent host needs one")
    }

}

extension Lab {
    /// Starts each agent host's watchdog and waits until every one listens on its socket.
    func startWatchdogs(timeout: Duration) throws {
        for host in hosts { try LabDaemons.start(record, host, .watchdog) }
        try waitUntil(timeout: timeout, what: "vigil-watchdog sockets", process: .watchdog, targets: hosts) {
            FileManager.default.fileExists(atPath: record.watchdogSocket($0))
        }
    }

    /// (Re)starts the watchdog of `host` (after a fault test killed it).
    @discardableResult
    public func startWatchdog(host: LabHost) throws -> Int32 {
        try checkHost(host)
        guard !host.isWitness else { throw LabError(.noSuchTarget, "the witness runs no agent and no watchdog") }
        return try LabDaemons.start(record, host, .watchdog)
    }
}

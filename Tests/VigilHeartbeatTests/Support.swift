import Logging
import Synchronization
import VigilCore
@testable import VigilHeartbeat

/// Records steered routes instead of changing the kernel's.
final class FakeRouteTable: RouteTable {
    let requests = Mutex<[RouteRequest]>([])
    func steer(_ request: RouteRequest) async throws { requests.withLock { $0.append(request) } }
    var all: [RouteRequest] { requests.withLock { $0 } }
}

/// Polls `condition` every 20 ms until it holds or `timeout` passes; returns whether it held.
func eventually(timeout: Duration, _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

let testKey = try! HeartbeatKey(hex: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")
let testCluster = try! ClusterName("hbtest")

func testLogger(_ label: String) -> Logger {
    var logger = Logger(label: label)
    logger.logLevel = .warning
    return logger
}

import Foundation
import VigilClient
import VigilCore
import VigilTestKit
@testable import VigilLab

/// What the guest workload answers on `GET /` (guest/README.md).
struct GuestStatus: Decodable, Equatable {
    var name: String
    var boot_id: String
    var counter: Int64
    var flushed: Int64
    var start_counter: Int64
    var uptime_ms: Int64
}

extension Lab {
    /// GET the guest's status from inside `host`'s namespace (over the client network).
    func guestStatus(from host: LabHost, address: String) async throws -> GuestStatus? {
        let lab = self
        let r = try await offPool { try lab.exec(host: host, ["curl", "-s", "-m", "2", "http://\(address)/"]) }
        guard r.status == 0 else { return nil }
        return try? JSONDecoder().decode(GuestStatus.self, from: Data(r.stdout.utf8))
    }

    /// VM name → host, for every QEMU process running in a host's namespace, read from /proc.
    func qemuProcesses() async throws -> [String: [LabHost]] {
        let lab = self
        return try await offPool { try lab.qemuProcessesBlocking() }
    }

    func qemuProcessesBlocking() throws -> [String: [LabHost]] { runningQEMUs() }

    func apiClient() throws -> APIClient { APIClient(config: try ClientConfig.parse(file: clientConfigPath)) }

    /// Run the `vigil` CLI against this lab.
    func vigil(_ args: [String], timeout: TimeInterval = 120) async throws -> ProcessResult {
        let path = clientConfigPath
        return try await offPool { try runProcess(BuiltBinaries.vigil, args + ["--config", path], timeout: timeout) }
    }

    /// Blocking lab calls, off the cooperative pool.
    func off<T: Sendable>(_ body: @escaping @Sendable (Lab) throws -> T) async throws -> T {
        let lab = self
        return try await offPool { try body(lab) }
    }

    static func upOffPool(_ spec: LabSpec) async throws -> Lab { try await offPool { try Lab.up(spec) } }
}

import Foundation

/// Per-member health, for status displays.
extension EtcdClient {
    public struct MemberStatus: Sendable, Equatable {
        public var endpoint: String
        public var healthy: Bool
        public var isLeader: Bool
        public var problem: String?
    }

    private struct StatusResponse: Decodable {
        struct Header: Decodable { var member_id: String? }
        var header: Header?
        var leader: String?
        var errors: [String]?
    }
    private struct Empty: Codable, Sendable {}

    /// Ask every member, side by side, for its status. A member is healthy when it
    /// answers within `timeout` and knows a leader.
    public func memberStatuses(timeout: Duration = .milliseconds(500)) async -> [MemberStatus] {
        await withTaskGroup(of: (Int, MemberStatus).self) { group in
            for (i, e) in endpoints.enumerated() {
                group.addTask {
                    do {
                        let r: StatusResponse = try await self.post(e + "/v3/maintenance/status", try JSONEncoder().encode(Empty()), timeout: timeout)
                        let leaderKnown = (r.leader ?? "0") != "0"
                        return (i, MemberStatus(endpoint: e, healthy: leaderKnown && (r.errors ?? []).isEmpty,
                                                isLeader: leaderKnown && r.leader == r.header?.member_id,
                                                problem: leaderKnown ? r.errors?.first : "member knows no leader"))
                    } catch {
                        return (i, MemberStatus(endpoint: e, healthy: false, isLeader: false, problem: "\(error)"))
                    }
                }
            }
            var out: [(Int, MemberStatus)] = []
            for await r in group { out.append(r) }
            return out.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}

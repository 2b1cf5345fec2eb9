import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import VigilAgent
import VigilCore
import VigilStore
import VigilTestKit
@testable import VigilAPI

/// The API in-process, over a real etcd.
@Suite(.enabled(if: Capabilities.hasEtcd, "needs etcd"), .serialized)
struct APIRoutesTests {
    let etcd: EtcdProcess
    let queries: ClusterQueries
    let token = "0123456789abcdef0123"

    init() throws {
        etcd = try EtcdProcess()
        let yaml = """
        cluster: apitest
        node: n1
        token: "\(token)"
        clusterKey: "0123456789abcdef0123456789abcdef"
        clusterAddress: 127.0.0.1
        stateDir: /tmp/vigil-apitest
        etcd: {endpoints: ["\(etcd.endpoint)"]}
        networks: [{name: cluster1, role: cluster, address: 127.0.0.1, prefix: 8}]
        """
        let cfg = try AgentConfig.parse(yaml: yaml)
        let client = try EtcdClient(endpoints: [etcd.endpoint])
        let state = NodeState(node: cfg.node)
        queries = ClusterQueries(context: AgentContext(config: cfg, etcd: client, state: state,
                                                      events: EventLog(etcd: client, keys: cfg.keys, reporter: cfg.node)))
    }

    var app: some ApplicationProtocol {
        Application(router: VigilRoutes.buildRouter(queries: queries, token: token))
    }
    var auth: HTTPFields { [.authorization: "Bearer \(token)"] }

    func errorBody(_ r: TestResponse) throws -> APIErrorBody {
        try JSONDecoder().decode(APIErrorBody.self, from: Data(buffer: r.body))
    }

    @Test func healthzNeedsNoToken() async throws {
        try await app.test(.router) { client in
            do { let r = try await client.execute(uri: "/healthz", method: .get); #expect(r.status == .ok) }
        }
    }

    @Test func everyV1EndpointRefusesMissingOrWrongTokens() async throws {
        try await app.test(.router) { client in
            for path in ["/v1/status", "/v1/nodes", "/v1/nodes/n1", "/v1/events", "/v1/local", "/v1/nope"] {
                do { let r = try await client.execute(uri: path, method: .get)
                    #expect(r.status == .unauthorized, "\(path)")
                    #expect(try errorBody(r).error.code == "unauthorized")
                }
                do { let r = try await client.execute(uri: path, method: .get, headers: [.authorization: "Bearer wrong"])
                    #expect(r.status == .unauthorized, "\(path)")
                }
                do { let r = try await client.execute(uri: path, method: .get, headers: [.authorization: token])
                    #expect(r.status == .unauthorized, "token without the Bearer scheme: \(path)")
                }
            }
        }
    }

    @Test func malformedRequestsGet400WithAJSONError() async throws {
        try await app.test(.router) { client in
            for path in ["/v1/nodes/BAD_NAME", "/v1/events?limit=abc", "/v1/events?limit=0", "/v1/events?limit=5000", "/v1/events?after=%2F..%2F"] {
                do { let r = try await client.execute(uri: path, method: .get, headers: auth)
                    #expect(r.status == .badRequest, "\(path)")
                    let e = try errorBody(r)
                    #expect(e.error.code == "bad_request" && !e.error.message.isEmpty, "\(path)")
                }
            }
            do { let r = try await client.execute(uri: "/v1/nodes/n7", method: .get, headers: auth)
                #expect(r.status == .notFound)
                #expect(try errorBody(r).error.code == "not_found")
            }
            do { let r = try await client.execute(uri: "/v1/nothing-here", method: .get, headers: auth)
                #expect(r.status == .notFound)
                #expect(try errorBody(r).error.code == "not_found")
            }
        }
    }

    @Test func statusListsRegisteredNodesAndEventsPage() async throws {
        let keys = queries.config.keys
        let rec = queries.config.nodeRecord
        try await queries.etcd.putJSON(keys.node(rec.name), rec)
        let lease = try await queries.etcd.grantLease(ttl: 10)
        try await queries.etcd.putJSON(keys.alive(rec.name), AliveRecord(leaseID: lease.id, links: ["cluster1": true]), lease: lease.id)
        for i in 0..<3 {
            try await queries.events.record(ClusterEvent(kind: .nodeJoined, severity: .info, reporter: rec.name, message: "e\(i)"))
        }
        try await app.test(.router) { client in
            do { let r = try await client.execute(uri: "/v1/status", method: .get, headers: auth)
                let s = try JSONDecoder().decode(ClusterStatus.self, from: Data(buffer: r.body))
                #expect(s.quorum)
                #expect(s.nodes.map(\.name.rawValue) == ["n1"])
                #expect(s.nodes.first?.state == .up)
                #expect(s.nodes.first?.networks.first?.up == true)
                #expect(s.etcdMembers.count == 1 && s.etcdMembers[0].healthy)
            }
            var after = ""
            do { let r = try await client.execute(uri: "/v1/events?limit=2", method: .get, headers: auth)
                let p = try JSONDecoder().decode(EventPage.self, from: Data(buffer: r.body))
                #expect(p.events.map(\.event.message) == ["e1", "e2"])
                after = p.events[0].id.rawValue
            }
            do { let r = try await client.execute(uri: "/v1/events?after=\(after)", method: .get, headers: auth)
                let p = try JSONDecoder().decode(EventPage.self, from: Data(buffer: r.body))
                #expect(p.events.map(\.event.message) == ["e2"])
            }
        }
    }

    @Test func statusSaysNoQuorumWhenTheStoreIsGone() async throws {
        etcd.stop(kill: true)
        try await app.test(.router) { client in
            do { let r = try await client.execute(uri: "/v1/status", method: .get, headers: auth)
                #expect(r.status == .ok)
                let s = try JSONDecoder().decode(ClusterStatus.self, from: Data(buffer: r.body))
                #expect(!s.quorum && s.problem != nil && s.leader == nil)
            }
            do { let r = try await client.execute(uri: "/v1/nodes", method: .get, headers: auth)
                #expect(r.status == .serviceUnavailable)
            }
        }
    }
}

import Hummingbird
import VigilAgent
import VigilCore
import VigilStore

/// The REST API of one node; any node answers for the whole cluster.
public enum VigilRoutes {
    public static func buildRouter(queries: ClusterQueries, token: String) -> Router<BasicRequestContext> {
        let manager = VMManager(context: queries.context)
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: ErrorShapeMiddleware())
        // On the whole router, not a group: unknown paths are refused (401) too, not revealed (404).
        router.add(middleware: BearerAuthMiddleware(token: token, openPaths: ["/healthz"]))
        router.get("/healthz") { _, _ in
            JSONBody(Health(ok: true, node: queries.config.node))
        }
        let v1 = router.group("/v1")
        v1.get("/status") { _, _ in
            JSONBody(await queries.status())
        }
        v1.get("/local") { _, _ in
            JSONBody(await queries.local())
        }
        v1.get("/nodes") { _, _ in
            JSONBody(try await storeCall { try await queries.nodesAndLeader().0 })
        }
        v1.get("/nodes/{name}") { _, context in
            let raw = context.parameters.get("name") ?? ""
            let name: NodeName
            do { name = try NodeName(raw) } catch { throw APIError.badRequest("\(error)") }
            let nodes = try await storeCall { try await queries.nodesAndLeader().0 }
            guard let n = nodes.first(where: { $0.name == name }) else {
                throw APIError.notFound("unknown node '\(name)'; known: \(nodes.map(\.name.rawValue).joined(separator: ", "))")
            }
            return JSONBody(n)
        }
        v1.get("/events") { request, _ in
            let q = request.uri.queryParameters
            let limit = try intParam(q.get("limit"), name: "limit", default: 100, range: 1...1000)
            if let raw = q.get("after") {
                guard !raw.isEmpty, raw.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
                    throw APIError.badRequest("'after' must be an event id from a previous page")
                }
                return JSONBody(try await storeCall { try await queries.events.page(after: EventID(rawValue: raw), limit: limit) })
            }
            return JSONBody(try await storeCall { try await queries.events.tail(limit: limit) })
        }
        VMRoutes.add(to: v1, manager: manager)
        MigrationRoutes.add(to: v1, manager: MigrationManager(context: queries.context))
        return router
    }

    struct Health: Codable { var ok: Bool; var node: NodeName }

    static func intParam(_ raw: String?, name: String, default d: Int, range: ClosedRange<Int>) throws -> Int {
        guard let raw else { return d }
        guard let v = Int(raw), range.contains(v) else {
            throw APIError.badRequest("'\(name)' must be an integer in \(range.lowerBound)…\(range.upperBound), got '\(raw)'")
        }
        return v
    }

    /// Store failures become 503 `no_quorum` (or `store_unreachable`).
    static func storeCall<T>(_ body: () async throws -> T) async throws -> T {
        do { return try await body() }
        catch let e as EtcdError where e.code == .noQuorum {
            throw APIError.noQuorum("the cluster store has no quorum: \(e.message)")
        } catch let e as EtcdError where e.code == .unreachable {
            throw APIError(status: .serviceUnavailable, code: "store_unreachable", message: e.message)
        }
    }
}

import Hummingbird
import VigilAgent
import VigilCore

/// Live migration and drain: `POST/DELETE /v1/vms/{name}/migrate`, `GET /v1/vms/{name}/migration`,
/// `POST /v1/nodes/{name}/drain`, `POST /v1/nodes/{name}/resume`.
enum MigrationRoutes {
    static func add(to v1: RouterGroup<BasicRequestContext>, manager: MigrationManager) {
        v1.post("/vms/{name}/migrate") { request, context in
            let req = try await VMRoutes.decodeOptional(MigrateRequest.self, request, context) ?? MigrateRequest()
            var r = JSONBody(try await VMRoutes.call { try await manager.request(context.parameters.get("name") ?? "", req) }).response()
            r.status = .accepted
            return r
        }
        v1.delete("/vms/{name}/migrate") { _, context in
            JSONBody(try await VMRoutes.call { try await manager.cancel(context.parameters.get("name") ?? "") })
        }
        v1.get("/vms/{name}/migration") { _, context in
            JSONBody(try await VMRoutes.call { try await manager.show(context.parameters.get("name") ?? "") })
        }
        v1.post("/nodes/{name}/drain") { request, context in
            let req = try await VMRoutes.decodeOptional(DrainRequest.self, request, context) ?? DrainRequest()
            return JSONBody(try await VMRoutes.call { try await manager.drain(context.parameters.get("name") ?? "", force: req.force ?? false) })
        }
        v1.post("/nodes/{name}/resume") { _, context in
            JSONBody(try await VMRoutes.call { try await manager.resume(context.parameters.get("name") ?? "") })
        }
    }
}

import Foundation
import Hummingbird
import VigilAgent
import VigilCore
import VigilStore

/// `/v1/vms…`: create, list, show, start, stop, kill, delete.
enum VMRoutes {
    static func add(to v1: RouterGroup<BasicRequestContext>, manager: VMManager) {
        v1.get("/vms") { _, _ in
            JSONBody(try await call { try await manager.list() })
        }
        v1.post("/vms") { request, context in
            let req = try await decode(CreateVMRequest.self, request, context)
            var r = JSONBody(try await call { try await manager.create(req) }).response()
            r.status = .created
            return r
        }
        v1.get("/vms/{name}") { _, context in
            JSONBody(try await call { try await manager.show(context.parameters.get("name") ?? "") })
        }
        v1.post("/vms/{name}/start") { _, context in
            JSONBody(try await call { try await manager.setPower(context.parameters.get("name") ?? "", .running) })
        }
        v1.post("/vms/{name}/stop") { request, context in
            let req = try await decodeOptional(StopVMRequest.self, request, context) ?? StopVMRequest()
            return JSONBody(try await call { try await manager.setPower(context.parameters.get("name") ?? "", .stopped, graceSeconds: req.graceSeconds) })
        }
        v1.post("/vms/{name}/kill") { _, context in
            JSONBody(try await call { try await manager.setPower(context.parameters.get("name") ?? "", .stopped, graceSeconds: 0) })
        }
        v1.delete("/vms/{name}") { _, context in
            try await call { try await manager.delete(context.parameters.get("name") ?? "") }
            return Response(status: .noContent)
        }
    }

    static func decode<T: Decodable>(_ type: T.Type, _ request: Request, _ context: BasicRequestContext) async throws -> T {
        let body = try await request.body.collect(upTo: 1 << 20)
        do { return try JSONDecoder().decode(T.self, from: Data(buffer: body)) }
        catch { throw APIError.badRequest("malformed \(T.self) body: \(describe(error))") }
    }

    static func decodeOptional<T: Decodable>(_ type: T.Type, _ request: Request, _ context: BasicRequestContext) async throws -> T? {
        let body = try await request.body.collect(upTo: 1 << 20)
        if body.readableBytes == 0 { return nil }
        do { return try JSONDecoder().decode(T.self, from: Data(buffer: body)) }
        catch { throw APIError.badRequest("malformed \(T.self) body: \(describe(error))") }
    }

    static func describe(_ error: Error) -> String {
        switch error as? DecodingError {
        case let .keyNotFound(k, _)?: return "missing field '\(k.stringValue)'"
        case let .typeMismatch(_, c)?: return "wrong type at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        case let .valueNotFound(_, c)?: return "missing value at '\(c.codingPath.map(\.stringValue).joined(separator: "."))'"
        case let .dataCorrupted(c)?: return c.codingPath.isEmpty ? "not valid JSON" : "bad value at '\(c.codingPath.map(\.stringValue).joined(separator: "."))': \(c.debugDescription)"
        default: return "\(error)"
        }
    }

    /// Manager refusals and store failures as API errors.
    static func call<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await VigilRoutes.storeCall(body)
        } catch let r as VMManager.Refusal {
            switch r.kind {
            case .invalid: throw APIError.badRequest(r.message)
            case .notFound: throw APIError.notFound(r.message)
            case .conflict: throw APIError.conflict(r.message)
            }
        }
    }
}

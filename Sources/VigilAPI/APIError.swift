import Foundation
import Hummingbird
import VigilCore

/// An API failure with a stable machine-readable code. Every error leaves the API
/// as `{"error": {"code": "...", "message": "..."}}` (see `ErrorShapeMiddleware`).
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String

    public static func badRequest(_ m: String) -> APIError { APIError(status: .badRequest, code: "bad_request", message: m) }
    public static func unauthorized(_ m: String) -> APIError { APIError(status: .unauthorized, code: "unauthorized", message: m) }
    public static func notFound(_ m: String) -> APIError { APIError(status: .notFound, code: "not_found", message: m) }
    public static func conflict(_ m: String) -> APIError { APIError(status: .conflict, code: "conflict", message: m) }
    public static func noQuorum(_ m: String) -> APIError { APIError(status: .serviceUnavailable, code: "no_quorum", message: m) }
    public static func internalError(_ m: String) -> APIError { APIError(status: .internalServerError, code: "internal", message: m) }
}

/// Turns every error into the stable JSON shape; unknown routes become `not_found`.
struct ErrorShapeMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            return Self.render(e)
        } catch let e as HTTPError {
            let code: String
            switch e.status {
            case .notFound: code = "not_found"
            case .badRequest: code = "bad_request"
            case .unauthorized: code = "unauthorized"
            case .methodNotAllowed: code = "method_not_allowed"
            case .contentTooLarge: code = "too_large"
            default: code = e.status.code >= 500 ? "internal" : "bad_request"
            }
            let message = e.body ?? (e.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : e.status.reasonPhrase)
            return Self.render(APIError(status: e.status, code: code, message: message))
        } catch let e as DecodingError {
            return Self.render(.badRequest("malformed request body: \(e)"))
        } catch {
            context.logger.error("request failed", metadata: ["error": "\(error)", "path": "\(request.uri.path)"])
            return Self.render(.internalError("\(error)"))
        }
    }

    static func render(_ e: APIError) -> Response {
        var r = JSONBody(APIErrorBody(code: e.code, message: e.message)).response()
        r.status = e.status
        if e.status == .unauthorized { r.headers[.wwwAuthenticate] = "Bearer" }
        return r
    }
}

/// Refuses requests without `Authorization: Bearer <token>` (401).
struct BearerAuthMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: String
    /// Paths served without a token.
    var openPaths: Set<String> = []
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        if openPaths.contains(request.uri.path) { return try await next(request, context) }
        guard let header = request.headers[.authorization] else {
            throw APIError.unauthorized("missing bearer token: send 'Authorization: Bearer <token>' (the token is in the cluster config)")
        }
        let prefix = "Bearer "
        guard header.hasPrefix(prefix), constantTimeEqual(String(header.dropFirst(prefix.count)), token) else {
            throw APIError.unauthorized("wrong bearer token")
        }
        return try await next(request, context)
    }
}

/// Compare without leaking where the first difference is.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
    return diff == 0
}

/// Any Encodable as a JSON response.
struct JSONBody<T: Encodable>: ResponseGenerator {
    let value: T
    init(_ value: T) { self.value = value }

    func response(from request: Request, context: some RequestContext) throws -> Response { response() }

    func response() -> Response {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data = (try? enc.encode(value)) ?? Data(#"{"error":{"code":"internal","message":"encoding failed"}}"#.utf8)
        var headers = HTTPFields()
        headers[.contentType] = "application/json"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

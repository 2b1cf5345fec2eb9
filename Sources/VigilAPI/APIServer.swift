import Hummingbird
import Logging
import VigilAgent

/// The API as a service of the agent's ServiceGroup.
public enum APIServer {
    public static func make(queries: ClusterQueries, host: String, port: Int, logger: Logger) -> some ApplicationProtocol {
        let router = VigilRoutes.buildRouter(queries: queries, token: queries.config.token)
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "vigild"),
                           logger: logger)
    }
}

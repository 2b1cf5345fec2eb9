import Logging
import ServiceLifecycle
import VigilCore
import VigilStore

/// Hands every change of `nodes/` (the cluster's registrations) to `onChange`, e.g. to
/// the heartbeat mesh, which needs each peer's address on every network.
public struct NodeDirectoryService: Service {
    let etcd: EtcdClient
    let keys: KeySpace
    let onChange: @Sendable ([NodeRecord]) -> Void
    let logger: Logger

    public init(etcd: EtcdClient, keys: KeySpace, logger: Logger, onChange: @escaping @Sendable ([NodeRecord]) -> Void) {
        self.etcd = etcd; self.keys = keys; self.logger = logger; self.onChange = onChange
    }

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            await StoreWakeup.watching(etcd, prefix: keys.nodesPrefix) { wakeup in
                var last: [NodeRecord]?
                while !Task.isCancelled {
                    if let nodes = try? await etcd.getPrefix(keys.nodesPrefix).kvs.compactMap({ try? $0.decode(NodeRecord.self) }),
                       nodes != last {
                        logger.debug("node directory changed", metadata: ["vigil.nodes": "\(nodes.map(\.name.rawValue))"])
                        onChange(nodes)
                        last = nodes
                    }
                    await wakeup.wait(maxWait: .seconds(2))
                }
            }
        }
    }
}

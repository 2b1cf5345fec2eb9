import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle
import VigilAgent
import VigilAPI
import VigilCore
import VigilHeartbeat
import VigilQEMU
import VigilStore

/// `vigild`: the node agent. Its parts run as services of one ServiceGroup, in
/// dependency order; SIGTERM/SIGINT shut them down in reverse (the API stops, the
/// leader steps down, the session revokes its lease).
@main
struct Vigild: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vigild", abstract: "The Vigil node agent.")

    @Option(help: "Agent config file (YAML).") var config: String
    @Option(help: "Override the node name.") var node: String?
    @Option(help: "Override the API port.") var apiPort: Int?
    @Option(help: "Override the lease TTL in seconds.") var leaseTtl: Double?
    @Option(help: "Override the state directory.") var stateDir: String?
    @Option(help: "Log level: trace, debug, info, notice, warning, error.") var logLevel: String = "info"
    @Flag(help: "Check the config and exit.") var checkConfig = false

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("--log-level: '\(logLevel)' is not one of trace, debug, info, notice, warning, error")
        }
        var cfg: AgentConfig
        do {
            cfg = try AgentConfig.load(path: config, overrides: .init(node: node, apiPort: apiPort, leaseTTL: leaseTtl, stateDir: stateDir))
        } catch let e as ConfigError {
            FileHandle.standardError.write(Data("vigild: refusing to start: \(e)\n".utf8))
            throw ExitCode(78)  // EX_CONFIG
        }
        if checkConfig { print("config OK: node \(cfg.node) in cluster \(cfg.cluster)"); return }
        do { try FileManager.default.createDirectory(atPath: cfg.stateDir, withIntermediateDirectories: true) }
        catch {
            FileHandle.standardError.write(Data("vigild: refusing to start: config field 'stateDir': cannot create '\(cfg.stateDir)': \(error)\n".utf8))
            throw ExitCode(78)
        }

        let qemu: QEMUBinary
        do { qemu = try QEMUBinary.locate(name: cfg.qemuBinary) }
        catch {
            FileHandle.standardError.write(Data("vigild: refusing to start: config field 'qemu.binary': \(error) (install qemu-system-x86, or set qemu.binary)\n".utf8))
            throw ExitCode(69)  // EX_UNAVAILABLE
        }
        let accel: QEMUCommand.Accelerator
        switch cfg.accel {
        case "kvm": accel = .kvm; cfg.accelDescription = "kvm (forced by config)"
        case "tcg": accel = .tcg; cfg.accelDescription = "tcg (forced by config)"
        default:
            switch await AcceleratorChoice.probe(stateDir: cfg.stateDir, binary: qemu) {
            case .kvm: accel = .kvm; cfg.accelDescription = "kvm"
            case let .tcg(reason): accel = .tcg; cfg.accelDescription = "tcg: \(reason)"
            }
        }
        let nodeName = cfg.node.rawValue
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            h.metadata = ["vigil.self": "\(nodeName)"]
            return h
        }
        let logger = Logger(label: "vigild")
        let etcd = try EtcdClient(endpoints: cfg.etcdEndpoints, logger: Logger(label: "vigil.etcd"))
        let state = NodeState(node: cfg.node, fenceAfter: FencePolicy(leaseTTL: cfg.leaseTTL).fenceAfter)
        let events = EventLog(etcd: etcd, keys: cfg.keys, reporter: cfg.node)
        let context = AgentContext(config: cfg, etcd: etcd, state: state, events: events)
        let queries = ClusterQueries(context: context)

        // Heartbeats on every cluster network; peers' addresses come from nodes/.
        let (peers, peerFeed) = AsyncStream.makeStream(of: [NodeRecord].self, bufferingPolicy: .bufferingNewest(1))
        let heartbeat = HeartbeatService(
            configuration: HeartbeatConfiguration(
                cluster: cfg.cluster, node: cfg.node, key: try HeartbeatKey(hex: cfg.clusterKey), clusterAddress: cfg.clusterAddress,
                networks: cfg.networks, port: cfg.heartbeatPort, interval: cfg.heartbeatInterval, missThreshold: cfg.heartbeatMissThreshold),
            peers: peers, routeTable: IPRouteTable(), logger: Logger(label: "vigil.heartbeat"))
        let directory = NodeDirectoryService(etcd: etcd, keys: cfg.keys, logger: logger) { peerFeed.yield($0) }
        let session = StoreSessionService(context: context, logger: logger) {
            let snap = heartbeat.snapshot
            return Dictionary(uniqueKeysWithValues: snap.peers.map { p in
                (p.name.rawValue, Dictionary(uniqueKeysWithValues: p.links.map { ($0.network, $0.up) }))
            })
        }
        let election = LeaderElectionService(context: context, logger: logger)
        let runtime = HostRuntimeService(context: context, accel: accel, binary: qemu,
                                         logger: Logger(label: "vigil.runtime"))
        let migration = MigrationService(context: context, runtime: runtime, logger: Logger(label: "vigil.migration"))
        let migrationLeader = MigrationLeaderService(context: context, logger: Logger(label: "vigil.migration.leader"))
        let api = APIServer.make(queries: queries, host: cfg.clusterAddress, port: cfg.apiPort, logger: Logger(label: "vigil.api"))

        logger.info("starting", metadata: ["vigil.cluster": "\(cfg.cluster)", "vigil.api": "\(cfg.clusterAddress):\(cfg.apiPort)",
                                           "vigil.etcd": "\(cfg.etcdEndpoints.joined(separator: ","))", "vigil.accel": "\(cfg.accelDescription ?? "?")"])
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: heartbeat),
                .init(service: directory),
                .init(service: session),
                .init(service: election),
                .init(service: runtime),
                .init(service: migration),
                .init(service: migrationLeader),
                .init(service: api),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
        logger.info("stopped")
    }
}

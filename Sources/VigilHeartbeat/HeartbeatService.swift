import Foundation
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import VigilCore

/// The heartbeat mesh of one node: one UDP socket per cluster network on
/// (that network's address, `port`), a heartbeat to every peer's address on every shared
/// network each interval, link states from what arrives, and each peer's host route
/// steered onto a healthy network (NetFT). Decisions are `HeartbeatStateMachine`'s; this
/// shell only binds, sends, receives, keeps counters and runs `RouteTable`.
///
/// Feed it the cluster's `NodeRecord`s (its own is ignored) through `peers`; read
/// `snapshot` for status and the API. `run()` ends on graceful shutdown or cancellation
/// and closes its sockets; it changes no route on the way out. It throws at start when a
/// cluster network's address cannot be bound; a socket closed later is bound again.
///
///     let (peers, feed) = AsyncStream.makeStream(of: [NodeRecord].self)
///     let heartbeat = HeartbeatService(
///         configuration: HeartbeatConfiguration(cluster: cluster, node: node, key: try HeartbeatKey(hex: clusterKey),
///                                               clusterAddress: clusterAddress, networks: networks,
///                                               port: 7481, interval: .milliseconds(250), missThreshold: 4),
///         peers: peers, routeTable: IPRouteTable(), logger: logger)
///     // on every change of etcd's nodes/: feed.yield(allNodeRecords)
///     // ServiceGroup(services: [..., heartbeat, ...]); the API reads heartbeat.snapshot
public final class HeartbeatService: Service, Sendable {
    /// Makes and binds the UDP socket of one network; returns its descriptor. For tests
    /// that bind inside another network namespace. Default: NIO binds (address, port).
    public typealias SocketFactory = @Sendable (_ network: NetworkAttachment, _ port: Int) throws -> CInt

    private struct State {
        var machine: HeartbeatStateMachine
        var records: [NodeName: NodeRecord] = [:]
        var networks: [String: HeartbeatSnapshot.Network]
        var routeFailures: UInt64 = 0
    }

    public let configuration: HeartbeatConfiguration
    private let state: Mutex<State>
    private let channels = Mutex<[String: any Channel]>([:])
    private let codec: HeartbeatCodec
    private let peers: AsyncStream<[NodeRecord]>
    private let routeTable: any RouteTable
    private let group: any EventLoopGroup
    private let socketFactory: SocketFactory?
    private let logger: Logger
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    private let incarnation: UInt64
    private let routeRequests: AsyncStream<RouteRequest>
    private let routeContinuation: AsyncStream<RouteRequest>.Continuation

    public init(configuration: HeartbeatConfiguration, peers: AsyncStream<[NodeRecord]>, routeTable: any RouteTable,
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                socketFactory: SocketFactory? = nil, logger: Logger) {
        precondition(!configuration.clusterNetworks.isEmpty, "heartbeat needs at least one network with role cluster")
        self.configuration = configuration
        self.peers = peers
        self.routeTable = routeTable
        self.group = eventLoopGroup
        self.socketFactory = socketFactory
        self.logger = logger
        self.codec = HeartbeatCodec(key: configuration.key, cluster: configuration.cluster)
        self.origin = clock.now
        self.incarnation = UInt64(max(0, Date().timeIntervalSince1970 * 1_000_000_000))
        let networks = configuration.clusterNetworks.map {
            ($0.name, HeartbeatSnapshot.Network(name: $0.name, address: $0.address, bound: false))
        }
        self.state = Mutex(State(machine: HeartbeatStateMachine(configuration: configuration.stateMachine),
                                 networks: Dictionary(uniqueKeysWithValues: networks)))
        (routeRequests, routeContinuation) = AsyncStream.makeStream(of: RouteRequest.self)
    }

    /// Link states, routes and counters now.
    public var snapshot: HeartbeatSnapshot {
        let now = elapsed()
        let order = configuration.clusterNetworks.map(\.name)
        return state.withLock { s in
            let peers = s.machine.peers.keys.sorted().map { name in
                let peer = s.machine.peers[name]!
                let links = order.compactMap { net in
                    peer.links[net].map {
                        HeartbeatSnapshot.Link(network: net, up: $0.up, lastSeenAgo: $0.lastSeen.map { now - $0 },
                                               accepted: $0.accepted, ignored: $0.ignored, wentDown: $0.wentDown)
                    }
                }
                return HeartbeatSnapshot.Peer(name: name, route: peer.route, routeChanges: peer.routeChanges, links: links)
            }
            return HeartbeatSnapshot(node: configuration.node, peers: peers,
                                     networks: order.map { s.networks[$0]! }, routeFailures: s.routeFailures)
        }
    }

    public func run() async throws {
        defer { closeChannels() }
        var bound: [(NetworkAttachment, any Channel)] = []
        for network in configuration.clusterNetworks {
            let channel = try await bind(network)
            install(channel, for: network)
            bound.append((network, channel))
        }
        logger.info("heartbeat mesh started", metadata: [
            "vigil.node": "\(configuration.node)",
            "vigil.networks": "\(configuration.clusterNetworks.map(\.name).joined(separator: ","))",
            "vigil.interval": "\(configuration.interval)",
        ])
        let supervised = bound
        await cancelWhenGracefulShutdown {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.followPeers() }
                group.addTask { await self.steerRoutes() }
                group.addTask { await self.tickUntilCancelled() }
                for (network, channel) in supervised {
                    group.addTask { await self.keepBound(network, first: channel) }
                }
                await group.waitForAll()
            }
        }
        logger.info("heartbeat mesh stopped", metadata: ["vigil.node": "\(configuration.node)"])
    }

    // MARK: - Sockets

    private func bind(_ network: NetworkAttachment) async throws -> any Channel {
        let bootstrap = DatagramBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(HeartbeatInboundHandler(
                        network: network.name,
                        onDatagram: { [self] in self.accept(network: $0, datagram: $1) },
                        onError: { [self] net, error in
                            self.logger.debug("heartbeat socket error", metadata: ["vigil.network": "\(net)", "error": "\(error)"])
                        }))
                }
            }
        do {
            if let socketFactory {
                return try await bootstrap.withBoundSocket(try socketFactory(network, configuration.port)).get()
            }
            return try await bootstrap.bind(host: network.address, port: configuration.port).get()
        } catch {
            throw HeartbeatServiceError(description:
                "cannot bind heartbeat socket on \(network.name) (\(network.address):\(configuration.port)): \(error); check the network's address in the config")
        }
    }

    private func install(_ channel: any Channel, for network: NetworkAttachment) {
        channels.withLock { $0[network.name] = channel }
        state.withLock { $0.networks[network.name]!.bound = true }
    }

    /// NIO closes a UDP channel on most send errors (e.g. `ENETUNREACH` while the network
    /// has no carrier and its routes are ignored); bind it again every interval until it works.
    private func keepBound(_ network: NetworkAttachment, first: any Channel) async {
        var channel = first
        while !Task.isCancelled {
            let opened = clock.now
            await withTaskCancellationHandler {
                _ = try? await channel.closeFuture.get()
            } onCancel: { [channel] in
                channel.close(promise: nil)
            }
            if Task.isCancelled { return }
            channels.withLock { if $0[network.name] === channel { $0[network.name] = nil } }
            let restarts = state.withLock { s in
                s.networks[network.name]!.bound = false
                s.networks[network.name]!.socketRestarts += 1
                return s.networks[network.name]!.socketRestarts
            }
            // Warn once per outage: not again while the socket keeps closing right away.
            let metadata: Logger.Metadata = ["vigil.node": "\(configuration.node)", "vigil.network": "\(network.name)"]
            if restarts == 1 || opened.duration(to: clock.now) > configuration.interval * 10 {
                logger.warning("heartbeat socket closed; binding it again every interval", metadata: metadata)
            }
            while !Task.isCancelled {
                do { try await clock.sleep(for: configuration.interval) } catch { return }
                guard let next = try? await bind(network) else { continue }
                if Task.isCancelled { next.close(promise: nil); return }
                channel = next
                install(next, for: network)
                logger.debug("heartbeat socket bound again", metadata: metadata)
                break
            }
        }
    }

    private func closeChannels() {
        let all = channels.withLock { c in defer { c = [:] }; return Array(c.values) }
        for channel in all { channel.close(promise: nil) }
        routeContinuation.finish()
    }

    // MARK: - Loops

    private func followPeers() async {
        for await records in peers {
            let others = records.filter { $0.name != configuration.node }
            let membership = Dictionary(others.map { record in
                (record.name, Set(record.networks.filter { $0.role == .cluster }.map(\.name)))
            }, uniquingKeysWith: { first, _ in first })
            state.withLock { s in
                let previous = s.records
                s.records = Dictionary(others.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
                _ = s.machine.handle(.peers(membership))
                // A routed peer whose addresses changed gets its route again, with the new ones.
                for (name, record) in s.records where previous[name].map({ $0 != record }) ?? false {
                    if let network = s.machine.peers[name]?.route { steer(name, via: network, in: s) }
                }
            }
        }
    }

    private func tickUntilCancelled() async {
        while !Task.isCancelled {
            let now = elapsed()
            let (effects, deadline) = state.withLock { s in (handle(.tick(now: now), in: &s), s.machine.nextDeadline) }
            perform(effects)
            let wait = min(max((deadline ?? now + configuration.interval) - elapsed(), .milliseconds(1)), configuration.interval)
            do { try await clock.sleep(for: wait, tolerance: .milliseconds(1)) } catch { return }
        }
    }

    private func steerRoutes() async {
        for await request in routeRequests {
            let started = clock.now
            do {
                try await routeTable.steer(request)
                logger.debug("route steered", metadata: [
                    "vigil.peer": "\(request.peer)", "vigil.network": "\(request.network)",
                    "vigil.route": "\(request)", "vigil.took": "\(started.duration(to: clock.now))",
                ])
            } catch {
                state.withLock { $0.routeFailures += 1 }
                logger.error("route steering failed", metadata: [
                    "vigil.peer": "\(request.peer)", "vigil.network": "\(request.network)", "error": "\(error)",
                ])
            }
        }
    }

    // MARK: - Receiving

    private func accept(network: String, datagram: ByteBuffer) {
        let now = elapsed()
        let message: HeartbeatMessage
        do throws(HeartbeatDecodeError) {
            message = try codec.decode(datagram)
        } catch {
            state.withLock { s in
                if error == .authenticationFailed { s.networks[network]!.authenticationFailures += 1 } else { s.networks[network]!.rejected += 1 }
            }
            logger.debug("heartbeat dropped", metadata: ["vigil.network": "\(network)", "reason": "\(error)"])
            return
        }
        let effects: [HeartbeatStateMachine.Effect] = state.withLock { s in
            s.networks[network]!.received += 1
            guard message.network == network, s.machine.peers[message.sender]?.links[network] != nil else {
                s.networks[network]!.rejected += 1
                return []
            }
            return handle(.received(peer: message.sender, network: network, sequence: message.sequence, now: now), in: &s)
        }
        perform(effects)
    }

    /// Runs one event through the state machine, under the lock. Route requests are queued
    /// here, still under the lock, so the route task sees them in the machine's order even
    /// when events arrive on several threads.
    private func handle(_ event: HeartbeatStateMachine.Event, in s: inout State) -> [HeartbeatStateMachine.Effect] {
        let effects = s.machine.handle(event)
        for case let .steerRoute(peer, network) in effects { steer(peer, via: network, in: s) }
        return effects
    }

    private func steer(_ peer: NodeName, via network: String, in s: State) {
        guard let record = s.records[peer],
              let theirs = record.networks.first(where: { $0.name == network }),
              let ours = configuration.clusterNetworks.first(where: { $0.name == network }) else { return }
        routeContinuation.yield(RouteRequest(peer: peer, network: network, destination: record.clusterAddress,
                                             gateway: theirs.address, localAddress: ours.address,
                                             source: configuration.clusterAddress))
    }

    // MARK: - Effects

    private func perform(_ effects: [HeartbeatStateMachine.Effect]) {
        for effect in effects {
            switch effect {
            case let .send(peer, network, sequence):
                send(to: peer, on: network, sequence: sequence)
            case let .linkChanged(peer, network, up):
                let metadata: Logger.Metadata = [
                    "vigil.node": "\(configuration.node)", "vigil.peer": "\(peer)", "vigil.network": "\(network)",
                ]
                if up {
                    logger.info("heartbeat link up", metadata: metadata)
                } else {
                    logger.warning("heartbeat link down", metadata: metadata.merging([
                        "reason": "no heartbeat for \(configuration.missThreshold) intervals of \(configuration.interval)",
                    ]) { $1 })
                }
            case let .steerRoute(peer, network):
                // Queued already (see `handle(_:in:)`); the route task logs the outcome.
                logger.info("steering route", metadata: [
                    "vigil.node": "\(configuration.node)", "vigil.peer": "\(peer)", "vigil.network": "\(network)",
                    "reason": "\(network) is the best network with heartbeats from the peer",
                ])
            }
        }
    }

    private func send(to peer: NodeName, on network: String, sequence: UInt64) {
        guard let channel = channels.withLock({ $0[network] }),
              let address = state.withLock({ $0.records[peer]?.networks.first { $0.name == network }?.address }),
              let remote = try? SocketAddress(ipAddress: address, port: configuration.port) else { return }
        let message = HeartbeatMessage(cluster: configuration.cluster, sender: configuration.node, network: network,
                                       sequence: HeartbeatSequence(incarnation: incarnation, number: sequence),
                                       sentAt: UInt64(elapsed().nanoseconds))
        let envelope = AddressedEnvelope(remoteAddress: remote, data: codec.encode(message, allocator: channel.allocator))
        let promise = channel.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { [self] result in
            state.withLock { s in
                switch result {
                case .success: s.networks[network]!.sent += 1
                case .failure: s.networks[network]!.sendFailures += 1
                }
            }
        }
        channel.writeAndFlush(envelope, promise: promise)
    }

    private func elapsed() -> Duration { origin.duration(to: clock.now) }
}

public struct HeartbeatServiceError: Error, CustomStringConvertible {
    public var description: String
}

extension Duration {
    var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }
}

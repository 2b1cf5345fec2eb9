import Logging
import NIOCore
import NIOPosix

/// Vigil's QMP client: one unix-socket connection to one QEMU.
///
/// Built on SwiftNIO rather than plain sockets and a reader task: the event loop is
/// the reader (no thread or `Task` per VM to own and cancel), `channelInactive` is the
/// single place where "QEMU died" is noticed, replies and events are handled on one
/// thread by `QMPChannelHandler` without locks, and timeouts are timers on that same
/// event loop. The protocol logic itself (`QMPMessageDecoder`, `QMPConnectionState`)
/// has no NIO in it.
///
/// Commands may be issued concurrently; each carries an id and its reply is matched
/// by id. Events arrive on `events` (one consumer; the newest 1024 are kept for a slow
/// one), which finishes when the connection closes. After the connection closed every
/// command throws `.connectionClosed`.
///
/// QEMU serves one QMP client per socket at a time: a second `connect` to the same
/// socket waits (and times out) until the first client closes.
public final class QMPClient: Sendable {
    /// QEMU's greeting (its version).
    public let greeting: QMPGreeting
    /// Asynchronous events, in arrival order. Finishes when the connection closes.
    public let events: AsyncStream<QMPEvent>
    public let socketPath: String
    /// How long a command waits for its reply unless `execute` says otherwise (nil: forever).
    public let commandTimeout: Duration?
    private let channel: Channel
    private let logger: Logger

    private init(
        greeting: QMPGreeting, events: AsyncStream<QMPEvent>, socketPath: String, commandTimeout: Duration?,
        channel: Channel, logger: Logger
    ) {
        self.greeting = greeting
        self.commandTimeout = commandTimeout
        self.events = events
        self.socketPath = socketPath
        self.channel = channel
        self.logger = logger
    }

    deinit {
        channel.close(promise: nil)
    }

    /// Connects, waits for the greeting and negotiates capabilities (`qmp_capabilities`).
    ///
    /// - Parameters:
    ///   - timeout: for connecting, the greeting and `qmp_capabilities` together.
    ///   - commandTimeout: how long any later command may wait for its reply (nil: forever).
    /// - Throws: `QMPError` (`.connectFailed` when nothing listens, `.timedOut`, `.connectionClosed`).
    public static func connect(
        socketPath: String,
        timeout: Duration = .seconds(10),
        commandTimeout: Duration? = .seconds(60),
        eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        logger: Logger
    ) async throws -> QMPClient {
        let eventLoop = eventLoopGroup.next()
        let deadline = ContinuousClock.now + timeout
        let greetingPromise = eventLoop.makePromise(of: QMPGreeting.self)
        let (events, continuation) = AsyncStream.makeStream(of: QMPEvent.self, bufferingPolicy: .bufferingNewest(1024))
        let channel: Channel
        do {
            channel = try await ClientBootstrap(group: eventLoop)
                .connectTimeout(TimeAmount(timeout))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            QMPChannelHandler(greeting: greetingPromise, events: continuation))
                    }
                }
                .connect(unixDomainSocketPath: socketPath)
                .get()
        } catch {
            greetingPromise.fail(error)
            continuation.finish()
            throw QMPError(.connectFailed, "cannot connect to QMP socket \(socketPath): \(error)")
        }
        let greetingExpiry = eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            greetingPromise.fail(QMPError(.timedOut, "no QMP greeting on \(socketPath) within \(timeout) (another client connected?)"))
        }
        do {
            let greeting = try await greetingPromise.futureResult.get()
            let client = QMPClient(
                greeting: greeting, events: events, socketPath: socketPath, commandTimeout: commandTimeout,
                channel: channel, logger: logger)
            greetingExpiry.cancel()
            _ = try await client.execute("qmp_capabilities", timeout: max(deadline - ContinuousClock.now, .milliseconds(1)))
            logger.debug("QMP connected", metadata: ["vigil.qmp.socket": "\(socketPath)", "vigil.qemu.version": "\(greeting.version)"])
            return client
        } catch {
            greetingExpiry.cancel()
            try? await channel.close()
            throw error as? QMPError ?? QMPError(.connectionClosed, "\(error)")
        }
    }

    /// Runs one command and returns its `return` value.
    /// - Parameter timeout: overrides the connection's `commandTimeout` for this command.
    /// - Throws: `QMPError` `.commandFailed` with QEMU's class and description,
    ///   `.connectionClosed`, or `.timedOut`.
    @discardableResult
    public func execute(_ command: String, arguments: [String: QMPValue]? = nil, timeout: Duration? = nil) async throws -> QMPValue {
        let reply = channel.eventLoop.makePromise(of: QMPValue.self)
        if let timeout = timeout ?? commandTimeout {
            // A reply arriving later completes an already failed promise: ignored.
            let expiry = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
                reply.fail(QMPError(.timedOut, "no reply within \(timeout)", command: command))
            }
            reply.futureResult.whenComplete { _ in expiry.cancel() }
        }
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in
            reply.fail(error as? QMPError ?? QMPError(.connectionClosed, "QMP connection closed: \(error)", command: command))
        }
        channel.writeAndFlush(QMPRequest(command: command, arguments: arguments, reply: reply), promise: written)
        do {
            return try await reply.futureResult.get()
        } catch let error as QMPError {
            throw error
        } catch {
            throw QMPError(.connectionClosed, "\(error)", command: command)
        }
    }

    /// Whether the connection is still open.
    public var isConnected: Bool { channel.isActive }

    /// Closes the connection (QEMU keeps running). Idempotent.
    public func close() async {
        try? await channel.close()
    }

    /// Returns when the connection has closed, for whatever reason.
    public func waitUntilClosed() async {
        try? await channel.closeFuture.get()
    }
}

extension TimeAmount {
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        self = .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}

import NIOCore

/// A command on its way to QEMU, with the promise its reply completes.
struct QMPRequest: Sendable {
    var command: String
    var arguments: [String: QMPValue]?
    var reply: EventLoopPromise<QMPValue>
}

/// Runs a QMP connection on its event loop: decodes bytes, completes replies by id,
/// yields events, and when the channel goes inactive fails every pending command with
/// `.connectionClosed` and finishes the event stream.
///
/// Leaves alone: reconnecting (a QMP socket serves one client; the caller decides) and
/// the meaning of events (the caller reads the stream).
final class QMPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = QMPRequest
    typealias OutboundOut = ByteBuffer

    private var decoder = QMPMessageDecoder()
    private var state = QMPConnectionState<EventLoopPromise<QMPValue>>()
    private var timeouts: [Int64: Scheduled<Void>] = [:]
    private let greeting: EventLoopPromise<QMPGreeting>
    private let events: AsyncStream<QMPEvent>.Continuation
    private let commandTimeout: TimeAmount?

    init(greeting: EventLoopPromise<QMPGreeting>, events: AsyncStream<QMPEvent>.Continuation, commandTimeout: TimeAmount?) {
        self.greeting = greeting
        self.events = events
        self.commandTimeout = commandTimeout
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        decoder.append(buffer.readableBytesView)
        do {
            while let message = try decoder.next() {
                switch state.receive(message) {
                case .greeting(let g):
                    greeting.succeed(g)
                case .event(let event):
                    events.yield(event)
                case .complete(let promise, let result):
                    promise.completeWith(result.mapError { $0 as Error })
                case .protocolViolation(let error):
                    shutDown(context: context, error: error)
                    return
                }
            }
        } catch {
            shutDown(context: context, error: error)
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        switch state.send(request.command, arguments: request.arguments, token: request.reply) {
        case .fail(let error):
            request.reply.fail(error)
            promise?.fail(error)
        case .write(let bytes, let id):
            if let commandTimeout {
                let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
                timeouts[id] = context.eventLoop.scheduleTask(in: commandTimeout) {
                    loopBound.value.timedOut(id: id, after: commandTimeout)
                }
            }
            request.reply.futureResult.hop(to: context.eventLoop).whenComplete { [loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)] _ in
                loopBound.value.timeouts.removeValue(forKey: id)?.cancel()
            }
            context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: promise)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(QMPError(.connectionClosed, "QMP connection closed (QEMU exited, was killed, or the client closed it)"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        shutDown(context: context, error: QMPError(.connectionClosed, "QMP connection failed: \(error)"))
    }

    private func timedOut(id: Int64, after: TimeAmount) {
        guard let (promise, command) = state.abandon(id: id) else { return }
        let ms = after.nanoseconds / 1_000_000
        promise.fail(QMPError(.timedOut, "no reply within \(ms) ms", command: command))
    }

    private func shutDown(context: ChannelHandlerContext, error: QMPError) {
        finish(error)
        context.close(promise: nil)
    }

    private func finish(_ error: QMPError) {
        for (promise, failure) in state.close(with: error) { promise.fail(failure) }
        for (_, task) in timeouts { task.cancel() }
        timeouts.removeAll()
        greeting.fail(error)
        events.finish()
    }
}

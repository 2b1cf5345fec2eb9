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
/// Leaves alone: timeouts (the client fails a reply promise it stops waiting for; the
/// late reply still matches its id and is dropped), reconnecting (a QMP socket serves
/// one client; the caller decides) and the meaning of events (the caller reads them).
final class QMPChannelHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = QMPRequest
    typealias OutboundOut = ByteBuffer

    private var decoder = QMPMessageDecoder()
    private var state = QMPConnectionState<EventLoopPromise<QMPValue>>()
    private let greeting: EventLoopPromise<QMPGreeting>
    private let events: AsyncStream<QMPEvent>.Continuation

    init(greeting: EventLoopPromise<QMPGreeting>, events: AsyncStream<QMPEvent>.Continuation) {
        self.greeting = greeting
        self.events = events
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
        case .write(let bytes, _):
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

    private func shutDown(context: ChannelHandlerContext, error: QMPError) {
        finish(error)
        context.close(promise: nil)
    }

    private func finish(_ error: QMPError) {
        for (promise, failure) in state.close(with: error) { promise.fail(failure) }
        greeting.fail(error)
        events.finish()
    }
}

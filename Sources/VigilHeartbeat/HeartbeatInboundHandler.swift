import NIOCore

/// Hands every datagram of one network's socket to the service, and reports socket errors.
/// Leaves the channel open on errors (a UDP send or ICMP error must not stop the mesh).
final class HeartbeatInboundHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let network: String
    private let onDatagram: @Sendable (String, ByteBuffer) -> Void
    private let onError: @Sendable (String, any Error) -> Void

    init(network: String, onDatagram: @escaping @Sendable (String, ByteBuffer) -> Void,
         onError: @escaping @Sendable (String, any Error) -> Void) {
        self.network = network; self.onDatagram = onDatagram; self.onError = onError
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        onDatagram(network, unwrapInboundIn(data).data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        onError(network, error)
    }
}

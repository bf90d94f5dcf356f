import NIOCore
import PeerNet

/// Reads a peer connection, frames cut by PeerNet's ``FrameDecoder``: the 68-byte handshake,
/// then BEP 3's length-prefixed messages, each decoded by ``PeerWireCodec`` and handed to the
/// driver. Any error closes this connection only. Runs on the driver's event loop.
final class PeerChannelHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Role {
        /// We dialled `address` for this driver's torrent.
        case outgoing(SessionDriver, Endpoint)
        /// Someone dialled us; the torrent is found by the info-hash in their handshake.
        case incoming(PeerListener)
    }

    private let role: Role
    private var driver: SessionDriver?
    private var key: PeerKey?

    init(role: Role) {
        self.role = role
        if case .outgoing(let driver, _) = role { self.driver = driver }
    }

    /// The largest frame any torrent accepts: a 16 KiB block with headroom, or the bitfield of
    /// the most pieces a torrent may have (BEP 3). A torrent's own limit is checked per frame.
    static let frameLimit = max(1 << 17, ((1 << 21) + 7) / 8 + 16)

    /// Adds the framing and this handler to a new connection's pipeline (after PeerNet's guard),
    /// behind `encryption` (MSE/PE) when given.
    static func install(on channel: any Channel, role: Role, encryption: MSEHandler? = nil) throws {
        if let encryption { try channel.pipeline.syncOperations.addHandler(encryption) }
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(
                FrameDecoder(LengthPrefixedFormat(maxFrameLength: frameLimit, preamble: Handshake.length))))
        try channel.pipeline.syncOperations.addHandler(PeerChannelHandler(role: role))
    }

    func channelActive(context: ChannelHandlerContext) {
        if case .outgoing(let driver, _) = role {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: driver.handshakeBytes)), promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        do {
            if key == nil {
                try handshake(frame, context: context)
            } else if let driver, let key {
                try message(frame, driver: driver, key: key)
            }
        } catch {
            fail(context: context, error)
        }
    }

    private func handshake(_ frame: ByteBuffer, context: ChannelHandlerContext) throws {
        let handshake = try Handshake(decoding: frame.readableBytesView)
        let address = context.channel.remoteAddress.flatMap(Endpoint.init)
        switch role {
        case .outgoing(let driver, let dialled):
            key = driver.register(context.channel, address: dialled, outgoing: true, handshake: handshake)
        case .incoming(let listener):
            guard let driver = listener.driver(for: handshake.infoHash), let address else {
                throw PeerWireError.wrongInfoHash(handshake.infoHash)
            }
            self.driver = driver
            let reply = driver.handshakeBytes(replyingTo: handshake)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: reply)), promise: nil)
            key = driver.register(context.channel, address: address, outgoing: false, handshake: handshake)
        }
        ConnectionGuard.handshakeCompleted(context.channel)
    }

    private func message(_ frame: ByteBuffer, driver: SessionDriver, key: PeerKey) throws {
        switch try PeerWireCodec.decodeFrame(frame, maxLength: driver.maxFrameLength) {
        case .block(let piece, let offset, let data):
            // A slice of the socket's buffer goes to the storage, which copies it once, into
            // the piece buffer.
            driver.receivedBlock(piece: piece, offset: offset, data: data, from: key)
        case .message(let message):
            driver.received(message, from: key)
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if let key, context.channel.isWritable { driver?.writable(key) }
        context.fireChannelWritabilityChanged()
    }

    private func fail(context: ChannelHandlerContext, _ error: Error) {
        driver?.closed(context.channel.remoteAddress.flatMap(Endpoint.init), "\(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let key {
            driver?.disconnected(key)
        } else if case .outgoing(let driver, let address) = role {
            // Closed before the handshake: the dial failed, and the slot is free again.
            driver.connectFailed(address)
        }
        key = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(context: context, error)
    }
}

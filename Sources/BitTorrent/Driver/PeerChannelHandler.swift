import NIOCore
import PeerNet

/// Reads a peer connection: the 68-byte handshake, then length-prefixed frames bounded by the
/// driver's limit, each decoded and handed to the driver. Any error closes this connection
/// only. Runs on the driver's event loop.
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
    private var buffer: ByteBuffer?

    init(role: Role) {
        self.role = role
        if case .outgoing(let driver, _) = role { self.driver = driver }
    }

    private var admitted = false

    func channelActive(context: ChannelHandlerContext) {
        switch role {
        case .outgoing(let driver, _):
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: driver.handshakeBytes)), promise: nil)
        case .incoming(let listener):
            admitted = listener.admit()
            if !admitted {
                context.close(promise: nil)
                return
            }
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if buffer == nil {
            buffer = incoming
        } else {
            buffer?.writeBuffer(&incoming)
        }
        do {
            try process(context: context)
        } catch {
            fail(context: context, error)
        }
        if let readerIndex = buffer?.readerIndex, readerIndex > 1 << 16 { buffer?.discardReadBytes() }
    }

    private func process(context: ChannelHandlerContext) throws {
        guard var bytes = buffer else { return }
        defer { buffer = bytes }
        if key == nil {
            guard bytes.readableBytes >= Handshake.length, let raw = bytes.readBytes(length: Handshake.length)
            else {
                return
            }
            let handshake = try Handshake(decoding: raw)
            let address = context.channel.remoteAddress.flatMap(Endpoint.init)
            switch role {
            case .outgoing(let driver, let dialled):
                key = driver.register(context.channel, address: dialled, outgoing: true, handshake: handshake)
            case .incoming(let listener):
                guard let driver = listener.driver(for: handshake.infoHash), let address else {
                    throw PeerWireError.wrongInfoHash(handshake.infoHash)
                }
                self.driver = driver
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: driver.handshakeBytes)), promise: nil)
                key = driver.register(
                    context.channel, address: address, outgoing: false, handshake: handshake)
            }
        }
        guard let driver, let key else { return }
        let limit = driver.maxFrameLength
        while bytes.readableBytes >= 4, let length = bytes.getInteger(at: bytes.readerIndex, as: UInt32.self)
        {
            guard Int(length) <= limit else {
                throw PeerWireError.frameTooLong(length: Int(length), limit: limit)
            }
            guard bytes.readableBytes >= 4 + Int(length) else { break }
            bytes.moveReaderIndex(forwardBy: 4)
            let message: PeerMessage
            if length >= 9, bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) == 7,
                let piece = bytes.getInteger(at: bytes.readerIndex + 1, as: UInt32.self),
                let offset = bytes.getInteger(at: bytes.readerIndex + 5, as: UInt32.self)
            {
                // Blocks are most of the traffic: read the data straight out, one copy.
                bytes.moveReaderIndex(forwardBy: 9)
                guard let data = bytes.readBytes(length: Int(length) - 9) else { break }
                message = .piece(piece: Int(piece), offset: Int(offset), data: data)
            } else {
                guard let body = bytes.readBytes(length: Int(length)) else { break }
                message = try PeerWireCodec.decode(body[...])
            }
            driver.received(message, from: key)
            // The driver may have closed this connection while handling the message.
            guard context.channel.isActive else { return }
        }
    }

    private func fail(context: ChannelHandlerContext, _ error: Error) {
        driver?.log("closing \(context.channel.remoteAddress?.description ?? "peer"): \(error)")
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .incoming(let listener) = role, admitted { listener.release() }
        admitted = false
        if let key { driver?.disconnected(key) }
        key = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        fail(context: context, error)
    }
}

import NIOCore
import PeerCrypto

/// Who a user can talk to, by encryption (MSE/PE), as qBittorrent and Transmission offer it.
public enum EncryptionPolicy: String, Sendable, CaseIterable {
    /// Dial with MSE (RC4 preferred, plaintext offered), fall back to a plain connection with a
    /// peer whose MSE handshake failed; accept both. What qBittorrent and Transmission default to.
    case prefer
    /// MSE with RC4 only, both ways: peers that cannot encrypt are not reached.
    case require
    /// Dial in plaintext; accept both.
    case allow
    /// Plaintext only: incoming MSE is refused.
    case disable
}

/// Runs the MSE handshake at the front of a peer connection, then encrypts and decrypts the
/// stream with RC4 (or steps aside for plaintext). An incoming connection is told apart by its
/// first bytes: `\x13BitTorrent protocol` is a plain one. What the peer wire handler writes
/// before the handshake ends waits here, and the first of it (the BitTorrent handshake) goes as
/// the initial payload. Any handshake failure closes this connection alone.
final class MSEHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Role {
        case initiator(infoHash: InfoHash, methods: MSEMethods)
        /// `infoHashes`: every torrent served; `allowPlaintext`: a plain handshake may come.
        case responder(infoHashes: () -> [InfoHash], methods: MSEMethods, allowPlaintext: Bool)
    }

    private enum State {
        case start
        case initiating(MSEInitiator)
        case responding(MSEResponder)
        /// The peer sent the plain BitTorrent handshake: nothing to do any more.
        case plain
        case encrypted(encryptor: RC4?, decryptor: RC4?)
        case failed
    }

    private let role: Role
    private var state = State.start
    /// Writes held until the handshake is done, with their promises.
    private var held: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var received: [UInt8] = []
    /// Told when our MSE attempt failed before completing (to retry in plaintext).
    private let onFailure: (() -> Void)?

    init(role: Role, onFailure: (() -> Void)? = nil) {
        self.role = role
        self.onFailure = onFailure
    }

    func channelActive(context: ChannelHandlerContext) {
        if case .initiator(let infoHash, let methods) = role {
            var generator = SystemRandomNumberGenerator()
            // The BitTorrent handshake goes as the initial payload: it is written right after this.
            let initiator = MSEInitiator(
                infoHash: infoHash.bytes, provide: methods, initialPayload: [], using: &generator)
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: initiator.start())), promise: nil)
            state = .initiating(initiator)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        switch state {
        case .encrypted(let encryptor, var decryptor):
            if decryptor != nil {
                buffer.withUnsafeMutableReadableBytes { decryptor?.crypt($0) }
                state = .encrypted(encryptor: encryptor, decryptor: decryptor)
            }
            context.fireChannelRead(wrapInboundOut(buffer))
        case .plain:
            context.fireChannelRead(wrapInboundOut(buffer))
        case .failed:
            break
        case .start:
            guard case .responder(let infoHashes, let methods, let allowPlaintext) = role else { return }
            received += buffer.readableBytesView
            // A plain handshake starts with its protocol name (BEP 3); MSE with a random key.
            let name = Handshake.protocolName
            let prefix = received.prefix(name.count)
            if name.starts(with: prefix) {
                guard prefix.count == name.count else { return }
                guard allowPlaintext else {
                    return fail(context, "a plain connection, and encryption is required")
                }
                state = .plain
                flushHeld(context, encryptor: nil)
                let bytes = received
                received = []
                context.fireChannelRead(wrapInboundOut(ByteBuffer(bytes: bytes)))
                return
            }
            guard !methods.isEmpty else {
                return fail(context, "an encrypted connection, and encryption is off")
            }
            var generator = SystemRandomNumberGenerator()
            let responder = MSEResponder(
                infoHashes: infoHashes().map(\.bytes), allow: methods, prefer: .rc4, using: &generator)
            state = .responding(responder)
            let bytes = received
            received = []
            feed(context, bytes)
        case .initiating, .responding:
            feed(context, Array(buffer.readableBytesView))
        }
    }

    private func feed(_ context: ChannelHandlerContext, _ bytes: [UInt8]) {
        let step: MSEStep
        do {
            switch state {
            case .initiating(var initiator):
                // IA: the BitTorrent handshake, once the peer's key is here.
                step = try initiator.receive(bytes)
                state = .initiating(initiator)
            case .responding(var responder):
                step = try responder.receive(bytes)
                state = .responding(responder)
            default:
                return
            }
        } catch {
            return fail(context, "\(error)")
        }
        if !step.output.isEmpty {
            context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: step.output)), promise: nil)
        }
        guard let result = step.result else { return }
        state = .encrypted(encryptor: result.encryptor, decryptor: result.decryptor)
        flushHeld(context, encryptor: result.encryptor)
        if !result.payload.isEmpty {
            context.fireChannelRead(wrapInboundOut(ByteBuffer(bytes: result.payload)))
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var buffer = unwrapOutboundIn(data)
        switch state {
        case .encrypted(var encryptor, let decryptor):
            if encryptor != nil {
                buffer.withUnsafeMutableReadableBytes { encryptor?.crypt($0) }
                state = .encrypted(encryptor: encryptor, decryptor: decryptor)
            }
            context.write(wrapOutboundOut(buffer), promise: promise)
        case .plain:
            context.write(wrapOutboundOut(buffer), promise: promise)
        case .failed:
            promise?.fail(ChannelError.ioOnClosedChannel)
        case .start, .initiating, .responding:
            held.append((buffer, promise))
        }
    }

    func flush(context: ChannelHandlerContext) {
        switch state {
        case .encrypted, .plain: context.flush()
        default: break
        }
    }

    private func flushHeld(_ context: ChannelHandlerContext, encryptor: RC4?) {
        let writes = held
        held = []
        for (buffer, promise) in writes {
            write(context: context, data: wrapOutboundOut(buffer), promise: promise)
        }
        if !writes.isEmpty { context.flush() }
    }

    private func fail(_ context: ChannelHandlerContext, _ reason: String) {
        state = .failed
        for (_, promise) in held { promise?.fail(ChannelError.ioOnClosedChannel) }
        held = []
        context.fireErrorCaught(PeerWireError.encryption(reason))
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .initiating: onFailure?()
        default: break
        }
        for (_, promise) in held { promise?.fail(ChannelError.ioOnClosedChannel) }
        held = []
        context.fireChannelInactive()
    }
}

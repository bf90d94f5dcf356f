import NIOCore
import NIOPosix
import PeerNet

/// The node on the network: SwiftNIO TCP listener and dialer around ``NodeCore``. Everything the
/// core touches runs on the node's one event loop, so the chain, mempool and peers need no locks.
public final class BitcoinNode: @unchecked Sendable {
    public let parameters: ChainParameters
    let loop: any EventLoop
    let core: NodeCore
    var channels: [Int: any Channel] = [:]
    var nextPeer = 0
    var server: (any Channel)?
    /// Called on the event loop after each block that moved the tip (for miners to restart).
    public var onTipChange: (@Sendable () -> Void)?

    /// A node on one loop of `group` (the process's shared group by default).
    public init(
        parameters: ChainParameters, store: any ChainStore, clock: @escaping () -> UInt32,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws {
        self.parameters = parameters
        loop = group.next()
        var random = SystemRandomNumberGenerator()
        core = NodeCore(
            chain: try ChainState(parameters: parameters, store: store), nonce: random.next(), clock: clock)
    }

    /// Listens on `endpoint` (port 0 for any); returns the port.
    public func listen(on endpoint: Endpoint) async throws -> Int {
        let bootstrap = ServerBootstrap(group: loop)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(PeerHandler(node: self, inbound: true))
                }
            }
        let channel = try await bootstrap.bind(to: endpoint.socketAddress).get()
        server = channel
        return channel.localAddress?.port ?? Int(endpoint.port)
    }

    /// Dials a peer.
    public func connect(to endpoint: Endpoint) async throws {
        _ = try await ClientBootstrap(group: loop)
            .connectTimeout(.seconds(5))
            .channelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(PeerHandler(node: self, inbound: false))
                }
            }
            .connect(to: endpoint.socketAddress).get()
    }

    /// Runs `body` on the node's loop with its core (chain, mempool, peers), performing the
    /// actions it returns.
    public func perform<T: Sendable>(_ body: @escaping @Sendable (NodeCore) -> (T, [NodeAction])) async -> T {
        await withCheckedContinuation { continuation in
            loop.execute { [self] in
                let (value, actions) = body(core)
                execute(actions)
                continuation.resume(returning: value)
            }
        }
    }

    /// Reads the core on the node's loop.
    public func read<T: Sendable>(_ body: @escaping @Sendable (NodeCore) -> T) async -> T {
        await perform { (body($0), []) }
    }

    public func shutdown() async {
        try? await server?.close()
        await perform { core in
            ((), core.peers.keys.map { NodeAction.disconnect(peer: $0, reason: "shutdown") })
        }
    }

    // On the loop:

    func register(_ channel: any Channel, inbound: Bool) -> Int {
        nextPeer += 1
        let peer = nextPeer
        channels[peer] = channel
        let address = channel.remoteAddress.flatMap(Endpoint.init) ?? Endpoint(ip: .anyV4, port: 0)
        execute(core.connected(peer: peer, address: address, inbound: inbound))
        return peer
    }

    func received(_ message: P2PMessage, from peer: Int) {
        let before = core.chain.tip.hash
        execute(core.handle(message, from: peer))
        if core.chain.tip.hash != before { onTipChange?() }
    }

    func closed(_ peer: Int) {
        channels[peer] = nil
        core.disconnected(peer: peer)
    }

    func execute(_ actions: [NodeAction]) {
        for action in actions {
            switch action {
            case .send(let peer, let message):
                guard let channel = channels[peer] else { continue }
                let bytes = P2PCodec.encode(message, magic: parameters.magic)
                channel.writeAndFlush(channel.allocator.buffer(bytes: bytes), promise: nil)
            case .disconnect(let peer, _), .ban(let peer, _, _):
                channels[peer]?.close(promise: nil)
            }
        }
    }
}

/// One TCP connection: bytes in, frames out to the node; a bad frame drops the peer.
final class PeerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let node: BitcoinNode
    let inbound: Bool
    var peer = 0
    var buffer: [UInt8] = []

    init(node: BitcoinNode, inbound: Bool) {
        self.node = node
        self.inbound = inbound
    }

    func channelActive(context: ChannelHandlerContext) {
        peer = node.register(context.channel, inbound: inbound)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        node.closed(peer)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        buffer += bytes.readBytes(length: bytes.readableBytes) ?? []
        var offset = 0
        do {
            while let (message, used) = try P2PCodec.decode(buffer[offset...], magic: node.parameters.magic) {
                offset += used
                node.received(message, from: peer)
            }
        } catch {
            node.execute(node.core.misbehaveAction(peer, "\(error)"))
            context.close(promise: nil)
            return
        }
        buffer.removeFirst(offset)
        guard buffer.count <= P2PCodec.maxPayload + P2PCodec.headerSize else {
            context.close(promise: nil)
            return
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

extension NodeCore {
    /// A peer that sent a malformed frame is banned.
    func misbehaveAction(_ peer: Int, _ reason: String) -> [NodeAction] { misbehave(peer, 100, reason) }
}

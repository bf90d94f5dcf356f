import DequeModule
import Foundation
import Logging
import NIOCore
import NIOPosix
import PeerNet
import SystemPackage

/// The node on the network: SwiftNIO TCP listener and dialer around ``NodeCore``. Everything the
/// core touches runs on the node's one event loop, so the chain, mempool and peers need no locks.
public final class BitcoinNode: @unchecked Sendable {
    public let parameters: ChainParameters
    let loop: any EventLoop
    let core: NodeCore
    /// The time source, read at each event handed to the core.
    public let clock: @Sendable () -> UInt32
    var channels: [Int: any Channel] = [:]
    var nextPeer = 0
    var server: (any Channel)?
    let logger = Logger(label: "peerstack.blockchain")
    /// Called on the event loop after each block that moved the tip (for miners to restart).
    public var onTipChange: (@Sendable () -> Void)?
    /// Called once on the event loop when the chain's store failed: the node has closed its
    /// connections and takes no more blocks; the program should report the reason and exit.
    public var onFatal: (@Sendable (String) -> Void)?
    var stopping = false
    /// Peers kept connected (`addnode … add`, `--addnode`): redialled every few seconds while
    /// no outbound connection to them is up. On the loop.
    var addedNodes: Set<Endpoint> = []
    var dialing: Set<Endpoint> = []
    var maintenance: RepeatedTask?
    var ticker: RepeatedTask?
    var ticks = 0
    /// Where the address book is kept between runs (`<datadir>/peers.txt`); nil: not kept.
    let addressBookFile: String?
    /// The chain's writes, batched off the loop (a SQLite store); nil for a store in memory.
    let batching: BatchingChainStore?
    /// How often the added peers are checked and redialled.
    public static let redialInterval = TimeAmount.seconds(2)

    /// Limits of every P2P connection: `version`/`verack` within 60 s and nothing heard for
    /// 20 minutes closes it (Bitcoin Core's timeouts); a peer that does not read what we send is
    /// not read or served meanwhile, and is dropped past 16 MiB queued.
    public static let connectionLimits = ConnectionLimits(
        handshakeTimeout: .seconds(60), idleTimeout: .minutes(20), writeBufferHighWater: 1 << 20,
        writeBufferLowWater: 256 << 10, maxQueuedBytes: 16 << 20)
    /// Admission of inbound peers: 125 at once (Core's default), 8 per IP (loopback exempt), 32
    /// still in their handshake.
    public static let admission = ConnectionLimiter.Configuration(
        maxConnections: 125, maxPerIP: 8, maxHandshaking: 32)
    /// A node on one loop of `group` (the process's shared group by default).
    public init(
        parameters: ChainParameters, store: any ChainStore, clock: @escaping @Sendable () -> UInt32,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, addressBookFile: String? = nil,
        addressInterval: UInt32 = 30, targetOutbound: Int = 8
    ) throws {
        self.parameters = parameters
        self.addressBookFile = addressBookFile
        let loop = group.next()
        self.loop = loop
        var random = SystemRandomNumberGenerator()
        // A store on disk is written off the loop, in batches.
        let batching = (store as? SQLiteChainStore).map { BatchingChainStore($0, loop: loop) }
        self.batching = batching
        self.clock = clock
        core = NodeCore(
            chain: try ChainState(parameters: parameters, store: batching ?? store), nonce: random.next())
        core.addressInterval = addressInterval
        core.targetOutbound = targetOutbound
        if let addressBookFile, let bytes = try? SmallFile.read(FilePath(addressBookFile), limit: 4 << 20) {
            core.addressBook.load(bytes)
        }
        if let batching {
            loop.execute { [self] in
                batching.onFailure = { [self] error in execute([.fatal("writing to the store: \(error)")]) }
                batching.start()
            }
        }
    }

    /// Listens on `endpoint` (port 0 for any); returns the port.
    public func listen(on endpoint: Endpoint) async throws -> Int {
        let listener = try await TCPListener.bind(
            on: endpoint, group: loop,
            configuration: TCPListener.Configuration(limits: Self.connectionLimits, admission: Self.admission)
        ) { [self] channel in
            try install(on: channel, inbound: true)
        }
        server = listener.channel
        let port = listener.localAddress?.port ?? endpoint.port
        try await loop.submit { [self] in
            // Announced to peers: where this node can be dialled (loopback only on regtest).
            let announced = Endpoint(ip: endpoint.ip.isUnspecified ? .loopbackV4 : endpoint.ip, port: port)
            if core.addressBook.isUsable(announced) { core.localAddress = announced }
            startTicking()
        }.get()
        return Int(port)
    }

    private func install(on channel: any Channel, inbound: Bool) throws {
        try channel.pipeline.syncOperations.addHandler(
            ByteToMessageHandler(FrameDecoder(BitcoinFrameFormat(magic: parameters.magic))))
        try channel.pipeline.syncOperations.addHandler(PeerHandler(node: self, inbound: inbound))
    }

    /// Dials a peer.
    public func connect(to endpoint: Endpoint) async throws {
        _ = try await TCPDialer.connect(to: endpoint, on: loop, limits: Self.connectionLimits) {
            [self] channel in
            try install(on: channel, inbound: false)
        }.get()
    }

    /// Keeps `endpoint` connected from now on (Core's `addnode … add`); false if it already was.
    public func addNode(_ endpoint: Endpoint) async -> Bool {
        let added =
            (try? await loop.submit { [self] in
                guard addedNodes.insert(endpoint).inserted else { return false }
                if maintenance == nil {
                    maintenance = loop.scheduleRepeatedTask(
                        initialDelay: Self.redialInterval, delay: Self.redialInterval
                    ) {
                        [self] _ in
                        for node in addedNodes { dial(node) }
                    }
                }
                dial(endpoint)
                return true
            }.get()) ?? false
        return added
    }

    /// Stops keeping `endpoint` connected (Core's `addnode … remove`); false if it was not added.
    public func removeNode(_ endpoint: Endpoint) async -> Bool {
        (try? await loop.submit { [self] in addedNodes.remove(endpoint) != nil }.get()) ?? false
    }

    /// Dials `endpoint` once (Core's `addnode … onetry`).
    public func connectOnce(_ endpoint: Endpoint) {
        loop.execute { [self] in dial(endpoint) }
    }

    /// On the loop: dials unless a dial is under way or an outbound connection is up. A dial
    /// for an outbound slot (from the address book) reports a failure to the core.
    func dial(_ endpoint: Endpoint, forSlot: Bool = false) {
        guard !dialing.contains(endpoint),
            !core.peers.values.contains(where: { $0.address == endpoint && !$0.inbound })
        else {
            if forSlot { core.dialFailed(endpoint) }
            return
        }
        dialing.insert(endpoint)
        Task { [self] in
            var failed = false
            do {
                try await connect(to: endpoint)
            } catch {
                failed = true
                logger.debug("cannot connect to \(endpoint): \(error)")
            }
            loop.execute { [self] in
                dialing.remove(endpoint)
                if failed && forSlot { core.dialFailed(endpoint) }
            }
        }
    }

    /// Starts the once-a-second tick (address trickles, outbound slots, saving the address
    /// book every minute to `addressBookFile`).
    func startTicking() {
        guard ticker == nil else { return }
        ticker = loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) { [self] _ in
            execute(core.tick(now: clock()))
            ticks += 1
            if ticks % 60 == 0 { saveAddressBook() }
        }
    }

    /// Writes the address book off the loop (a small file, written whole and crash-safely).
    @discardableResult
    func saveAddressBook() -> EventLoopFuture<Void>? {
        guard let addressBookFile else { return nil }
        let bytes = core.addressBook.serialized()
        let logger = self.logger
        return NIOThreadPool.singleton.runIfActive(eventLoop: loop) {
            do {
                try SmallFile.writeAtomically(bytes, to: FilePath(addressBookFile))
            } catch {
                logger.warning("cannot save the address book \(addressBookFile): \(error)")
            }
        }
    }

    /// Mines `count` blocks paying `script` and returns their hashes. The template is made on
    /// the node's loop, the nonce is searched on NIO's thread pool (the loop goes on serving
    /// peers meanwhile), and the block is processed back on the loop; a block that lost to one
    /// from a peer in between is mined again.
    public func generate(_ count: Int, to script: [UInt8]) async throws -> [Hash256] {
        var hashes: [Hash256] = []
        var attempts: UInt64 = 0
        let threads = ProcessInfo.processInfo.activeProcessorCount
        let clock = self.clock
        while hashes.count < count {
            attempts += 1
            guard attempts <= UInt64(count) * 4 + 16 else {
                throw RPCError(RPCError.miscError, "mining kept losing to blocks from peers")
            }
            let extraNonce = attempts
            let template: Block = await perform { core in
                let (transactions, fees) = core.mempool.select()
                let time = max(clock(), core.chain.medianTimePast(core.chain.tip) + 1)
                let block = Miner.template(
                    chain: core.chain, transactions: transactions, fees: fees, payTo: script, time: time,
                    extraNonce: extraNonce)
                return (block, [])
            }
            let solved: Block? = try await NIOThreadPool.singleton.runIfActive {
                var block = template
                return Miner.solve(&block.header, threads: threads) ? block : nil
            }
            guard let solved else { continue }
            let (connected, failure): (Bool, String?) = await perform { core in
                let actions = core.receive(solved, from: nil, now: clock())
                return ((core.chain.tip.hash == solved.hash, core.chain.failure), actions)
            }
            if let failure { throw RPCError(RPCError.miscError, "the chain store failed: \(failure)") }
            if connected {
                hashes.append(solved.hash)
                onTipChange?()
            }
        }
        return hashes
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
        let saved = try? await loop.submit { [self] in
            maintenance?.cancel()
            maintenance = nil
            ticker?.cancel()
            ticker = nil
            addedNodes.removeAll()
            return saveAddressBook()
        }.get()
        if let saved { try? await saved.get() }
        // Every chain write made so far reaches the disk before the node says it stopped.
        if let batching {
            do {
                try await batching.flush()
            } catch {
                logger.error("the last chain writes failed: \(error)")
            }
        }
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
        execute(core.connected(peer: peer, address: address, inbound: inbound, now: clock()))
        return peer
    }

    func received(_ message: P2PMessage, from peer: Int) {
        let before = core.chain.tip.hash
        let handshaking = core.peers[peer]?.handshakeDone == false
        execute(core.handle(message, from: peer, now: clock()))
        if handshaking, core.peers[peer]?.handshakeDone == true, let channel = channels[peer] {
            ConnectionGuard.handshakeCompleted(channel)
        }
        if core.chain.tip.hash != before { onTipChange?() }
    }

    /// The peer's connection can take more: what it asked for goes out next.
    func writable(_ peer: Int) {
        execute(core.serveQueued(peer))
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
            case .disconnect(let peer, let reason):
                logger.debug("disconnecting peer \(peer): \(reason)")
                channels[peer]?.close(promise: nil)
            case .ban(let peer, let address, let reason):
                logger.notice("banning \(address): \(reason)")
                channels[peer]?.close(promise: nil)
            case .connect(let endpoint):
                dial(endpoint, forSlot: true)
            case .fatal(let reason):
                guard !stopping else { continue }
                stopping = true
                logger.critical("the chain store failed: \(reason)")
                server?.close(promise: nil)
                for channel in channels.values { channel.close(promise: nil) }
                onFatal?(reason)
            }
        }
    }
}

/// One TCP connection: whole frames in (cut by PeerNet's ``FrameDecoder``), messages to the
/// node; a bad frame drops the peer. While the connection is not writable (the peer does not
/// read), its frames wait here instead of being handled (the guard has stopped reading, so at
/// most one read's worth waits), so a `getheaders` flood cannot queue replies without end.
final class PeerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    let node: BitcoinNode
    let inbound: Bool
    var peer = 0
    private var waiting = Deque<ByteBuffer>()

    init(node: BitcoinNode, inbound: Bool) {
        self.node = node
        self.inbound = inbound
    }

    func channelActive(context: ChannelHandlerContext) {
        peer = node.register(context.channel, inbound: inbound)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        waiting.removeAll()
        node.closed(peer)
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard waiting.isEmpty, context.channel.isWritable else {
            waiting.append(frame)
            return
        }
        handle(frame, context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            node.writable(peer)
            while context.channel.isWritable, context.channel.isActive, let frame = waiting.popFirst() {
                handle(frame, context: context)
            }
        }
        context.fireChannelWritabilityChanged()
    }

    private func handle(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        do {
            guard
                let (message, _) = try P2PCodec.decode(
                    ArraySlice(frame.readableBytesView), magic: node.parameters.magic)
            else { return }
            node.received(message, from: peer)
        } catch {
            node.execute(node.core.misbehaveAction(peer, "\(error)"))
            context.close(promise: nil)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is P2PCodec.FrameError { node.execute(node.core.misbehaveAction(peer, "\(error)")) }
        context.close(promise: nil)
    }
}

extension NodeCore {
    /// A peer that sent a malformed frame is banned.
    func misbehaveAction(_ peer: Int, _ reason: String) -> [NodeAction] { misbehave(peer, 100, reason) }
}

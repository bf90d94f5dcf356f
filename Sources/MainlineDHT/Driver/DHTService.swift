import Crypto
import Kademlia
import Logging
import NIOCore
import NIOPosix
import PeerNet
import Synchronization
import SystemPackage

/// How a ``DHTService`` runs.
public struct DHTServiceOptions: Sendable {
    /// The address to listen on for KRPC datagrams: an IPv6 address runs an IPv6 node (BEP 32
    /// runs one node per address family).
    public var address = IPAddress.anyV4
    /// The UDP port (0 picks a free one).
    public var port: UInt16 = 6881
    /// The node ID; by default the saved table's, else a random one. Once other nodes have told
    /// us our external IP (BEP 42), it is saved with the table, and the next start takes a
    /// secure ID for that IP if the saved one does not match it.
    public var nodeID: NodeID?
    /// Where the routing table is kept across restarts (read at start, written at stop and
    /// every few minutes).
    public var tableFile: String?
    public var configuration = DHTConfiguration()
    public var settings = DHTNode.Settings()
    /// The event loops the node's socket runs on (it takes one); the process's shared group
    /// unless given.
    public var group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    /// Where the node logs: each datagram at `trace` (`peerstack dht --verbose`), problems
    /// saving the routing table as warnings.
    public var logger = Logger(label: "peerstack.dht")

    public init() {}
}

/// Bootstrap hosts that are well known on the public Internet. PeerStack never contacts them by
/// itself: they are used only when a user asks for them (`--bootstrap public`).
public enum PublicBootstrap {
    public static let hosts = [
        "router.bittorrent.com:6881", "dht.transmissionbt.com:6881", "router.utorrent.com:6881",
        "dht.libtorrent.org:25401",
    ]
}

/// A running mainline DHT node: the NIO driver around ``DHTNode`` on one event loop (the state
/// is confined to it, so no locks). Operations are async calls that return when the lookup ends.
public final class DHTService: Sendable {
    /// The port the node listens on.
    public let port: UInt16
    private let core: NIOLoopBound<DHTCore>
    private let channel: Channel
    private let stopped = Atomic<Bool>(false)
    private let joining = Mutex<Task<DHTResult, Never>?>(nil)

    private init(core: NIOLoopBound<DHTCore>, channel: Channel, port: UInt16) {
        self.core = core
        self.channel = channel
        self.port = port
    }

    /// Binds the socket and starts the node (it serves queries from then on).
    public static func start(_ options: DHTServiceOptions) async throws -> DHTService {
        var options = options
        if options.address.isIPv6 { options.settings.ipv6 = true }  // BEP 32: an IPv6 node
        let loop = options.group.next()
        let saved = options.tableFile.flatMap { try? SmallFile.read(FilePath($0), limit: 1 << 20) }.flatMap {
            RoutingSnapshot(decoding: $0)
        }
        var random = SystemRandomNumberGenerator()
        let id = options.nodeID ?? saved?.startingID(using: &random) ?? NodeID.random(using: &random)
        let core = try await loop.submit {
            NIOLoopBound(DHTCore(id: id, options: options, saved: saved, loop: loop), eventLoop: loop)
        }.get()
        do {
            // Any datagram whole (NIO's default of 2,048 bytes would cut a large but valid
            // reply, e.g. a BEP 44 item with many nodes, and the codec would refuse it).
            let local = Endpoint(ip: options.address, port: options.port)
            let channel = try await UDPEndpoint.bind(
                on: local, loop: loop, configuration: UDPEndpoint.Configuration(maxDatagram: 65_536)
            ) { channel in
                try channel.pipeline.syncOperations.addHandler(DHTChannelHandler(core: core.value))
            }
            try await loop.submit { core.value.started(channel: channel) }.get()
            return DHTService(
                core: core, channel: channel, port: UInt16(clamping: channel.localAddress?.port ?? 0))
        }
    }

    /// The node's UDP channel: uTP (BEP 29) adds its handler in front of the node's to share the
    /// port, as libtorrent does (a KRPC message starts with `d` and passes through).
    public var datagramChannel: any Channel { channel }

    /// Our node ID.
    public var nodeID: NodeID {
        get async { (try? await core.eventLoop.submit { [core] in core.value.node.ownID }.get()) ?? .zero }
    }

    /// Contacts in the routing table.
    public var routingTableSize: Int {
        get async {
            (try? await core.eventLoop.submit { [core] in core.value.node.routing.count }.get()) ?? 0
        }
    }

    /// Nodes saved in the table file at start (bootstrap from them when no host is given).
    public var savedNodes: [Endpoint] {
        get async { (try? await core.eventLoop.submit { [core] in core.value.savedNodes }.get()) ?? [] }
    }

    /// Joins through `addresses` (plus the saved table) and returns when our own ID's lookup ends.
    public func bootstrap(_ addresses: [Endpoint]) async -> DHTResult {
        await perform { node, now in node.bootstrap(from: addresses, now: now) }
    }

    /// Starts joining through `addresses` without waiting; ``joined()`` waits for it.
    public func startBootstrap(_ addresses: [Endpoint]) {
        let task = Task { await self.bootstrap(addresses) }
        joining.withLock { $0 = task }
    }

    /// Waits for the join started by ``startBootstrap(_:)``, if any.
    public func joined() async {
        let task = joining.withLock { $0 }
        _ = await task?.value
    }

    /// Runs one operation to its end.
    public func run(_ operation: DHTOperation) async -> DHTResult {
        await perform { node, now in node.run(operation, now: now) }
    }

    /// Pings a node (a peer's BEP 5 `port` message): if it answers it joins the table.
    public func ping(_ address: Endpoint) {
        guard !stopped.load(ordering: .acquiring) else { return }
        core.eventLoop.execute { [core] in core.value.apply { node, now in node.ping(address, now: now) } }
    }

    /// Saves the table and closes the socket.
    public func stop() async {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        try? await core.eventLoop.submit { [core] in core.value.stop() }.get()
        try? await channel.close().get()
    }

    private func perform(
        _ body: @escaping @Sendable (inout DHTNode, KademliaTime) -> (DHTOperationID, [DHTAction])
    ) async -> DHTResult {
        guard !stopped.load(ordering: .acquiring) else { return DHTResult(target: .zero) }
        return await withCheckedContinuation { (continuation: CheckedContinuation<DHTResult, Never>) in
            core.eventLoop.execute { [core] in core.value.begin(body, continuation: continuation) }
        }
    }

    /// Resolves `host:port` (a name, `1.2.3.4:P` or `[::1]:P`) to node addresses, or the public
    /// routers for `public`; names are looked up on a thread pool, never on an event loop.
    public static func resolve(_ text: String) async throws -> [Endpoint] {
        if text == "public" {
            var all: [Endpoint] = []
            for host in PublicBootstrap.hosts { all += try await resolve(host) }
            return all
        }
        return try await HostPort(parsing: text).resolve()
    }
}

/// The loop-confined owner of the node: clock, random source, timers, waiting callers.
final class DHTCore {
    var node: DHTNode
    let savedNodes: [Endpoint]
    private let options: DHTServiceOptions
    private let loop: EventLoop
    private let clock = ContinuousClock()
    private let origin: ContinuousClock.Instant
    private var random = SystemRandomNumberGenerator()
    private var channel: Channel?
    private var timer: RepeatedTask?
    private var waiting: [DHTOperationID: CheckedContinuation<DHTResult, Never>] = [:]
    private var lastSave: KademliaTime = .zero

    init(id: NodeID, options: DHTServiceOptions, saved: RoutingSnapshot?, loop: EventLoop) {
        self.options = options
        self.loop = loop
        origin = clock.now
        var key = [UInt8](repeating: 0, count: 32)
        var random = SystemRandomNumberGenerator()
        for index in key.indices { key[index] = UInt8.random(in: 0...255, using: &random) }
        node = DHTNode(
            ownID: id, secret: SymmetricKey(data: key), configuration: options.configuration,
            settings: options.settings, now: .zero)
        savedNodes = saved?.nodes.map(\.address) ?? []
    }

    var now: KademliaTime { clock.now - origin }

    func started(channel: Channel) {
        self.channel = channel
        let core = NIOLoopBound(self, eventLoop: loop)
        timer = loop.scheduleRepeatedTask(initialDelay: .milliseconds(200), delay: .milliseconds(200)) { _ in
            core.value.tick()
        }
    }

    func begin(
        _ body: (inout DHTNode, KademliaTime) -> (DHTOperationID, [DHTAction]),
        continuation: CheckedContinuation<DHTResult, Never>
    ) {
        guard timer != nil else {  // stopped
            continuation.resume(returning: DHTResult(target: node.ownID))
            return
        }
        let (id, actions) = body(&node, now)
        waiting[id] = continuation
        perform(actions)
    }

    func apply(_ body: (inout DHTNode, KademliaTime) -> [DHTAction]) {
        perform(body(&node, now))
    }

    func received(_ bytes: [UInt8], from address: SocketAddress) {
        guard let source = Endpoint(address) else { return }
        let logger = options.logger
        if logger.logLevel <= .trace {
            let log = { (line: String) in logger.trace("\(line)") }
            switch (try? KRPCCodec.decode(bytes))?.body {
            case .query(let query)?: log("\(source) asks \(query.name)")
            case .response?: log("\(source) answers")
            case .error(let code, let message)?: log("\(source) error \(code) \(message)")
            case nil: log("\(source) sent \(bytes.count) undecodable bytes")
            }
        }
        perform(node.received(bytes, from: source, now: now))
    }

    private func tick() {
        let now = self.now
        perform(node.timerFired(now: now, random: &random))
        if now - lastSave >= .seconds(300) {
            lastSave = now
            save()
        }
    }

    private func perform(_ actions: [DHTAction]) {
        var wrote = false
        for action in actions {
            switch action {
            case .send(let bytes, let address):
                guard let channel else { continue }
                let remote = address.socketAddress
                let envelope = AddressedEnvelope(
                    remoteAddress: remote, data: channel.allocator.buffer(bytes: bytes))
                channel.write(envelope, promise: nil)
                wrote = true
            case .finished(let id, let result):
                waiting.removeValue(forKey: id)?.resume(returning: result)
            }
        }
        if wrote { channel?.flush() }
    }

    func stop() {
        timer?.cancel()
        timer = nil
        save()
        // Callers still waiting get what is known so far: nothing.
        for (_, continuation) in waiting { continuation.resume(returning: DHTResult(target: node.ownID)) }
        waiting.removeAll()
    }

    private func save() {
        guard let path = options.tableFile, node.routing.count > 0 else { return }
        do {
            try SmallFile.writeAtomically(node.snapshot.encoded(), to: FilePath(path))
        } catch {
            options.logger.warning("could not save the routing table to \(path): \(error)")
        }
    }
}

/// KRPC over a datagram channel: each datagram to the node, its replies back out.
final class DHTChannelHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    private let core: DHTCore

    init(core: DHTCore) { self.core = core }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard envelope.data.readableBytes <= KRPCCodec.maxPacket else { return }
        core.received(Array(envelope.data.readableBytesView), from: envelope.remoteAddress)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // ICMP port unreachable and the like surface here; the node's timeouts deal with them.
    }
}

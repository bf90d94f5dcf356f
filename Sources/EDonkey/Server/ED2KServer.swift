import Crypto
import Foundation
import NIOCore
import NIOPosix
import PeerNet
import SystemPackage

/// What a running server reports.
public enum ED2KServerEvent: Sendable {
    case listening(Endpoint)
    case login(Endpoint, clientID: UInt32, name: String)
    case offered(Endpoint, files: Int)
    case searched(Endpoint, results: Int)
    /// A client asked for a file's sources and was given `found`.
    case sources(Endpoint, hash: [UInt8], found: Int)
    /// A datagram on the UDP port (its opcode) and how many answers went back.
    case datagram(Endpoint, opcode: UInt8, answers: Int)
    case disconnected(Endpoint, reason: String)
}

/// The index server on sockets: a ``ServerState`` on one event loop, its TCP connections
/// (eDonkey framing, packed offers inflated within bounds, every connection under
/// ``ConnectionLimits``), the high-ID check (a connection to the client's port from here) and
/// the UDP port (TCP port + 4) for status pings, global searches and source requests.
public final class ED2KServer: @unchecked Sendable {
    public let loop: any EventLoop
    private var state: ServerState
    private var handlers: [ServerConnection: ServerConnectionHandler] = [:]
    private var nextConnection = 1
    private var listener: TCPListener?
    private var datagrams: (any Channel)?
    private var snapshotTask: RepeatedTask?
    private let origin = NIODeadline.now()
    let onEvent: @Sendable (ED2KServerEvent) -> Void
    let limits = ConnectionLimits(
        handshakeTimeout: .seconds(30), idleTimeout: .seconds(900), writeBufferHighWater: 256 << 10,
        writeBufferLowWater: 64 << 10, maxQueuedBytes: 4 << 20)

    var now: Duration { .nanoseconds((NIODeadline.now() - origin).nanoseconds) }

    init(state: ServerState, loop: any EventLoop, onEvent: @escaping @Sendable (ED2KServerEvent) -> Void) {
        self.state = state
        self.loop = loop
        self.onEvent = onEvent
    }

    /// Listens on `endpoint` (TCP, and UDP at its port + 4). The server's hash is random, as
    /// eMule servers' are, unless the configuration's snapshot has one: then the hash and the
    /// clients it remembers come back.
    public static func start(
        on endpoint: Endpoint, configuration: ED2KServerConfiguration = ED2KServerConfiguration(),
        group: any EventLoopGroup, onEvent: @escaping @Sendable (ED2KServerEvent) -> Void = { _ in }
    ) async throws -> ED2KServer {
        let loop = group.next()
        let restored = try configuration.snapshot.flatMap(Self.readSnapshot)
        let hash =
            restored.map(\.serverHash).flatMap { $0.count == 16 ? $0 : nil }
            ?? (0..<16).map { _ in UInt8.random(in: 0...255) }
        let server = ED2KServer(
            state: ServerState(configuration: configuration, hash: hash, endpoint: endpoint), loop: loop,
            onEvent: onEvent)
        var settings = TCPListener.Configuration(limits: server.limits)
        settings.admission.maxConnections = configuration.maxUsers + 64
        let listener = try await TCPListener.bind(on: endpoint, group: loop, configuration: settings) {
            channel in
            try channel.pipeline.syncOperations.addHandler(ServerConnectionHandler(server: server))
        }
        var udp: (any Channel)?
        if configuration.udp, let bound = listener.localAddress, bound.port <= UInt16.max - 4 {
            do {
                udp = try await UDPEndpoint.bind(
                    on: Endpoint(ip: bound.ip, port: bound.port + 4), loop: loop,
                    configuration: UDPEndpoint.Configuration(maxDatagram: 2_048)
                ) { channel in
                    try channel.pipeline.syncOperations.addHandler(ServerDatagramHandler(server: server))
                }
            } catch {
                await listener.close()
                throw error
            }
        }
        try await loop.submit {
            server.listener = listener
            server.datagrams = udp
            if let bound = listener.localAddress {
                let advertised =
                    endpoint.ip == IPAddress(v4: 0) ? bound : Endpoint(ip: endpoint.ip, port: bound.port)
                server.state = ServerState(configuration: configuration, hash: hash, endpoint: advertised)
                if let restored { server.state.restore(restored, now: server.now) }
                onEvent(.listening(bound))
            }
            if configuration.snapshot != nil {
                let interval = TimeAmount.nanoseconds(
                    Int64(configuration.snapshotInterval.components.seconds) * 1_000_000_000)
                server.snapshotTask = loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) {
                    _ in
                    server.saveSnapshot()
                }
            }
        }.get()
        return server
    }

    public var localAddress: Endpoint? { listener?.localAddress }
    /// The UDP port's address (the TCP port + 4), when it listens.
    public var udpAddress: Endpoint? { datagrams?.localAddress.flatMap(Endpoint.init) }

    public func counts() async throws -> (users: Int, files: Int) {
        try await loop.submit { (self.state.userCount, self.state.fileCount) }.get()
    }

    public func shutdown() async {
        let last = try? await loop.submit {
            // Taken before the connections close, which takes their files out of the index.
            self.snapshotTask?.cancel()
            let last = self.state.snapshot()
            for handler in self.handlers.values { handler.close() }
            return last
        }.get()
        if let path = state.configuration.snapshot, let last { try? Self.writeSnapshot(last, to: path) }
        await listener?.close()
        try? await datagrams?.close()
    }

    // MARK: Snapshots

    /// The largest snapshot read (a file that big is refused, not parsed).
    static let maxSnapshotBytes = 256 << 20

    static func readSnapshot(_ path: String) throws -> ServerState.Snapshot? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let data = try SmallFile.read(FilePath(path), limit: maxSnapshotBytes)
        do {
            return try JSONDecoder().decode(ServerState.Snapshot.self, from: Data(data))
        } catch {
            throw EDonkeyError.invalid(field: "snapshot \(path)", offset: 0, reason: "\(error)")
        }
    }

    /// Written atomically, so a crash leaves the old snapshot or the new.
    static func writeSnapshot(_ snapshot: ServerState.Snapshot, to path: String) throws {
        try SmallFile.writeAtomically(Array(try JSONEncoder().encode(snapshot)), to: FilePath(path))
    }

    /// Takes the snapshot on the loop, writes it off the loop.
    func saveSnapshot() {
        guard let path = state.configuration.snapshot else { return }
        let snapshot = state.snapshot()
        Task.detached { try? Self.writeSnapshot(snapshot, to: path) }
    }

    // MARK: Loop-confined

    func opened(_ handler: ServerConnectionHandler, address: [UInt8]) -> ServerConnection {
        let id = ServerConnection(nextConnection)
        nextConnection += 1
        handlers[id] = handler
        perform(state.connected(id, address: address))
        return id
    }

    func closed(_ id: ServerConnection, remote: Endpoint?, reason: String) {
        handlers[id] = nil
        state.disconnected(id)
        if let remote { onEvent(.disconnected(remote, reason: reason)) }
    }

    /// A datagram on the UDP port: answered to where it came from (IPv4 only, as eDonkey is).
    func received(datagram: [UInt8], from remote: SocketAddress, channel: any Channel) {
        guard let endpoint = Endpoint(remote), endpoint.ip.bytes.count == 4,
            let message = try? ServerUDPMessage(datagram: datagram)
        else { return }
        let answers = state.receivedDatagram(message, from: endpoint.ip.bytes, now: now)
        onEvent(.datagram(endpoint, opcode: datagram[1], answers: answers.count))
        for answer in answers {
            let bytes = answer.encoded()
            channel.write(
                AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: bytes)), promise: nil)
        }
        channel.flush()
    }

    func received(_ message: ServerMessage, from id: ServerConnection, remote: Endpoint?) {
        if let remote {
            if case .offerFiles(let files) = message, !files.isEmpty {
                onEvent(.offered(remote, files: files.count))
            }
        }
        perform(state.received(message, from: id, now: now), remote: remote)
    }

    private func perform(_ actions: [ServerAction], remote: Endpoint? = nil) {
        for action in actions {
            switch action {
            case .send(let id, let message):
                if let remote, case .searchResults(let results, _) = message {
                    onEvent(.searched(remote, results: results.count))
                }
                if let remote, case .foundSources(let hash, let sources) = message {
                    onEvent(.sources(remote, hash: hash, found: sources.count))
                }
                if case .idChange(let clientID, _) = message, let handler = handlers[id],
                    let address = handler.remote
                {
                    onEvent(.login(address, clientID: clientID, name: ""))
                }
                handlers[id]?.send(message)
            case .close(let id, let reason):
                handlers[id]?.close()
                closed(id, remote: handlers[id]?.remote, reason: reason)
            case .checkReachable(let id, let endpoint):
                // The high-ID test: can the server open a connection to the client's port?
                TCPDialer.connect(
                    to: endpoint, on: loop, limits: ConnectionLimits(handshakeTimeout: .seconds(5)),
                    timeout: .seconds(5)
                ) { _ in }.whenComplete { result in
                    self.loop.execute {
                        if case .success(let channel) = result { channel.close(promise: nil) }
                        let reachable = if case .success = result { true } else { false }
                        self.perform(self.state.reachability(id, reachable: reachable))
                    }
                }
            }
        }
    }
}

/// One client's TCP connection to the server.
final class ServerConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let server: ED2KServer
    private var context: ChannelHandlerContext?
    private var id: ServerConnection?
    private var framer = EDonkeyFramer(maxSize: 256 * 1024, maxUnpacked: 2 << 20, unpackedProtocol: .edonkey)
    private(set) var remote: Endpoint?
    private var loggedIn = false

    init(server: ED2KServer) { self.server = server }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        remote = context.channel.remoteAddress.flatMap(Endpoint.init)
        if context.channel.isActive { register() }
    }

    func channelActive(context: ChannelHandlerContext) {
        register()
        context.fireChannelActive()
    }

    private func register() {
        guard id == nil else { return }
        let address = remote?.ip.bytes ?? [0, 0, 0, 0]
        id = server.opened(self, address: address.count == 4 ? address : [0, 0, 0, 0])
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        framer.append(Array(unwrapInboundIn(data).readableBytesView))
        do {
            while let packet = try framer.next() {
                guard let id else { return }
                let message = try ServerMessage(packet)
                if case .login = message, !loggedIn {
                    loggedIn = true
                    ConnectionGuard.handshakeCompleted(context.channel)
                }
                server.received(message, from: id, remote: remote)
            }
        } catch {
            close()
        }
    }

    func send(_ message: ServerMessage) {
        guard let context else { return }
        let pack: Bool = if case .searchResults = message { true } else { false }
        context.writeAndFlush(
            wrapOutboundOut(ByteBuffer(bytes: message.packet().encoded(pack: pack))), promise: nil)
    }

    func close() { context?.close(promise: nil) }

    func channelInactive(context: ChannelHandlerContext) {
        if let id { server.closed(id, remote: remote, reason: "closed") }
        id = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

final class ServerDatagramHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>

    let server: ED2KServer

    init(server: ED2KServer) { self.server = server }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        server.received(
            datagram: Array(envelope.data.readableBytesView), from: envelope.remoteAddress,
            channel: context.channel)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A refused datagram (ICMP) or the like: the port stays open for the others.
    }
}

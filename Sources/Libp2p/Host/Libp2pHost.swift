import Multiformats
import NIOCore
import NIOPosix
import PeerCrypto
import PeerNet
import Synchronization

/// Serves a stream the peer opened for a protocol this host registered.
public typealias StreamHandler = @Sendable (Libp2pStream) async throws -> Void

/// A libp2p node on TCP: listens and dials, upgrades every connection (multistream-select →
/// Noise or TLS 1.3 → multistream-select → yamux), keeps the connections under the manager's limits, and
/// dispatches streams to the handlers registered per protocol. Identify (`/ipfs/id/1.0.0`,
/// `/ipfs/id/push/1.0.0`) and ping (`/ipfs/ping/1.0.0`) are served from the start.
public final class Libp2pHost: Sendable {
    /// What a host offers and how much a peer may cost it.
    public struct Configuration: Sendable {
        /// Security protocols in order of preference (offered when dialling, accepted when
        /// listening).
        public var security: [SecurityProtocol] = [.noise, .tls]
        public var yamux = YamuxSession.Limits()
        /// Per connection: the upgrade's deadline (`handshakeTimeout`), idle timeout, and
        /// outbound backpressure (see ``ConnectionLimits``).
        public var limits: ConnectionLimits = {
            var limits = ConnectionLimits(handshakeTimeout: .seconds(10), idleTimeout: .seconds(300))
            // yamux's windows bound what a peer can make this side buffer; the writers stop at
            // the high-water mark themselves.
            limits.pauseReadingWhenUnwritable = false
            return limits
        }()
        /// Connections in all, and connections still upgrading.
        public var maxConnections = 256
        public var maxUpgrading = 64
        /// Connections to one peer (both directions together).
        public var maxPerPeer = 4
        /// Inbound streams still choosing their protocol, per connection, and how long one may take.
        public var maxNegotiatingStreams = 64
        public var negotiationTimeout: Duration = .seconds(10)
        /// Identify's `agentVersion`.
        public var agentVersion = "peerstack/0.2"
        /// Addresses identify reports beside the listeners' own (e.g. a public address).
        public var announce: [Multiaddr] = []

        public init() {}
    }

    let core: HostCore
    public var identity: PrivateKey { core.identity }
    public var peerID: PeerID { core.identity.publicKey.peerID }
    public var configuration: Configuration { core.configuration }

    /// A host with `identity` on `group`'s loops; `log` receives one line per dropped peer.
    public init(
        identity: PrivateKey, configuration: Configuration = Configuration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        core = HostCore(identity: identity, configuration: configuration, group: group, log: log)
        core.register(Identify.protocolID) { [core] stream in try await core.serveIdentify(stream) }
        core.register(Identify.pushProtocolID) { [core] stream in try await core.receivePush(stream) }
        core.register(Ping.protocolID) { stream in try await Ping.serve(stream) }
    }

    /// Serves `protocolID` with `handler` on every stream a peer opens for it.
    public func handle(_ protocolID: String, _ handler: @escaping StreamHandler) {
        core.register(protocolID, handler)
    }

    /// The protocols this host serves.
    public var protocols: [String] { core.protocols }

    /// Listens on a `/ip4|ip6/…/tcp/…` address (port 0: any); returns the address bound.
    @discardableResult
    public func listen(_ address: Multiaddr) async throws -> Multiaddr {
        try await core.listen(address)
    }

    /// The addresses listened on, with this host's `/p2p/` ID appended.
    public var listenAddresses: [Multiaddr] {
        core.listenAddresses.map { Multiaddr($0.components + [.p2p(peerID.multihash.bytes)]) }
    }

    /// Connects to `address` (`/ip4/…/tcp/…[/p2p/<id>]`). With a peer ID, an open connection to
    /// that peer is reused and the peer must prove that identity; without, anyone is accepted.
    public func connect(_ address: Multiaddr) async throws -> Libp2pConnection {
        try await core.connect(address)
    }

    /// Opens a stream to the peer at `address` for the first of `protocols` it supports.
    public func openStream(to address: Multiaddr, _ protocols: [String]) async throws -> Libp2pStream {
        try await connect(address).openStream(protocols)
    }

    /// The open connections.
    public var connections: [Libp2pConnection] { core.allConnections }

    /// Calls `observer` with every connection once it is upgraded, inbound or outbound (the
    /// DHT identifies each new peer this way). It runs on the connection's event loop: return
    /// at once and do any work in a task.
    public func onConnection(_ observer: @escaping @Sendable (Libp2pConnection) -> Void) {
        core.observers.withLock { $0.append(observer) }
    }

    /// What identify last told of `peer` (from a request or a push).
    public func peerInfo(_ peer: PeerID) -> Identify? { core.peerInfo(peer) }

    /// Asks the peer on `connection` who it is (`/ipfs/id/1.0.0`); the answer's key must be the
    /// connection's authenticated peer.
    public func identify(_ connection: Libp2pConnection) async throws -> Identify {
        try await core.identify(connection)
    }

    /// One ping round trip on `connection` (`/ipfs/ping/1.0.0`).
    public func ping(_ connection: Libp2pConnection, count: Int = 1) async throws -> [Duration] {
        let stream = try await connection.openStream([Ping.protocolID])
        defer { stream.closeWrite() }
        var times: [Duration] = []
        for _ in 0..<count { times.append(try await Ping.roundTrip(stream)) }
        return times
    }

    /// Stops listening and closes every connection.
    public func close() async {
        await core.close()
    }
}

/// The host's shared state (handlers, connections, listeners), safe from any thread.
final class HostCore: Sendable {
    let identity: PrivateKey
    let configuration: Libp2pHost.Configuration
    let group: any EventLoopGroup
    let logLine: @Sendable (String) -> Void
    let limiter: ConnectionLimiter
    let handlers = Mutex<[String: StreamHandler]>([:])
    let state = Mutex<(connections: [PeerID: [Libp2pConnection]], count: Int)>(([:], 0))
    let listeners = Mutex<[TCPListener]>([])
    let peers = Mutex<[PeerID: Identify]>([:])
    let observers = Mutex<[@Sendable (Libp2pConnection) -> Void]>([])
    /// The TLS contexts with this host's libp2p certificate (nil when TLS is not offered, or
    /// when the certificate could not be made: `tlsFailure` says why).
    let tls: TLSSecurity?
    let tlsFailure: String?

    init(
        identity: PrivateKey, configuration: Libp2pHost.Configuration, group: any EventLoopGroup,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.identity = identity
        self.configuration = configuration
        self.group = group
        self.logLine = log
        if configuration.security.contains(.tls) {
            do {
                tls = try TLSSecurity(identity: identity)
                tlsFailure = nil
            } catch {
                tls = nil
                tlsFailure = "the TLS certificate could not be made: \(error)"
            }
        } else {
            tls = nil
            tlsFailure = "TLS is not offered"
        }
        limiter = ConnectionLimiter(
            .init(
                maxConnections: configuration.maxConnections, maxPerIP: nil,
                maxHandshaking: configuration.maxUpgrading))
    }

    func log(_ line: String) { logLine(line) }

    func register(_ protocolID: String, _ handler: @escaping StreamHandler) {
        handlers.withLock { $0[protocolID] = handler }
    }

    var protocols: [String] { handlers.withLock { $0.keys.sorted() } }

    var listenAddresses: [Multiaddr] {
        listeners.withLock { $0.compactMap { $0.localAddress.map(Multiaddr.init(tcp:)) } }
    }

    var allConnections: [Libp2pConnection] {
        state.withLock { $0.connections.values.flatMap { $0 } }
    }

    func peerInfo(_ peer: PeerID) -> Identify? { peers.withLock { $0[peer] } }

    // MARK: Connection manager

    /// Why a new connection may not stay (nil: it may).
    func admit(_ connection: Libp2pConnection) -> String? {
        state.withLock { state in
            if state.count >= configuration.maxConnections {
                return "\(configuration.maxConnections) connections already"
            }
            let existing = state.connections[connection.remotePeer, default: []].count
            if existing >= configuration.maxPerPeer {
                return "\(existing) connections to \(connection.remotePeer) already"
            }
            return nil
        }
    }

    func connected(_ connection: Libp2pConnection) {
        state.withLock { state in
            state.connections[connection.remotePeer, default: []].append(connection)
            state.count += 1
        }
        for observer in observers.withLock({ $0 }) { observer(connection) }
    }

    func disconnected(_ connection: Libp2pConnection) {
        state.withLock { state in
            guard var list = state.connections[connection.remotePeer],
                let index = list.firstIndex(where: { $0 === connection })
            else { return }
            list.remove(at: index)
            state.connections[connection.remotePeer] = list.isEmpty ? nil : list
            state.count -= 1
        }
    }

    func existing(_ peer: PeerID) -> Libp2pConnection? {
        state.withLock { $0.connections[peer]?.first(where: { $0.isActive }) }
    }

    // MARK: Listening and dialling

    func listen(_ address: Multiaddr) async throws -> Multiaddr {
        let endpoint = try address.tcpEndpoint()
        var settings = TCPListener.Configuration(
            limits: configuration.limits, admission: limiter.configuration)
        settings.backlog = 128
        let listener = try await TCPListener.bind(
            on: endpoint, group: group, configuration: settings, limiter: limiter
        ) { [self] channel in
            let upgrade = ConnectionUpgrade(
                role: .listener, identity: identity, security: configuration.security)
            let driver = ConnectionDriver(
                host: self, upgrade: upgrade, established: channel.eventLoop.makePromise())
            try channel.pipeline.syncOperations.addHandler(driver)
        }
        listeners.withLock { $0.append(listener) }
        return listener.localAddress.map(Multiaddr.init(tcp:)) ?? address
    }

    func connect(_ address: Multiaddr) async throws -> Libp2pConnection {
        let endpoint = try address.tcpEndpoint()
        let expected = try address.peerID()
        if let expected, let connection = existing(expected) { return connection }
        let loop = group.next()
        let promise = loop.makePromise(of: Libp2pConnection.self)
        let upgrade = ConnectionUpgrade(
            role: .dialer, identity: identity, expected: expected, security: configuration.security)
        let channel = try await TCPDialer.connect(
            to: endpoint, on: loop, limits: configuration.limits, timeout: .seconds(10)
        ) { [self] channel in
            try channel.pipeline.syncOperations.addHandler(
                ConnectionDriver(host: self, upgrade: upgrade, established: promise))
        }.get()
        do {
            return try await promise.futureResult.get()
        } catch {
            try? await channel.close().get()
            throw error
        }
    }

    func close() async {
        for listener in listeners.withLock({ list in
            defer { list = [] }
            return list
        }) {
            await listener.close()
        }
        for connection in allConnections { await connection.close() }
    }

    // MARK: Streams

    /// Chooses the protocol of a stream the peer opened and runs its handler in a task.
    func serve(_ handle: StreamHandle, done: @escaping @Sendable () -> Void) {
        let supported = protocols
        Task {
            let stream: Libp2pStream
            do {
                stream = try await handle.negotiateInbound(
                    supported, timeout: configuration.negotiationTimeout)
            } catch {
                done()
                handle.reset()
                return
            }
            done()
            guard let handler = handlers.withLock({ $0[stream.protocolID] }) else {
                stream.reset()
                return
            }
            do {
                try await handler(stream)
            } catch Libp2pError.connectionClosed {
                return
            } catch {
                log("\(stream.protocolID) stream from \(stream.remotePeer): \(error)")
                stream.reset()
            }
        }
    }

    // MARK: Identify

    func ownIdentify(observed: Multiaddr?) -> Identify {
        Identify(
            protocolVersion: "ipfs/0.1.0", agentVersion: configuration.agentVersion,
            publicKey: identity.publicKey.encoded.bytes,
            listenAddresses: announceable + configuration.announce, observedAddress: observed,
            protocols: protocols)
    }

    /// The listen addresses worth telling peers: an unspecified bind address is not one.
    var announceable: [Multiaddr] {
        listenAddresses.filter { address in
            (try? address.tcpEndpoint().ip.isUnspecified) != true
        }
    }

    func serveIdentify(_ stream: Libp2pStream) async throws {
        try await stream.writeDelimited(ownIdentify(observed: stream.connection.remoteAddress).bytes)
        stream.closeWrite()
    }

    func identify(_ connection: Libp2pConnection) async throws -> Identify {
        let stream = try await connection.openStream([Identify.protocolID])
        stream.closeWrite()
        var message: [UInt8] = []
        // A long answer may come as several messages; protobuf merges them by concatenation.
        while let part = try await stream.readDelimited(limit: Identify.maxLength) {
            message += part
            guard message.count <= Identify.maxLength else {
                throw Libp2pError.messageTooLarge(message.count, limit: Identify.maxLength)
            }
        }
        let info: Identify
        do {
            info = try Identify(bytes: message)
        } catch {
            throw Libp2pError.malformed("identify: \(error)")
        }
        if info.publicKey != nil, info.key(matching: connection.remotePeer) == nil {
            throw Libp2pError.malformed("identify: the public key is not \(connection.remotePeer)'s")
        }
        peers.withLock { $0[connection.remotePeer] = info }
        return info
    }

    func receivePush(_ stream: Libp2pStream) async throws {
        guard let message = try await stream.readDelimited(limit: Identify.maxLength) else { return }
        let update: Identify
        do {
            update = try Identify(bytes: message)
        } catch {
            throw Libp2pError.malformed("identify push: \(error)")
        }
        let peer = stream.remotePeer
        peers.withLock { peers in
            var info = peers[peer] ?? Identify(protocolVersion: nil)
            if !update.protocols.isEmpty { info.protocols = update.protocols }
            if !update.listenAddresses.isEmpty { info.listenAddresses = update.listenAddresses }
            if let agent = update.agentVersion { info.agentVersion = agent }
            peers[peer] = info
        }
    }
}

extension Ping {
    /// Echoes every 32-byte ping until the peer closes the stream (ping spec).
    static func serve(_ stream: Libp2pStream) async throws {
        while true {
            var payload: [UInt8] = []
            while payload.count < size {
                guard let chunk = try await stream.read(max: size - payload.count) else {
                    stream.closeWrite()
                    return
                }
                payload += chunk
            }
            try await stream.write(payload)
        }
    }

    /// Sends 32 random bytes and times their echo.
    static func roundTrip(_ stream: Libp2pStream) async throws -> Duration {
        var generator = SystemRandomNumberGenerator()
        let payload = (0..<size).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let clock = ContinuousClock()
        let start = clock.now
        try await stream.write(payload)
        let echo = try await stream.read(exactly: size)
        guard echo == payload else {
            throw Libp2pError.malformed("ping: the echo differs from what was sent")
        }
        return clock.now - start
    }
}

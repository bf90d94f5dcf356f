import Multiformats
import NIOCore
import PeerCrypto
import PeerNet

/// An authenticated, multiplexed connection to one peer.
public final class Libp2pConnection: Sendable, Hashable, CustomStringConvertible {
    public let remotePeer: PeerID
    public let remoteKey: PublicKey
    public let security: SecurityProtocol
    public let muxer: String
    /// Whether this side dialled.
    public let isOutbound: Bool
    public let remoteAddress: Multiaddr?
    public let localAddress: Multiaddr?
    let channel: any Channel
    nonisolated(unsafe) let driver: ConnectionDriver
    let host: HostCore
    let closedPromise: EventLoopPromise<Void>

    init(
        channel: any Channel, driver: ConnectionDriver, remotePeer: PeerID, remoteKey: PublicKey,
        security: SecurityProtocol, muxer: String, role: ConnectionUpgrade.Role, host: HostCore
    ) {
        self.channel = channel
        self.driver = driver
        self.remotePeer = remotePeer
        self.remoteKey = remoteKey
        self.security = security
        self.muxer = muxer
        self.isOutbound = role == .dialer
        self.remoteAddress = channel.remoteAddress.flatMap(Multiaddr.init(socketAddress:))
        self.localAddress = channel.localAddress.flatMap(Multiaddr.init(socketAddress:))
        self.host = host
        self.closedPromise = channel.eventLoop.makePromise()
    }

    /// Opens a stream and agrees on the first of `protocols` the peer supports.
    public func openStream(_ protocols: [String]) async throws -> Libp2pStream {
        let driver = self.driver
        let id = try await channel.eventLoop.submit { try driver.open() }.get()
        let handle = StreamHandle(connection: self, id: id)
        do {
            return try await handle.negotiateOutbound(
                protocols, timeout: host.configuration.negotiationTimeout)
        } catch {
            handle.reset()
            throw error
        }
    }

    /// Closes the connection (every stream ends).
    public func close() async {
        try? await channel.close().get()
    }

    /// Completes when the connection has closed.
    public func closed() async {
        try? await closedPromise.futureResult.get()
    }

    public var isActive: Bool { channel.isActive }

    public var description: String {
        "\(remotePeer) via \(remoteAddress.map { "\($0)" } ?? "?") (\(security.rawValue), \(muxer))"
    }

    public static func == (lhs: Libp2pConnection, rhs: Libp2pConnection) -> Bool { lhs === rhs }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
}

/// The loop-side handle of a yamux stream: every call hops to the connection's event loop.
final class StreamHandle: Sendable {
    let connection: Libp2pConnection
    let id: UInt32

    init(connection: Libp2pConnection, id: UInt32) {
        self.connection = connection
        self.id = id
    }

    var loop: any EventLoop { connection.channel.eventLoop }
    var driver: ConnectionDriver { connection.driver }

    func read(max: Int) async throws -> [UInt8]? {
        let promise = loop.makePromise(of: [UInt8]?.self)
        let (driver, id) = (self.driver, self.id)
        loop.execute { driver.read(id, max: max, promise: promise) }
        return try await promise.futureResult.get()
    }

    func write(_ bytes: [UInt8]) async throws {
        let promise = loop.makePromise(of: Void.self)
        let (driver, id) = (self.driver, self.id)
        loop.execute { driver.write(id, bytes, promise: promise) }
        try await promise.futureResult.get()
    }

    func unread(_ bytes: [UInt8]) async {
        let (driver, id) = (self.driver, self.id)
        try? await loop.submit { driver.unread(id, bytes) }.get()
    }

    func closeWrite() {
        let (driver, id) = (self.driver, self.id)
        loop.execute { driver.closeWrite(id) }
    }

    func reset() {
        let (driver, id) = (self.driver, self.id)
        loop.execute { driver.reset(id) }
    }

    func release() {
        let (driver, id) = (self.driver, self.id)
        loop.execute { driver.release(id) }
    }

    /// The dialer's multistream-select on the stream.
    func negotiateOutbound(_ protocols: [String], timeout: Duration) async throws -> Libp2pStream {
        var dialer = MultistreamDialer(protocols: protocols)
        let hello = dialer.start()
        do {
            return try await negotiate(
                .dialer(dialer), first: hello, timeout: timeout, "choosing a protocol for a stream")
        } catch Libp2pError.negotiation(.noProtocol) {
            throw Libp2pError.protocolNotSupported(protocols)
        }
    }

    /// The listener's multistream-select on a stream the peer opened.
    func negotiateInbound(_ supported: [String], timeout: Duration) async throws -> Libp2pStream {
        try await negotiate(
            .listener(MultistreamListener(supported: supported)), first: [], timeout: timeout,
            "the peer choosing a protocol for its stream")
    }

    /// Either side's negotiation on the stream; bytes read past the protocol's name are put back.
    func negotiate(
        _ negotiation: MultistreamNegotiation, first: [UInt8], timeout: Duration, _ what: String
    ) async throws -> Libp2pStream {
        try await withDeadline(timeout, what) {
            var negotiation = negotiation
            if !first.isEmpty { try await self.write(first) }
            while true {
                guard let bytes = try await self.read(max: 4_096) else { throw Libp2pError.connectionClosed }
                let (replies, selected): ([[UInt8]], String?)
                do throws(MultistreamError) {
                    (replies, selected) = try negotiation.receive(bytes)
                } catch {
                    throw Libp2pError.negotiation(error)
                }
                for reply in replies { try await self.write(reply) }
                if let selected {
                    await self.unread(negotiation.remainder)
                    return Libp2pStream(handle: self, protocolID: selected)
                }
            }
        }
    }
}

/// Runs `body`, failing with ``Libp2pError/timedOut(_:)`` when it takes longer than `timeout`.
func withDeadline<T: Sendable>(
    _ timeout: Duration, _ what: String, _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    try await withThrowingTaskGroup(of: T.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: timeout)
            throw Libp2pError.timedOut(what)
        }
        defer { group.cancelAll() }
        return try await group.next()!
    }
}

/// A stream of one protocol on a libp2p connection (a yamux stream after multistream-select).
/// Reads return what has arrived; the peer may send more only as this side reads (yamux's
/// window), so an unread stream costs at most its window. Writes complete when the bytes are
/// handed to the socket, so a peer that does not read slows the writer instead of filling memory.
public final class Libp2pStream: Sendable {
    let handle: StreamHandle
    /// The protocol agreed for this stream.
    public let protocolID: String

    init(handle: StreamHandle, protocolID: String) {
        self.handle = handle
        self.protocolID = protocolID
    }

    /// A stream dropped by the application is closed on this side and forgotten once the peer
    /// closes its side too.
    deinit { handle.release() }

    public var connection: Libp2pConnection { handle.connection }
    public var remotePeer: PeerID { handle.connection.remotePeer }

    /// Up to `max` bytes, waiting for some; nil once the peer closed its side and all was read.
    public func read(max: Int = 64 << 10) async throws -> [UInt8]? {
        try await handle.read(max: max)
    }

    /// Exactly `count` bytes (an error if the stream ends first).
    public func read(exactly count: Int) async throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            guard let chunk = try await handle.read(max: count - out.count) else {
                throw Libp2pError.malformed("the stream ended after \(out.count) of \(count) bytes")
            }
            out += chunk
        }
        return out
    }

    /// Everything until the peer closes its side, refusing more than `limit` bytes.
    public func readAll(limit: Int) async throws -> [UInt8] {
        var out: [UInt8] = []
        while let chunk = try await handle.read(max: 64 << 10) {
            out += chunk
            guard out.count <= limit else { throw Libp2pError.messageTooLarge(out.count, limit: limit) }
        }
        return out
    }

    /// One varint-length-prefixed message (how libp2p's protobuf protocols frame messages),
    /// its length checked against `limit` before it is read; nil at a clean end of stream.
    public func readDelimited(limit: Int) async throws -> [UInt8]? {
        var prefix: [UInt8] = []
        while true {
            guard let byte = try await handle.read(max: 1) else {
                if prefix.isEmpty { return nil }
                throw Libp2pError.malformed("the stream ended inside a length prefix")
            }
            prefix += byte
            if byte[0] & 0x80 == 0 { break }
            guard prefix.count < 10 else { throw Libp2pError.malformed("a length prefix over 10 bytes") }
        }
        var offset = 0
        guard let length = try? Varint.decode(prefix, at: &offset) else {
            throw Libp2pError.malformed("a bad length prefix")
        }
        guard length <= UInt64(limit) else {
            throw Libp2pError.messageTooLarge(Int(clamping: length), limit: limit)
        }
        return try await read(exactly: Int(length))
    }

    /// Writes all of `bytes` (waiting for the peer's window as needed).
    public func write(_ bytes: [UInt8]) async throws {
        try await handle.write(bytes)
    }

    /// Writes `message` with its varint length prefix.
    public func writeDelimited(_ message: [UInt8]) async throws {
        try await handle.write(Varint.encode(UInt64(message.count)) + message)
    }

    /// Closes this side (FIN); reading goes on until the peer closes its side.
    public func closeWrite() { handle.closeWrite() }

    /// Ends the stream both ways at once (RST).
    public func reset() { handle.reset() }
}

extension Multiaddr {
    /// `/ip4/…/tcp/…` or `/ip6/…/tcp/…` for a TCP endpoint.
    public init(tcp endpoint: Endpoint) {
        self.init([
            endpoint.ip.isIPv6 ? .ip6(endpoint.ip.bytes) : .ip4(endpoint.ip.bytes), .tcp(endpoint.port),
        ])
    }

    /// The multiaddr of a NIO socket address (nil for a Unix socket).
    public init?(socketAddress address: SocketAddress) {
        guard let endpoint = Endpoint(address) else { return nil }
        self.init(tcp: endpoint)
    }

    /// The TCP endpoint this address names (`/ip4|ip6/…/tcp/…`, optionally `/p2p/…` after).
    public func tcpEndpoint() throws(Libp2pError) -> Endpoint {
        guard components.count >= 2, case .tcp(let port) = components[1] else {
            throw .badAddress("\(self) is not /ip4|ip6/…/tcp/…")
        }
        switch components[0] {
        case .ip4(let bytes), .ip6(let bytes):
            guard let ip = IPAddress(bytes: bytes) else { throw .badAddress("\(self): a bad IP address") }
            return Endpoint(ip: ip, port: port)
        default:
            throw .badAddress("\(self) is not /ip4|ip6/…/tcp/… (DNS names are not resolved here)")
        }
    }

    /// The peer ID of a trailing `/p2p/…` component.
    public func peerID() throws(Libp2pError) -> PeerID? {
        guard case .p2p(let bytes) = components.last else { return nil }
        do {
            return try PeerID(multihash: try Multihash(bytes: bytes))
        } catch {
            throw .badAddress("\(self): the /p2p/ component is not a peer ID")
        }
    }

    /// The address without a trailing `/p2p/…`.
    public var withoutPeer: Multiaddr {
        guard case .p2p = components.last else { return self }
        return Multiaddr(Array(components.dropLast()))
    }
}

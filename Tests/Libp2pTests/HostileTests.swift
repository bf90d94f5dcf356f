import Libp2p
import Multiformats
import NIOCore
import NIOPosix
import PeerCrypto
import PeerNet
import Testing

/// A libp2p client that does the real upgrade (Noise, yamux) and then writes whatever yamux
/// frames a test gives it: the hostile peer.
final class RawClient: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    var upgrade: ConnectionUpgrade
    var noise: NoiseTransport?
    let ready: EventLoopPromise<Void>
    let closed: EventLoopPromise<Void>
    var plaintext: [UInt8] = []

    init(identity: PrivateKey, loop: any EventLoop) {
        upgrade = ConnectionUpgrade(role: .dialer, identity: identity, security: [.noise])
        ready = loop.makePromise()
        closed = loop.makePromise()
    }

    func channelActive(context: ChannelHandlerContext) {
        perform(upgrade.start(), context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = Array(unwrapInboundIn(data).readableBytesView)
        if var transport = noise {
            plaintext += (try? transport.open(bytes)) ?? []
            noise = transport
            return
        }
        do {
            perform(try upgrade.receive(bytes), context)
        } catch {
            ready.fail(error)
            context.close(promise: nil)
        }
    }

    func perform(_ actions: [ConnectionUpgrade.Action], _ context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .send(let bytes):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: bytes)), promise: nil)
            case .startTLS: break
            case .established(let upgraded):
                noise = upgraded.noise
                ready.succeed(())
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        ready.fail(Libp2pError.connectionClosed)
        closed.succeed(())
    }

    /// Encrypts and sends yamux bytes.
    func send(_ frames: [UInt8], on channel: any Channel) -> EventLoopFuture<Void> {
        channel.eventLoop.flatSubmit {
            guard var transport = self.noise, let sealed = try? transport.seal(frames) else {
                return channel.eventLoop.makeSucceededVoidFuture()
            }
            self.noise = transport
            return channel.writeAndFlush(ByteBuffer(bytes: sealed))
        }
    }

    static func connect(to address: Multiaddr) async throws -> (RawClient, any Channel) {
        let loop = HostTests.group.next()
        let client = RawClient(identity: try PrivateKey.generate(), loop: loop)
        let channel = try await ClientBootstrap(group: loop)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(client)
                }
            }
            .connect(to: try address.tcpEndpoint().socketAddress).get()
        try await client.ready.futureResult.get()
        return (client, channel)
    }
}

@Suite("libp2p host against hostile peers")
struct HostileTests {
    /// A server, and an honest client that must still be served while the hostile one acts.
    static func setUp() async throws -> (server: Libp2pHost, honest: Libp2pHost, address: Multiaddr) {
        let server = try await HostTests.host()
        let honest = try await HostTests.host()
        return (server, honest, try #require(server.listenAddresses.first))
    }

    static func honestPing(_ honest: Libp2pHost, _ address: Multiaddr) async throws {
        let connection = try await honest.connect(address)
        #expect(try await honest.ping(connection, count: 2).count == 2)
    }

    @Test(
        "a peer that opens streams without end gets them refused (RST) past the caps; an honest peer still pings"
    )
    func streamFlood() async throws {
        let (server, honest, address) = try await Self.setUp()
        defer {
            Task {
                await server.close()
                await honest.close()
            }
        }
        let (client, channel) = try await RawClient.connect(to: address)
        // 1,000 streams opened at once and never used: past the accept backlog (256) and the
        // streams still choosing a protocol (64), each is reset.
        var frames: [UInt8] = []
        for index in 0..<1_000 {
            frames += YamuxFrame(.windowUpdate, flags: .syn, stream: UInt32(2 * index + 1), length: 0).bytes
        }
        try await client.send(frames, on: channel).get()
        let resets = try await eventually(seconds: 20) {
            let received = try await channel.eventLoop.submit { client.plaintext }.get()
            return Self.resets(in: received) >= 1_000 - 64 ? true : nil
        }
        #expect(resets == true)
        try await Self.honestPing(honest, address)
        #expect(server.connections.count == 2)
    }

    /// Counts the yamux frames with RST among whole frames.
    static func resets(in bytes: [UInt8]) -> Int {
        var count = 0
        var offset = 0
        while offset + 12 <= bytes.count, let frame = try? YamuxFrame.header(bytes[offset..<offset + 12]) {
            if frame.flags.contains(.rst) { count += 1 }
            offset += 12 + (frame.kind == .data ? Int(frame.length) : 0)
        }
        return count
    }

    @Test("a window update that overflows the send window ends the session with a go-away")
    func windowOverflow() async throws {
        let (server, honest, address) = try await Self.setUp()
        defer {
            Task {
                await server.close()
                await honest.close()
            }
        }
        let (client, channel) = try await RawClient.connect(to: address)
        var frames = YamuxFrame(.windowUpdate, flags: .syn, stream: 1, length: 0).bytes
        frames += YamuxFrame(.windowUpdate, stream: 1, length: UInt32.max).bytes
        try await client.send(frames, on: channel).get()
        try await withDeadline(.seconds(20)) { try await client.closed.futureResult.get() }
        // The server said why before closing: a go-away with the protocol-error code.
        let goAway = YamuxFrame(.goAway, length: 1).bytes
        let received = try await channel.eventLoop.submit { client.plaintext }.get()
        #expect(received.suffix(goAway.count) == goAway[...])
        try await Self.honestPing(honest, address)
    }

    @Test("data past the receive window (a peer ignoring flow control) is refused before it is buffered")
    func windowExceeded() async throws {
        let (server, honest, address) = try await Self.setUp()
        defer {
            Task {
                await server.close()
                await honest.close()
            }
        }
        let (client, channel) = try await RawClient.connect(to: address)
        var frames = YamuxFrame(.windowUpdate, flags: .syn, stream: 1, length: 0).bytes
        // A header announcing 1 MiB into a 256 KiB window: no payload needs to follow.
        frames += [0, 0, 0, 0, 0, 0, 0, 1, 0, 0x10, 0, 0]
        try await client.send(frames, on: channel).get()
        try await withDeadline(.seconds(20)) { try await client.closed.futureResult.get() }
        try await Self.honestPing(honest, address)
    }

    @Test("a connection that never completes its upgrade is closed at the deadline")
    func silentConnection() async throws {
        var configuration = Libp2pHost.Configuration()
        configuration.limits.handshakeTimeout = .milliseconds(500)
        let server = Libp2pHost(
            identity: try PrivateKey.generate(), configuration: configuration, group: HostTests.group)
        defer { Task { await server.close() } }
        let address = try await server.listen(try Multiaddr("/ip4/127.0.0.1/tcp/0"))
        let loop = HostTests.group.next()
        let channel = try await ClientBootstrap(group: loop).connect(
            to: try address.tcpEndpoint().socketAddress
        ).get()
        try await withDeadline(.seconds(30)) { try await channel.closeFuture.get() }
    }
}

/// Fails with a timeout when `body` takes longer than `limit`.
func withDeadline(_ limit: Duration, _ body: @escaping @Sendable () async throws -> Void) async throws {
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: limit)
            throw Libp2pError.timedOut("the test's deadline")
        }
        defer { group.cancelAll() }
        try await group.next()
    }
}

/// Polls `check` every 50 ms until it gives a value or `seconds` pass (then nil).
func eventually<T: Sendable>(seconds: Double, _ check: @escaping @Sendable () async throws -> T?) async throws
    -> T?
{
    let clock = ContinuousClock()
    let deadline = clock.now + .milliseconds(Int(seconds * 1_000))
    while clock.now < deadline {
        if let value = try await check() { return value }
        try await Task.sleep(for: .milliseconds(50))
    }
    return nil
}

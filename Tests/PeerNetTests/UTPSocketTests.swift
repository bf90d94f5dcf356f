import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import PeerNet

/// Counts the bytes a stream receives and echoes a digest of them when the peer finishes.
private final class Sink: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let shared: Shared
    init(_ shared: Shared) { self.shared = shared }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        shared.received.withLock { $0 += buffer.readableBytesView }
    }
    func channelInactive(context: ChannelHandlerContext) {
        shared.closed.withLock { $0 = true }
        context.fireChannelInactive()
    }
}

/// Takes the datagrams uTP passes on (a DHT's handler would be here).
private final class Others: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let shared: Shared
    init(_ shared: Shared) { self.shared = shared }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        shared.others.withLock { $0.append(String(buffer: envelope.data)) }
    }
}

/// Results shared with the event loop.
final class Shared: Sendable {
    let received = Mutex<[UInt8]>([])
    let closed = Mutex<Bool>(false)
    let others = Mutex<[String]>([])
}

@Suite("uTP sockets on loopback", .serialized)
struct UTPSocketTests {
    static func waitFor(_ seconds: Double, _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test("8 MiB over uTP between two sockets arrive whole; a DHT datagram on the same port passes on")
    func transfer() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let shared = Shared()
        let listening = UTPSocket { channel in
            try channel.pipeline.syncOperations.addHandler(Sink(shared))
        }
        let server = try await UDPEndpoint.bind(on: Endpoint("127.0.0.1:0")!, loop: loop) { channel in
            try channel.pipeline.syncOperations.addHandler(listening)
            try channel.pipeline.syncOperations.addHandler(Others(shared))
        }
        defer { server.close(promise: nil) }
        let dialing = UTPSocket()
        let client = try await UDPEndpoint.bind(on: Endpoint("127.0.0.1:0")!, loop: loop) { channel in
            try channel.pipeline.syncOperations.addHandler(dialing)
        }
        defer { client.close(promise: nil) }
        let address = try #require(server.localAddress)
        // A KRPC ping reaches the handler after uTP.
        try await client.writeAndFlush(
            AddressedEnvelope(
                remoteAddress: address,
                data: ByteBuffer(string: "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe"))
        ).get()
        var payload = [UInt8](repeating: 0, count: 8 << 20)
        var random = SplitMix64(seed: 11)
        for index in payload.indices { payload[index] = UInt8(truncatingIfNeeded: random.next()) }
        let stream = try await dialing.connect(to: address) { _ in }.get()
        let started = ContinuousClock.now
        try await stream.writeAndFlush(ByteBuffer(bytes: payload)).get()
        try await stream.close().get()
        let arrived = try await Self.waitFor(30) { shared.received.withLock { $0.count } >= payload.count }
        let elapsed = ContinuousClock.now - started
        #expect(arrived, "\(shared.received.withLock { $0.count }) of \(payload.count) bytes")
        #expect(shared.received.withLock { $0 } == payload)
        #expect(
            try await Self.waitFor(10) { shared.closed.withLock { $0 } },
            "the FIN closed the accepted channel")
        #expect(shared.others.withLock { $0 }.count == 1)
        print("uTP loopback: 8 MiB in \(elapsed)")
    }

    @Test("a connect to a port where nobody speaks uTP fails within the SYN retries")
    func connectFails() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let dialing = UTPSocket()
        let client = try await UDPEndpoint.bind(on: Endpoint("127.0.0.1:0")!, loop: loop) { channel in
            try channel.pipeline.syncOperations.addHandler(dialing)
        }
        defer { client.close(promise: nil) }
        // A socket that reads and drops everything.
        let silent = try await UDPEndpoint.bind(on: Endpoint("127.0.0.1:0")!, loop: loop) { _ in }
        defer { silent.close(promise: nil) }
        let started = ContinuousClock.now
        await #expect(throws: UTPError.self) {
            _ = try await dialing.connect(to: try #require(silent.localAddress)) { _ in }.get()
        }
        #expect(ContinuousClock.now - started < .seconds(4))
    }
}

import Kademlia
import MainlineDHT
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PeerNet
import Testing

/// The NIO driver on real sockets: IPv6 nodes on ::1 (BEP 32) bootstrap from each other, and a
/// peer announced by one is found by another through `nodes6` and compact IPv6 peers.
struct DHTServiceTests {
    static func node(_ address: IPAddress) async throws -> DHTService {
        var options = DHTServiceOptions()
        options.address = address
        options.port = 0
        return try await DHTService.start(options)
    }

    @Test("three IPv6 nodes on ::1: bootstrap, announce_peer, get_peers")
    func ipv6() async throws {
        let loopback6 = [UInt8](repeating: 0, count: 15) + [1]
        let a = try await Self.node(.loopbackV6)
        let b = try await Self.node(.loopbackV6)
        let c = try await Self.node(.loopbackV6)
        _ = await b.bootstrap([Endpoint(ip: .loopbackV6, port: a.port)])
        _ = await c.bootstrap([Endpoint(ip: .loopbackV6, port: b.port)])
        #expect(await c.routingTableSize == 2, "c learnt a through b's nodes6")
        let hash = NodeID(bytes: Array(repeating: 0x66, count: 20))!
        let announced = await b.run(.getPeers(hash, announcePort: 6_999, impliedPort: false))
        #expect(announced.stored == 2)
        let found = await c.run(.getPeers(hash, announcePort: nil, impliedPort: false))
        #expect(found.peers == [Endpoint(ip: loopback6, port: 6_999)!], "\(found)")
        for node in [a, b, c] { await node.stop() }
        // A stopped node answers at once, with nothing.
        #expect(await a.run(.findNode(hash)).closest.isEmpty)
    }
}

@Suite("DHT service datagrams")
struct DHTDatagramTests {
    @Test("a valid datagram larger than NIO's default 2,048-byte read is read whole and answered")
    func largeDatagram() async throws {
        var options = DHTServiceOptions()
        options.address = .loopbackV4
        options.port = 0
        let service = try await DHTService.start(options)
        defer { Task { await service.stop() } }
        // A ping whose arguments carry a 3,000-byte key a node must ignore (BEP 5 allows unknown
        // keys); cut at 2,048 bytes it would be undecodable and dropped.
        let padding = String(repeating: "p", count: 3_000)
        let query = Array(
            "d1:ad2:id20:abcdefghij01234567895:zzzzz3000:\(padding)e1:q4:ping1:t2:aa1:y1:qe".utf8)
        #expect(query.count > 3_000)
        let socket = try await DatagramBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { socket.close(promise: nil) }
        let replies = ReplyBox()
        try await socket.pipeline.addHandler(replies).get()
        try await socket.writeAndFlush(
            AddressedEnvelope(
                remoteAddress: Endpoint(ip: .loopbackV4, port: service.port).socketAddress,
                data: ByteBuffer(bytes: query))
        ).get()
        let deadline = ContinuousClock.now + .seconds(30)
        while replies.count == 0, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(replies.count == 1, "no answer to a 3 KB ping")
    }
}

final class ReplyBox: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    private let lock = NIOLock()
    private var received = 0
    var count: Int { lock.withLock { received } }
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lock.withLock { received += 1 }
    }
}

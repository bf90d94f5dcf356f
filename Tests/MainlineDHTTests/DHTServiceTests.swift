import Kademlia
import MainlineDHT
import PeerNet
import Testing

/// The NIO driver on real sockets: IPv6 nodes on ::1 (BEP 32) bootstrap from each other, and a
/// peer announced by one is found by another through `nodes6` and compact IPv6 peers.
struct DHTServiceTests {
    static func node(_ host: String) async throws -> DHTService {
        var options = DHTServiceOptions()
        options.host = host
        options.port = 0
        return try await DHTService.start(options)
    }

    @Test("three IPv6 nodes on ::1: bootstrap, announce_peer, get_peers")
    func ipv6() async throws {
        let loopback6 = [UInt8](repeating: 0, count: 15) + [1]
        let a = try await Self.node("::1")
        let b = try await Self.node("::1")
        let c = try await Self.node("::1")
        _ = await b.bootstrap([Endpoint(ip: loopback6, port: UInt16(a.port))!])
        _ = await c.bootstrap([Endpoint(ip: loopback6, port: UInt16(b.port))!])
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

import Crypto
import Kademlia
import MainlineDHT
import PeerNet
import TestSupport
import Testing

struct DHTResponderTests {
    let own = NodeID(bytes: Array(repeating: 0xAA, count: 20))!
    let hash = NodeID(bytes: Array(repeating: 0x11, count: 20))!

    func query(_ query: KRPCQuery, from sender: UInt8, readOnly: Bool = false) -> KRPCMessage {
        var message = KRPCMessage(
            transactionID: [sender, 1], senderID: NodeID(bytes: Array(repeating: sender, count: 20)),
            body: .query(query))
        message.readOnly = readOnly
        return message
    }

    func address(_ last: UInt8, port: UInt16 = 6881) -> Endpoint {
        Endpoint(ip: [10, 0, 0, last], port: port)!
    }

    @Test func tokensGateAnnouncesAndPeersComeBack() throws {
        var node = DHTResponder(ownID: own, secret: SymmetricKey(size: .bits256), now: .zero)
        let pingReply = node.handle(query(.ping, from: 1), from: address(1), now: .seconds(1))
        let ping = try #require(pingReply)
        #expect(ping.senderID == own && ping.requesterAddress == address(1) && ping.transactionID == [1, 1])
        #expect(node.routing.count == 1)
        let firstReply = node.handle(
            query(.getPeers(infoHash: hash), from: 2), from: address(2), now: .seconds(2))
        let first = try #require(firstReply)
        guard case .response(let nodes) = first.body, let token = nodes.token else {
            Issue.record("no token")
            return
        }
        #expect(nodes.values.isEmpty && Set(nodes.nodes.map(\.address)) == [address(1), address(2)])
        // A token is bound to the asker's IP.
        let stolen = node.handle(
            query(.announcePeer(infoHash: hash, port: 7000, token: token, impliedPort: false), from: 3),
            from: address(3), now: .seconds(3))
        #expect(stolen?.body == .error(code: 203, message: "bad token"))
        let announced = node.handle(
            query(.announcePeer(infoHash: hash, port: 7000, token: token, impliedPort: false), from: 2),
            from: address(2), now: .seconds(3))
        guard case .response = announced?.body else {
            Issue.record("announce refused: \(String(describing: announced))")
            return
        }
        _ = node.handle(
            query(.announcePeer(infoHash: hash, port: 0, token: token, impliedPort: true), from: 2),
            from: address(2, port: 9999), now: .seconds(4))
        let secondReply = node.handle(
            query(.getPeers(infoHash: hash), from: 4), from: address(4), now: .seconds(5))
        let second = try #require(secondReply)
        guard case .response(let peers) = second.body else { return }
        #expect(Set(peers.values) == [address(2, port: 7000), address(2, port: 9999)])
        // Two rotations later the token is stale.
        node.rotateSecret(SymmetricKey(size: .bits256))
        node.rotateSecret(SymmetricKey(size: .bits256))
        let late = node.handle(
            query(.announcePeer(infoHash: hash, port: 7001, token: token, impliedPort: false), from: 2),
            from: address(2), now: .seconds(700))
        #expect(late?.body == .error(code: 203, message: "bad token"))
        // Peers expire after their time to live.
        #expect(node.storedPeers(hash, now: .seconds(5 + 30 * 60)).isEmpty)
    }

    @Test func readOnlyQueriersStayOutOfTheTableAndFloodsAreCut() {
        var node = DHTResponder(ownID: own, secret: SymmetricKey(size: .bits256), now: .zero)
        _ = node.handle(query(.ping, from: 5, readOnly: true), from: address(5), now: .seconds(1))
        #expect(node.routing.count == 0)
        var answered = 0
        for _ in 0..<200 where node.handle(query(.ping, from: 6), from: address(6), now: .seconds(2)) != nil {
            answered += 1
        }
        #expect(answered == 50 && node.droppedQueries == 150)  // the burst, then nothing
        let other = node.handle(query(.ping, from: 7), from: address(7), now: .seconds(2))
        let refilled = node.handle(query(.ping, from: 6), from: address(6), now: .seconds(3))
        #expect(other != nil && refilled != nil)
    }

    @Test func storedPeersPerTorrentAreCapped() throws {
        var configuration = DHTConfiguration()
        configuration.maxPeersPerTorrent = 100
        configuration.queryBurst = 10_000
        var node = DHTResponder(
            ownID: own, secret: SymmetricKey(size: .bits256), configuration: configuration, now: .zero)
        let replyReply = node.handle(
            query(.getPeers(infoHash: hash), from: 2), from: address(2), now: .seconds(1))
        let reply = try #require(replyReply)
        guard case .response(let first) = reply.body, let token = first.token else { return }
        for port in 1...300 {
            _ = node.handle(
                query(
                    .announcePeer(infoHash: hash, port: UInt16(port), token: token, impliedPort: false),
                    from: 2),
                from: address(2), now: .seconds(Int64(port)))
        }
        let stored = node.storedPeers(hash, now: .seconds(301))
        #expect(stored.count == 100 && stored.first?.port == 300 && stored.last?.port == 201)
    }
}

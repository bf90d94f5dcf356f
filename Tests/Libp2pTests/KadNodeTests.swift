import Kademlia
import Libp2p
import Multiformats
import PeerCrypto
import TestSupport
import Testing

@Suite("kad-dht node state (no I/O)")
struct KadNodeTests {
    static func peer() throws -> PeerID { try PrivateKey.generate(.ed25519).publicKey.peerID }
    static let ip: [UInt8] = [127, 0, 0, 1]
    static func address() throws -> Multiaddr { try Multiaddr("/ip4/127.0.0.1/tcp/4001") }

    @Test("FIND_NODE names the k closest servers but not the asker; clients stay out of the table")
    func findNode() throws {
        var node = KadNode(ownPeer: try Self.peer(), now: .zero)
        let servers = try (0..<40).map { _ in try Self.peer() }
        for peer in servers { node.learned(peer, addresses: [try Self.address()], server: true, now: .zero) }
        let client = try Self.peer()
        node.learned(client, addresses: [try Self.address()], server: false, now: .zero)
        #expect(!node.routing.contacts.contains { $0.address == client })

        let target = try Self.peer()
        let asker = servers[0]
        let response = try #require(
            try node.respond(
                to: KadMessage(kind: .findNode, key: target.multihash.bytes), from: asker, source: Self.ip,
                now: .seconds(1)))
        #expect(response.closerPeers.count == min(20, node.routing.count - 1))
        #expect(!response.closerPeers.contains { $0.id == asker })
        let expected = node.routing.contacts.map(\.address).filter { $0 != asker }
            .sorted { KadID.kad($0).distance(to: .kad(target)) < KadID.kad($1).distance(to: .kad(target)) }
            .prefix(20)
        #expect(response.closerPeers.map(\.id) == Array(expected))
        let address = try Self.address()
        #expect(response.closerPeers.allSatisfy { $0.addresses == [address] })

        // Asked for itself: itself alone.
        let me = try #require(
            try node.respond(
                to: KadMessage(kind: .findNode, key: node.ownPeer.multihash.bytes), from: asker,
                source: Self.ip,
                now: .seconds(1)))
        #expect(me.closerPeers.map(\.id) == [node.ownPeer])
    }

    @Test("ADD_PROVIDER records only the sender; GET_PROVIDERS returns it until the record expires")
    func providers() throws {
        var node = KadNode(ownPeer: try Self.peer(), now: .zero)
        let key = Multihash.hash(Array("content".utf8), with: .sha256).bytes
        let sender = try Self.peer()
        let other = try Self.peer()
        let add = KadMessage(
            kind: .addProvider, key: key,
            providerPeers: [
                KadMessage.Peer(id: other, addresses: [try Self.address()]),
                KadMessage.Peer(id: sender, addresses: [try Self.address()]),
            ])
        #expect(try node.respond(to: add, from: sender, source: Self.ip, now: .zero) == nil)
        let get = KadMessage(kind: .getProviders, key: key)
        let found = try #require(try node.respond(to: get, from: other, source: Self.ip, now: .seconds(60)))
        #expect(found.providerPeers.map(\.id) == [sender])
        #expect(found.providerPeers.first?.addresses == [try Self.address()])

        let later = KadNode.Configuration().providerValidity + .seconds(1)
        let expired = try #require(try node.respond(to: get, from: other, source: Self.ip, now: later))
        #expect(expired.providerPeers.isEmpty)

        #expect(throws: KadError.self) {
            try node.respond(
                to: KadMessage(kind: .addProvider, key: [1, 2, 3]), from: sender, source: Self.ip, now: .zero)
        }
    }

    @Test("providers per key and keys are capped; the oldest provider makes room")
    func caps() throws {
        var configuration = KadNode.Configuration()
        configuration.maxProvidersPerKey = 3
        configuration.maxProviderKeys = 2
        var node = KadNode(ownPeer: try Self.peer(), configuration: configuration, now: .zero)
        let key = Multihash.hash([1], with: .sha256).bytes
        let peers = try (0..<5).map { _ in try Self.peer() }
        for (index, peer) in peers.enumerated() {
            node.addProvider(key, peer, addresses: [try Self.address()], now: .seconds(Int64(index)))
        }
        #expect(Set(node.providers(of: key, now: .seconds(10)).map(\.id)) == Set(peers.suffix(3)))
        let second = node.addProvider(
            Multihash.hash([2], with: .sha256).bytes, peers[0], addresses: [], now: .zero)
        let third = node.addProvider(
            Multihash.hash([3], with: .sha256).bytes, peers[0], addresses: [], now: .zero)
        #expect(second)
        #expect(!third, "a third key when two may be stored")
    }

    @Test("PUT_VALUE stores a valid /pk/ record and echoes it; GET_VALUE returns it; a bad one is refused")
    func values() throws {
        var node = KadNode(ownPeer: try Self.peer(), now: .zero)
        let identity = try PrivateKey.generate(.ed25519)
        let key = KadRecordValidator.publicKeyKey(identity.publicKey.peerID)
        let record = KadMessage.Record(key: key, value: identity.publicKey.encoded.bytes)
        let put = KadMessage(kind: .putValue, key: key, record: record)
        #expect(try node.respond(to: put, from: try Self.peer(), source: Self.ip, now: .zero) == put)
        let got = try #require(
            try node.respond(
                to: KadMessage(kind: .getValue, key: key), from: try Self.peer(), source: Self.ip, now: .zero)
        )
        #expect(got.record?.value == record.value)

        let wrong = KadMessage.Record(
            key: key, value: try PrivateKey.generate(.ed25519).publicKey.encoded.bytes)
        #expect(throws: KadError.self) {
            try node.respond(
                to: KadMessage(kind: .putValue, key: key, record: wrong), from: try Self.peer(),
                source: Self.ip,
                now: .zero)
        }
        let mismatched = KadMessage(kind: .putValue, key: Array("/pk/x".utf8), record: record)
        #expect(throws: KadError.self) {
            try node.respond(to: mismatched, from: try Self.peer(), source: Self.ip, now: .zero)
        }
    }

    @Test("a peer over its request rate, or an IP over its own, is refused until tokens come back")
    func rateLimit() throws {
        var configuration = KadNode.Configuration()
        configuration.requestsPerSecond = 10
        configuration.requestBurst = 5
        configuration.requestsPerSecondPerIP = 10
        configuration.requestBurstPerIP = 8
        var node = KadNode(ownPeer: try Self.peer(), configuration: configuration, now: .zero)
        let ping = KadMessage(kind: .ping)
        let peer = try Self.peer()
        for _ in 0..<5 { _ = try node.respond(to: ping, from: peer, source: Self.ip, now: .zero) }
        #expect(throws: KadError.rateLimited) {
            try node.respond(to: ping, from: peer, source: Self.ip, now: .zero)
        }
        // Another peer on that IP still may, until the IP's burst is spent too (the refused
        // request above took the IP's sixth token).
        let neighbour = try Self.peer()
        _ = try node.respond(to: ping, from: neighbour, source: Self.ip, now: .zero)
        _ = try node.respond(to: ping, from: neighbour, source: Self.ip, now: .zero)
        #expect(throws: KadError.rateLimited) {
            try node.respond(to: ping, from: neighbour, source: Self.ip, now: .zero)
        }
        // A peer from elsewhere is not affected; tokens come back with time.
        _ = try node.respond(to: ping, from: try Self.peer(), source: [10, 0, 0, 2], now: .zero)
        _ = try node.respond(to: ping, from: peer, source: Self.ip, now: .milliseconds(250))
    }
}

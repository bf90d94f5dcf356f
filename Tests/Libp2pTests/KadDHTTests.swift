import Libp2p
import Multiformats
import NIOPosix
import PeerCrypto
import TestSupport
import Testing

@Suite("kad-dht on loopback", .serialized)
struct KadDHTTests {
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)

    static func node(server: Bool = true) async throws -> (Libp2pHost, KadDHT) {
        let host = Libp2pHost(identity: try PrivateKey.generate(.ed25519), group: group)
        var configuration = KadDHT.Configuration()
        configuration.node.server = server
        configuration.requestTimeout = .seconds(30)
        let dht = KadDHT(host: host, configuration: configuration)
        await dht.start()
        try await host.listen(try Multiaddr("/ip4/127.0.0.1/tcp/0"))
        return (host, dht)
    }

    @Test(
        "six nodes bootstrapped from one: providers found by CID alone, a peer found by ID, a /pk/ record stored and read"
    )
    func network() async throws {
        var nodes: [(Libp2pHost, KadDHT)] = []
        for _ in 0..<6 { nodes.append(try await Self.node()) }
        let client = try await Self.node(server: false)
        let all = nodes + [client]
        defer {
            Task {
                for (host, dht) in all {
                    await dht.stop()
                    await host.close()
                }
            }
        }
        let first = try #require(nodes[0].0.listenAddresses.first)
        for (_, dht) in nodes.dropFirst() { await dht.bootstrap([first]) }
        #expect(await client.1.bootstrap([first]) > 0)
        // Every server learns the others through the first one's answers.
        #expect(await nodes[5].1.routingTableSize >= 2)
        // The client is in no server's routing table (identify does not list the protocol).
        for (_, dht) in nodes {
            #expect(await !dht.routingTablePeers.contains(client.0.peerID))
        }

        let content = Multihash.hash(Array("a block".utf8), with: .sha256)
        let told = await nodes[3].1.provide(content)
        #expect(told >= 1)
        let providers = await client.1.findProviders(content)
        #expect(providers.map(\.id) == [nodes[3].0.peerID])
        #expect(providers.first?.addresses.isEmpty == false)

        let addresses = try await client.1.findPeer(nodes[4].0.peerID)
        #expect(addresses.contains(try #require(nodes[4].0.listenAddresses.first).withoutPeer))

        let identity = nodes[2].0.identity.publicKey
        let record = KadMessage.Record(
            key: KadRecordValidator.publicKeyKey(identity.peerID), value: identity.encoded.bytes)
        #expect(try await nodes[2].1.putValue(record) >= 1)
        let got = try await client.1.getValue(record.key)
        #expect(got.value == identity.encoded.bytes)

        let nobody = Multihash.hash(Array("nobody has this".utf8), with: .sha256)
        #expect(await client.1.findProviders(nobody).isEmpty)
    }
}

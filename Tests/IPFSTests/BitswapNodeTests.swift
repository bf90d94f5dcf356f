import IPFS
import Libp2p
import Multiformats
import PeerCrypto
import TestSupport
import Testing

/// Bitswap nodes on real libp2p hosts over loopback TCP (Noise, yamux).
@Suite("Bitswap over libp2p")
struct BitswapNodeTests {
    static func node(
        _ store: MemoryBlockstore, configuration: BitswapNode.Configuration = .init()
    ) async throws -> (Libp2pHost, BitswapNode, Multiaddr) {
        let host = Libp2pHost(identity: try PrivateKey.generate(.ed25519))
        let node = BitswapNode(host: host, store: store, configuration: configuration)
        node.start()
        try await host.listen(try Multiaddr("/ip4/127.0.0.1/tcp/0"))
        return (host, node, try #require(host.listenAddresses.first))
    }

    @Test(
        "a node fetches a 3 MiB file's DAG from two peers (one with nothing), verified and stored; the seeder served it"
    )
    func fetchFromTwo() async throws {
        let content = SeededGenerator.bytes(3 << 20, seed: 15)
        let full = MemoryBlockstore()
        let root = try UnixFSImporter(options: importOptions(), sink: full).addFile(bytes: content).cid
        let (seedHost, seeder, seedAddress) = try await Self.node(full)
        let (emptyHost, _, emptyAddress) = try await Self.node(MemoryBlockstore())
        let local = MemoryBlockstore()
        let (host, node, _) = try await Self.node(local)
        let connections = [try await host.connect(emptyAddress), try await host.connect(seedAddress)]
        let progress = try await node.fetch(root, from: connections)
        #expect(progress.fetchedBlocks == 13)  // twelve 256 KiB leaves and the root
        var out: [UInt8] = []
        try UnixFSExporter(source: local).cat(root) { out += $0 }
        #expect(out == content)
        #expect(await seeder.servedBlocks == 13)
        // Fetched again: everything is here, nothing is asked.
        #expect(try await node.fetch(root).fetchedBlocks == 0)
        for h in [host, seedHost, emptyHost] { await h.close() }
    }

    @Test("a block no peer has fails the fetch with the CID, promptly (DONT_HAVE)")
    func unavailable() async throws {
        let (emptyHost, _, emptyAddress) = try await Self.node(MemoryBlockstore())
        // Without the DONT_HAVE the fetch would wait out this timeout; the bound below is far
        // under it, and far over a loopback round trip even beside the parallel suites.
        var configuration = BitswapNode.Configuration()
        configuration.session.timeout = .seconds(120)
        let (host, node, _) = try await Self.node(MemoryBlockstore(), configuration: configuration)
        let missing = try CID("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy")
        let connection = try await host.connect(emptyAddress)
        let clock = ContinuousClock()
        let started = clock.now
        await #expect(throws: IPFSError.unavailable(missing, peers: 1)) {
            try await node.fetch(missing, from: [connection], follow: false)
        }
        #expect(clock.now - started < .seconds(40))
        await #expect(throws: IPFSError.unavailable(missing, peers: 0)) {
            try await BitswapNode(host: emptyHost, store: MemoryBlockstore()).fetch(missing)
        }
        await host.close()
        await emptyHost.close()
    }

    @Test(
        "a peer that answers a want with another block is dropped, and the fetch completes from an honest one"
    )
    func wrongBlock() async throws {
        let content = SeededGenerator.bytes(1 << 20, seed: 16)
        let full = MemoryBlockstore()
        let root = try UnixFSImporter(options: importOptions(), sink: full).addFile(bytes: content).cid
        let (seedHost, _, seedAddress) = try await Self.node(full)
        // The liar answers every message with a block nobody asked for.
        let liar = Libp2pHost(identity: try PrivateKey.generate(.ed25519))
        liar.handle(BitswapMessage.Version.v120.protocolID) { stream in
            while try await stream.readDelimited(limit: 4 << 20) != nil {
                let reply = try await stream.connection.openStream([BitswapMessage.Version.v120.protocolID])
                let junk = BitswapMessage.Block(
                    cid: CID(v1: .raw, Multihash.hash([1, 2, 3])), data: [1, 2, 3])
                try await reply.writeDelimited(BitswapMessage(blocks: [junk]).encoded())
            }
        }
        try await liar.listen(try Multiaddr("/ip4/127.0.0.1/tcp/0"))
        let local = MemoryBlockstore()
        let (host, node, _) = try await Self.node(local)
        let liarConnection = try await host.connect(try #require(liar.listenAddresses.first))
        let connections = [liarConnection, try await host.connect(seedAddress)]
        let progress = try await node.fetch(root, from: connections)
        #expect(progress.fetchedBlocks == 5)
        #expect(await node.droppedPeers == 1)
        await liarConnection.closed()  // the liar's connection is closed
        var out: [UInt8] = []
        try UnixFSExporter(source: local).cat(root) { out += $0 }
        #expect(out == content)
        for h in [host, seedHost, liar] { await h.close() }
    }
}

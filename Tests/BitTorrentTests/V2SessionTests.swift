import Bencode
import Crypto
import PeerNet
import TestSupport
import Testing

@testable import BitTorrent

/// A v2-only torrent (BEP 52) of one file over random bytes, made in memory, with its piece layers.
func makeV2Torrent(size: Int, pieceLength: Int, seed: UInt64) throws -> (
    InfoDictionary, [UInt8], [[UInt8]: [UInt8]]
) {
    let payload = SeededGenerator.bytes(size, seed: seed)
    let leaves = stride(from: 0, to: size, by: MerkleTree.blockSize).map {
        MerkleTree.leaf(payload[$0..<min($0 + MerkleTree.blockSize, size)])
    }
    let root = MerkleTree.root(leaves: leaves)
    let info: BencodeValue = [
        "name": "payload.bin", "piece length": .integer(Int64(pieceLength)), "meta version": 2,
        "file tree": ["payload.bin": ["": ["length": .integer(Int64(size)), "pieces root": .bytes(root)]]],
    ]
    let node = try BencodeDecoder().decodeNode(info.encoded())
    let layer = MerkleTree.pieceLayer(leaves: leaves, pieceLength: pieceLength)
    return (try InfoDictionary(node: node), payload, size > pieceLength ? [root: layer.flatMap { $0 }] : [:])
}

@Suite("BitTorrent v2 on the wire (BEP 52): hash messages, merkle checks, piece layers from peers")
struct V2SessionTests {
    @Test("hash request, hashes and hash reject go through the codec unchanged")
    func codec() throws {
        let request = HashRequest(
            piecesRoot: [UInt8](repeating: 7, count: 32), baseLayer: 2, index: 512, length: 512,
            proofLayers: 9)
        let hashes = (0..<3).map { [UInt8](repeating: UInt8($0), count: 32) }
        for message in [
            PeerMessage.hashRequest(request), .hashReject(request), .hashes(request, hashes: hashes),
        ] {
            let frame = PeerWireCodec.encode(message)
            #expect(frame.count == PeerWireCodec.frameLength(message))
            #expect(try PeerWireCodec.decode(frame[4...]) == message)
        }
        // A hashes message whose hashes are not whole 32-byte values is refused.
        var bad = PeerWireCodec.encode(.hashes(request, hashes: hashes))
        bad.removeLast()
        #expect(throws: PeerWireError.self) { try PeerWireCodec.decode(bad[4...]) }
        // Request and reject are exactly 48 bytes.
        #expect(throws: PeerWireError.self) {
            try PeerWireCodec.decode([21] + [UInt8](repeating: 0, count: 47))
        }
    }

    @Test("piece layers are answered with proofs that check against the root; tampering is caught")
    func layerProofs() throws {
        let (info, payload, layers) = try makeV2Torrent(size: 5_000_000, pieceLength: 32_768, seed: 21)
        let merkle = MerklePieces(info: info, pieceLayers: layers)
        #expect(merkle.isComplete)
        var empty = MerklePieces(info: info, pieceLayers: [:])
        #expect(!empty.isComplete && empty.check(piece: 0) == nil)
        // 153 pieces: chunks of 512 rounded to a power of two, proved up to the root.
        let requests = empty.layerRequests(forFile: 0)
        #expect(requests.map(\.length) == [256])
        var fetched: [[UInt8]] = []
        for request in requests {
            let answer = try #require(merkle.answer(request))
            #expect(answer.count == request.length + request.uncleCount)
            fetched += try #require(empty.verify(request, hashes: answer))
            var tampered = answer
            tampered[3][0] ^= 1
            #expect(empty.verify(request, hashes: tampered) == nil)
        }
        let accepted = empty.setLayer(Array(fetched.prefix(merkle.files[0].pieceCount)), forFile: 0)
        #expect(accepted)
        #expect(empty.isComplete && empty.pieceLayers == layers)
        // A smaller chunk with uncles: hashes 4..<8 of the piece layer, proved 5 layers up.
        let partial = HashRequest(
            piecesRoot: merkle.files[0].root, baseLayer: 1, index: 4, length: 4, proofLayers: 5)
        let answer = try #require(merkle.answer(partial))
        #expect(answer.count == 4 + 4)
        #expect(merkle.verify(partial, hashes: answer) == Array(merkle.files[0].layer![4..<8]))
        // Leaves of a piece, from its data, proved by the piece's node.
        let leafRequest = try #require(merkle.leafRequest(piece: 3))
        #expect(merkle.leafPiece(for: leafRequest) == 3)
        let data = payload[3 * 32_768..<4 * 32_768]
        let leaves = [MerkleTree.leaf(data.prefix(16_384)), MerkleTree.leaf(data.suffix(16_384))]
        let leafAnswer = try #require(merkle.answer(leafRequest, leaves: leaves))
        #expect(merkle.verify(leafRequest, hashes: leafAnswer) == leaves)
        #expect(merkle.answer(leafRequest, leaves: leaves.reversed()) == nil)
        // Out of the tree, or not a power of two: refused.
        for bad in [
            HashRequest(piecesRoot: merkle.files[0].root, baseLayer: 1, index: 3, length: 4, proofLayers: 0),
            HashRequest(piecesRoot: merkle.files[0].root, baseLayer: 1, index: 0, length: 3, proofLayers: 0),
            HashRequest(
                piecesRoot: merkle.files[0].root, baseLayer: 1, index: 256, length: 256, proofLayers: 0),
            HashRequest(piecesRoot: merkle.files[0].root, baseLayer: 1, index: 0, length: 2, proofLayers: 40),
            HashRequest(
                piecesRoot: [UInt8](repeating: 0, count: 32), baseLayer: 1, index: 0, length: 2,
                proofLayers: 0),
        ] {
            #expect(!merkle.accepts(bad), "\(bad)")
        }
    }

    @Test("each piece of libtorrent's v2 and hybrid torrents matches its merkle check over its file's bytes")
    func libtorrentVectors() throws {
        for name in ["v2-libtorrent.torrent", "hybrid-libtorrent.torrent"] {
            let metainfo = try Metainfo(parsing: try MetainfoV2Tests.bytes(name))
            let merkle = MerklePieces(info: metainfo.info, pieceLayers: metainfo.pieceLayers)
            #expect(merkle.isComplete)
            // Files with data, in v2 order: a.bin (3 pieces), c.txt, sub/b.bin, sub/d.bin.
            let withData = MetainfoV2Tests.data.filter { !$0.bytes.isEmpty }
            #expect(merkle.files.count == withData.count)
            var piece = 0
            for file in withData {
                for start in stride(from: 0, to: file.bytes.count, by: 32_768) {
                    let bytes = file.bytes[start..<min(start + 32_768, file.bytes.count)]
                    let check = try #require(merkle.check(piece: piece))
                    #expect(check.dataLength == bytes.count)
                    let leaves = stride(from: bytes.startIndex, to: bytes.endIndex, by: 16_384).map {
                        MerkleTree.leaf(bytes[$0..<min($0 + 16_384, bytes.endIndex)])
                    }
                    #expect(check.matches(leaves), "\(name) piece \(piece)")
                    piece += 1
                }
            }
            #expect(piece == metainfo.info.pieceCount)
        }
    }

    @Test("a v2 leecher downloads from a v2 seeder, every piece checked by its merkle node")
    func v2Download() throws {
        let (info, payload, layers) = try makeV2Torrent(size: 1_000_000, pieceLength: 65_536, seed: 22)
        #expect(info.version == .v2)
        var swarm = SimulatedSwarm(info: info, payload: payload, seeders: [true, false], pieceLayers: layers)
        // The handshake's v2 bit goes with a v2 view only (libtorrent drops it on a v1 torrent).
        #expect(swarm.nodes[0].session.hasV2)
        let (v1, _) = try makeTorrent(size: 100_000, pieceLength: 16_384, seed: 2)
        #expect(!TorrentSession(info: v1, peerID: [UInt8](repeating: 0, count: 20), seed: 1).hasV2)
        swarm.connect(1, 0)
        swarm.run(seconds: 60) { $0.nodes[1].session.isComplete }
        #expect(swarm.nodes[1].session.isComplete)
        #expect(swarm.nodes[1].data == payload)
        #expect(swarm.nodes[1].session.wasted == 0)
    }

    @Test("from the info-hash alone: the metadata by BEP 9, the piece layers by hash requests")
    func v2Magnet() throws {
        let (info, payload, layers) = try makeV2Torrent(size: 3_000_000, pieceLength: 16_384, seed: 23)
        var swarm = SimulatedSwarm(
            info: info, payload: payload, seeders: [true, false], pieceLayers: layers, magnets: [1])
        #expect(swarm.nodes[1].session.info == nil)
        swarm.connect(1, 0)
        swarm.run(seconds: 60) { $0.nodes[1].session.isComplete }
        #expect(swarm.nodes[1].session.merkle?.pieceLayers == layers)
        #expect(swarm.nodes[1].session.isComplete)
        #expect(swarm.nodes[1].data == payload)
    }

    @Test("a corrupt block is pinned to its sender by the piece's leaves; the honest seeder is kept")
    func merkleBlame() throws {
        let (info, payload, layers) = try makeV2Torrent(size: 2_000_000, pieceLength: 262_144, seed: 24)
        var swarm = SimulatedSwarm(
            info: info, payload: payload, seeders: [true, true, false], corrupt: [1], pieceLayers: layers)
        swarm.connect(2, 0)
        swarm.connect(2, 1)
        swarm.run(seconds: 120) { $0.nodes[2].session.isComplete }
        #expect(swarm.nodes[2].session.isComplete)
        #expect(swarm.nodes[2].data == payload)
        let bans = swarm.banned.filter { $0.by == 2 }
        #expect(bans.map(\.address) == [swarm.nodes[1].address])
        #expect(bans.first?.reason.contains("merkle") == true, "\(bans.map(\.reason))")
    }

    @Test(
        "a peer flooding hash requests gets 50 answers a second and refusals after; two leaf reads at a time")
    func hashRequestFlood() throws {
        let (info, _, layers) = try makeV2Torrent(size: 5_000_000, pieceLength: 32_768, seed: 25)
        var swarm = SimulatedSwarm(info: info, payload: [], seeders: [true, false], pieceLayers: layers)
        swarm.connect(1, 0)
        let merkle = try #require(swarm.nodes[0].session.merkle)
        let layer = try #require(merkle.layerRequests(forFile: 0).first)
        var answered = 0
        var refused = 0
        var reads = 0
        func count(_ actions: [SessionAction]) {
            for action in actions {
                switch action {
                case .send(_, .hashes): answered += 1
                case .send(_, .hashReject): refused += 1
                case .readLeaves: reads += 1
                default: break
                }
            }
        }
        // Node 1's connection at node 0 has key 2.
        for _ in 0..<100 {
            count(swarm.nodes[0].session.received(.hashRequest(layer), from: PeerKey(2), now: .zero))
        }
        #expect(answered == TorrentSession.hashAnswersPerSecond && refused == 100 - answered)
        // The next second the budget is back; leaf requests are read from disk two at a time.
        _ = swarm.nodes[0].session.tick(now: .seconds(1))
        (answered, refused) = (0, 0)
        for piece in 0..<5 {
            let leaves = try #require(merkle.leafRequest(piece: piece))
            count(swarm.nodes[0].session.received(.hashRequest(leaves), from: PeerKey(2), now: .seconds(1)))
        }
        #expect(reads == TorrentSession.leafReadsPerPeer && refused == 5 - reads)
        // A request outside the tree is refused, never answered.
        var bad = layer
        bad.index = 1 << 20
        count(swarm.nodes[0].session.received(.hashRequest(bad), from: PeerKey(2), now: .seconds(1)))
        #expect(refused == 5 - reads + 1)
    }
}

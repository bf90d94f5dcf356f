import Bencode
import Crypto
import PeerNet
import TestSupport
import Testing

@testable import BitTorrent

/// An in-memory swarm: sessions wired to each other, storage as byte arrays, virtual time.
/// No sockets, no clock: every message and disk operation is delivered by this loop.
struct SimulatedSwarm {
    struct Node {
        var session: TorrentSession
        var data: [UInt8]
        var address: Endpoint
        /// Flip a byte in every block this node serves.
        var corrupt = false
    }

    var nodes: [Node]
    /// Connection key → (node index, remote node index, remote's key for this link).
    var links: [Int: (node: Int, remote: Int, remoteKey: Int)] = [:]
    var queue: [(node: Int, action: SessionAction)] = []
    var now: Moment = .zero
    var nextKey = 1
    var delivered = 0
    var banned: [(by: Int, address: Endpoint, reason: String)] = []
    var dhtNodes: [(by: Int, address: Endpoint)] = []
    var dht = false

    /// `magnets` are leechers that know only the info-hash (BEP 9, and for v2 the piece layers,
    /// come from peers); `pieceLayers` are a v2 torrent's.
    init(
        info: InfoDictionary, payload: [UInt8], seeders: [Bool], corrupt: Set<Int> = [], dht: Bool = false,
        pieceLayers: [[UInt8]: [UInt8]] = [:], magnets: Set<Int> = []
    ) {
        self.dht = dht
        nodes = seeders.enumerated().map { index, isSeeder in
            var configuration = SessionConfiguration()
            configuration.listenPort = UInt16(7000 + index)
            if dht { configuration.dhtPort = UInt16(8000 + index) }
            let peerID = Array("-PS0100-".utf8) + [UInt8](repeating: UInt8(index), count: 12)
            var session = TorrentSession(
                info: info, pieceLayers: pieceLayers, peerID: peerID, configuration: configuration,
                seed: UInt64(index + 1))
            if magnets.contains(index) {
                session = TorrentSession(
                    infoHash: session.infoHash, peerID: peerID, configuration: configuration,
                    seed: UInt64(index + 1))
            } else {
                _ = session.storageReady(have: Bitfield(count: info.pieceCount, allSet: isSeeder), now: .zero)
            }
            return Node(
                session: session, data: isSeeder ? payload : [UInt8](repeating: 0, count: payload.count),
                address: Endpoint(ip: [127, 0, 0, 1], port: UInt16(7000 + index))!,
                corrupt: corrupt.contains(index))
        }
    }

    /// Connects node `a` (dialling) to node `b`.
    mutating func connect(_ a: Int, _ b: Int) {
        let keyA = nextKey
        let keyB = nextKey + 1
        nextKey += 2
        links[keyA] = (a, b, keyB)
        links[keyB] = (b, a, keyA)
        var reserved = ReservedBits()
        reserved.fastExtension = true
        reserved.extensionProtocol = true
        reserved.dht = dht
        reserved.v2 = true
        let handshakeFromB = Handshake(
            reserved: reserved, infoHash: nodes[b].session.infoHash, peerID: nodes[b].session.peerID)
        let handshakeFromA = Handshake(
            reserved: reserved, infoHash: nodes[a].session.infoHash, peerID: nodes[a].session.peerID)
        enqueue(
            a,
            nodes[a].session.peerConnected(
                PeerKey(keyA), address: nodes[b].address, outgoing: true, handshake: handshakeFromB, now: now)
        )
        enqueue(
            b,
            nodes[b].session.peerConnected(
                PeerKey(keyB), address: nodes[a].address, outgoing: false, handshake: handshakeFromA, now: now
            ))
    }

    mutating func enqueue(_ node: Int, _ actions: [SessionAction]) {
        queue += actions.map { (node, $0) }
    }

    /// Runs until nothing is left to do or `seconds` of virtual time pass.
    mutating func run(seconds: Int, until done: (SimulatedSwarm) -> Bool) {
        for _ in 0..<seconds {
            var steps = 0
            while !queue.isEmpty && steps < 200_000 {
                let (node, action) = queue.removeFirst()
                perform(node, action)
                steps += 1
            }
            if done(self) { return }
            now += .seconds(1)
            for index in nodes.indices { enqueue(index, nodes[index].session.tick(now: now)) }
        }
    }

    mutating func perform(_ node: Int, _ action: SessionAction) {
        guard let info = nodes[node].session.info else {
            if case .send = action {} else if case .close = action {} else { return }
            return deliver(node, action)
        }
        switch action {
        case .send, .close:
            deliver(node, action)
        case .connect:
            break
        case .write(let request, let buffer):
            let data = Array(buffer.readableBytesView)
            let start = request.piece * info.pieceLength + request.offset
            nodes[node].data.replaceSubrange(start..<start + data.count, with: data)
            enqueue(node, nodes[node].session.blockWritten(request))
        case .verify(let piece, _):
            let start = piece * info.pieceLength
            let bytes = Array(nodes[node].data[start..<start + info.pieceSize(piece)])
            var passed =
                !info.version.hasV1 || Array(Insecure.SHA1.hash(data: bytes)) == Array(info.pieceHash(piece))
            var digests = stride(from: 0, to: bytes.count, by: 16_384).map {
                Array(Insecure.SHA1.hash(data: bytes[$0..<min($0 + 16_384, bytes.count)]))
            }
            if let check = nodes[node].session.merkle?.check(piece: piece) {
                digests = leaves(of: bytes[0..<check.dataLength])
                passed = passed && check.matches(digests)
            } else if !info.version.hasV1 {
                passed = false
            }
            enqueue(
                node,
                nodes[node].session.pieceVerified(piece, passed: passed, blockDigests: digests, now: now))
        case .read(let request, let key):
            let start = request.piece * info.pieceLength + request.offset
            var data = Array(nodes[node].data[start..<start + request.length])
            if nodes[node].corrupt { data[0] ^= 0xFF }
            enqueue(node, nodes[node].session.blockRead(request, for: key, data: data, now: now))
        case .readLeaves(let piece, let request, let key):
            let check = nodes[node].session.merkle?.check(piece: piece)
            let start = piece * info.pieceLength
            let hashes = check.map { leaves(of: nodes[node].data[start..<start + $0.dataLength]) }
            enqueue(node, nodes[node].session.leavesRead(request, leaves: hashes, for: key, now: now))
        case .metadataReceived(let info):
            nodes[node].data = [UInt8](repeating: 0, count: Int(info.totalLength))
            enqueue(node, nodes[node].session.storageReady(have: Bitfield(count: info.pieceCount), now: now))
        case .banned(let address, let reason):
            banned.append((node, address, reason))
        case .dhtNode(let address):
            dhtNodes.append((node, address))
        case .pieceCompleted, .downloadCompleted, .learnedPeers:
            break
        }
    }

    /// BEP 52 leaves: SHA-256 per 16 KiB.
    func leaves(of bytes: ArraySlice<UInt8>) -> [[UInt8]] {
        stride(from: bytes.startIndex, to: bytes.endIndex, by: 16_384).map {
            MerkleTree.leaf(bytes[$0..<min($0 + 16_384, bytes.endIndex)])
        }
    }

    /// Messages and closes, through the real codec.
    mutating func deliver(_ node: Int, _ action: SessionAction) {
        switch action {
        case .send(let key, let message):
            guard let link = links[key.id], link.node == node else { return }
            // Through the real codec, both ways.
            let frame = PeerWireCodec.encode(message)
            guard let decoded = try? PeerWireCodec.decode(frame[4...]) else {
                Issue.record("the codec could not read back \(message.name)")
                return
            }
            delivered += 1
            enqueue(
                link.remote,
                nodes[link.remote].session.received(decoded, from: PeerKey(link.remoteKey), now: now))
        case .close(let key, _, _):
            guard let link = links.removeValue(forKey: key.id) else { return }
            links[link.remoteKey] = nil
            enqueue(
                link.remote, nodes[link.remote].session.peerDisconnected(PeerKey(link.remoteKey), now: now))
            enqueue(node, nodes[node].session.peerDisconnected(key, now: now))
        default:
            break
        }
    }
}

/// A torrent over random bytes, made in memory.
func makeTorrent(size: Int, pieceLength: Int, seed: UInt64) throws -> (InfoDictionary, [UInt8]) {
    let payload = SeededGenerator.bytes(size, seed: seed)
    var pieces: [UInt8] = []
    for start in stride(from: 0, to: size, by: pieceLength) {
        pieces += Array(Insecure.SHA1.hash(data: payload[start..<min(start + pieceLength, size)]))
    }
    let info: BencodeValue = [
        "name": "payload.bin", "length": .integer(Int64(size)), "piece length": .integer(Int64(pieceLength)),
        "pieces": .bytes(pieces),
    ]
    let node = try BencodeDecoder().decodeNode(info.encoded())
    return (try InfoDictionary(node: node), payload)
}

@Suite("Torrent session state machine, driven in memory")
struct SessionTests {
    @Test("a leecher downloads everything from a seeder and the data is exact")
    func seederToLeecher() throws {
        let (info, payload) = try makeTorrent(size: 1_000_000, pieceLength: 65_536, seed: 5)
        var swarm = SimulatedSwarm(info: info, payload: payload, seeders: [true, false])
        swarm.connect(1, 0)
        swarm.run(seconds: 60) { $0.nodes[1].session.isComplete }
        #expect(swarm.nodes[1].session.isComplete)
        #expect(swarm.nodes[1].data == payload)
        #expect(swarm.nodes[0].session.uploaded == 1_000_000)
        #expect(swarm.nodes[1].session.wasted == 0)
    }

    @Test("peers with a DHT exchange BEP 5 port messages; each learns the other's DHT node")
    func portMessages() throws {
        let (info, payload) = try makeTorrent(size: 100_000, pieceLength: 16_384, seed: 8)
        var swarm = SimulatedSwarm(info: info, payload: payload, seeders: [true, false], dht: true)
        swarm.connect(1, 0)
        swarm.run(seconds: 5) { $0.nodes[1].session.isComplete }
        let learnt = swarm.dhtNodes.map { "\($0.by) \($0.address)" }.sorted()
        #expect(learnt == ["0 127.0.0.1:8001", "1 127.0.0.1:8000"])
        // Without a DHT of our own, port messages are ignored (and none are sent).
        var plain = SimulatedSwarm(info: info, payload: payload, seeders: [true, false])
        plain.connect(1, 0)
        plain.run(seconds: 5) { $0.nodes[1].session.isComplete }
        #expect(plain.dhtNodes.isEmpty && plain.nodes[1].session.isComplete)
    }

    @Test("three leechers and one seeder: everyone completes, leechers trade with each other")
    func swarmOfFour() throws {
        let (info, payload) = try makeTorrent(size: 2_000_000, pieceLength: 32_768, seed: 6)
        var swarm = SimulatedSwarm(info: info, payload: payload, seeders: [true, false, false, false])
        for a in 0..<4 { for b in (a + 1)..<4 { swarm.connect(b, a) } }
        swarm.run(seconds: 120) { swarm in (1..<4).allSatisfy { swarm.nodes[$0].session.isComplete } }
        for index in 1..<4 {
            #expect(swarm.nodes[index].session.isComplete)
            #expect(swarm.nodes[index].data == payload)
        }
        let leecherUploads = (1..<4).map { swarm.nodes[$0].session.uploaded }.reduce(0, +)
        #expect(leecherUploads > 0, "leechers should serve each other, not only the seeder")
    }

    @Test("a peer serving corrupt blocks is banned and the download completes from the honest one")
    func smartBan() throws {
        let (info, payload) = try makeTorrent(size: 600_000, pieceLength: 65_536, seed: 7)
        var swarm = SimulatedSwarm(info: info, payload: payload, seeders: [true, true, false], corrupt: [1])
        swarm.connect(2, 0)
        swarm.connect(2, 1)
        swarm.run(seconds: 120) { $0.nodes[2].session.isComplete }
        #expect(swarm.nodes[2].session.isComplete)
        #expect(swarm.nodes[2].data == payload)
        #expect(swarm.banned.contains { $0.by == 2 && $0.address == swarm.nodes[1].address })
        #expect(!swarm.banned.contains { $0.address == swarm.nodes[0].address })
        #expect(swarm.nodes[2].session.isBanned(swarm.nodes[1].address))
    }

    @Test(
        "protocol violations close only the offending connection",
        arguments: [
            PeerMessage.bitfield([0xFF]),  // wrong size for 10 pieces
            .bitfield([0xFF, 0xF0]),  // spare bits set
            .have(piece: 10),  // beyond the torrent
            .request(BlockRequest(piece: 9, offset: 0, length: 16_384)),  // past the end of the last piece
            .piece(piece: 0, offset: 0, data: [1, 2, 3]),  // never requested
        ])
    func violations(message: PeerMessage) throws {
        let (info, payload) = try makeTorrent(size: 600_000, pieceLength: 65_536, seed: 8)
        var swarm = SimulatedSwarm(info: info, payload: payload, seeders: [true, false, false])
        swarm.connect(1, 0)
        swarm.connect(2, 0)
        let before = swarm.nodes[0].session.connectedPeers
        // Node 2 misbehaves towards node 0 (its connection key there is 4).
        let actions = swarm.nodes[0].session.received(message, from: PeerKey(4), now: swarm.now)
        #expect(
            actions.contains { if case .close(PeerKey(4), _, _) = $0 { return true } else { return false } })
        #expect(swarm.nodes[0].session.connectedPeers == before - 1)
        swarm.enqueue(0, actions)
        swarm.run(seconds: 60) { $0.nodes[1].session.isComplete }
        #expect(swarm.nodes[1].session.isComplete, "the honest peer is unaffected")
    }
}

@Suite("Piece picking and file selection")
struct PickingTests {
    @Test("sequential mode requests pieces in order")
    func sequential() {
        var picker = PiecePicker(pieceCount: 8, pieceLength: 32_768, totalLength: 8 * 32_768)
        picker.sequential = true
        let all = Bitfield(count: 8, allSet: true)
        picker.peerHas(all)
        var rng = SplitMix64(seed: 1)
        let blocks = picker.pick(count: 6, from: all, excluding: { _ in false }, using: &rng)
        #expect(blocks.map(\.piece) == [0, 0, 1, 1, 2, 2])
    }

    @Test("rarest first once a few pieces are in; endgame duplicates only when nothing is free")
    func rarestAndEndgame() {
        var picker = PiecePicker(pieceCount: 4, pieceLength: 16_384, totalLength: 4 * 16_384)
        picker.randomFirstPieces = 0
        var common = Bitfield(count: 4, allSet: true)
        picker.peerHas(common)
        picker.peerHas(common)
        common[2] = false
        picker.peerHas(common)  // piece 2 is the rarest
        var rng = SplitMix64(seed: 2)
        let all = Bitfield(count: 4, allSet: true)
        #expect(picker.pick(count: 1, from: all, excluding: { _ in false }, using: &rng).map(\.piece) == [2])
        let rest = picker.pick(count: 10, from: all, excluding: { _ in false }, using: &rng)
        #expect(Set(rest.map(\.piece)) == [0, 1, 3])
        #expect(picker.isInEndgame)
        let duplicate = picker.pick(count: 1, from: all, excluding: { $0.piece == 2 }, using: &rng)
        #expect(duplicate.count == 1 && duplicate[0].piece != 2)
    }

    @Test("skipping a file still fetches the piece it shares with a wanted file")
    func fileSelection() throws {
        // Two files; piece 1 holds the end of a.bin and the start of b.bin.
        let info: BencodeValue = [
            "name": "d", "piece length": 16_384,
            "pieces": .bytes([UInt8](repeating: 1, count: 20 * 3)),
            "files": [["length": 20_000, "path": ["a.bin"]], ["length": 20_000, "path": ["b.bin"]]],
        ]
        let parsed = try InfoDictionary(node: try BencodeDecoder().decodeNode(info.encoded()))
        var session = TorrentSession(info: parsed, peerID: [UInt8](repeating: 1, count: 20), seed: 1)
        _ = session.storageReady(have: Bitfield(count: 3), now: .zero)
        _ = session.setFilePriorities([1, 0], now: .zero)
        #expect(session.picker?.priority == [1, 1, 0])
        #expect(session.bytesLeft == 2 * 16_384)
        _ = session.setFilePriorities([0, 1], now: .zero)
        #expect(session.picker?.priority == [0, 1, 1])
    }
}

@Suite("A peer that goes silent while we wait on its blocks")
struct StallProbeTests {
    /// libtorrent forgets a uTP connection it timed out without sending a RESET; only a message
    /// our transport must get acknowledged finds that out. The session probes with keep-alives.
    @Test("keep-alives go out every stallProbeInterval while requests are outstanding, not before")
    func probes() throws {
        let (info, _) = try makeTorrent(size: 262_144, pieceLength: 65_536, seed: 9)
        var session = TorrentSession(
            info: info, peerID: Array("-PS0100-".utf8) + [UInt8](repeating: 1, count: 12),
            configuration: SessionConfiguration(), seed: 3)
        _ = session.storageReady(have: Bitfield(count: info.pieceCount, allSet: false), now: .zero)
        let key = PeerKey(1)
        var reserved = ReservedBits()
        reserved.fastExtension = true
        let handshake = Handshake(
            reserved: reserved, infoHash: session.infoHash, peerID: [UInt8](repeating: 9, count: 20))
        _ = session.peerConnected(
            key, address: Endpoint(ip: [127, 0, 0, 1], port: 7001)!, outgoing: true, handshake: handshake,
            now: .zero)
        _ = session.received(.haveAll, from: key, now: .zero)
        let requests = session.received(.unchoke, from: key, now: .zero)
        #expect(requests.contains { if case .send(_, .request) = $0 { true } else { false } })
        func keepAlives(at seconds: Int) -> Int {
            session.tick(now: .seconds(seconds)).filter {
                if case .send(_, .keepAlive) = $0 { true } else { false }
            }.count
        }
        #expect(keepAlives(at: 5) == 0)
        #expect(keepAlives(at: 11) == 1)
        #expect(keepAlives(at: 12) == 0)
        #expect(keepAlives(at: 22) == 1)
    }
}

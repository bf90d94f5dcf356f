import PeerNet
import Testing

@testable import BitTorrent

/// The session's rules against peers that lie or misbehave, driven message by message.
@Suite("Session against lying peers")
struct HostilePeerSessionTests {
    static func handshake(_ infoHash: InfoHash, _ id: UInt8) -> Handshake {
        var reserved = ReservedBits()
        reserved.extensionProtocol = true
        reserved.fastExtension = true
        return Handshake(reserved: reserved, infoHash: infoHash, peerID: [UInt8](repeating: id, count: 20))
    }

    /// The ut_metadata requests among `actions`, by peer.
    static func metadataRequests(_ actions: [SessionAction]) -> [PeerKey: [Int]] {
        var out: [PeerKey: [Int]] = [:]
        for case .send(let key, .extended(let id, let payload)) in actions where id == 9 {
            if case .request(let piece)? = try? MetadataMessage(decoding: payload) {
                out[key, default: []].append(piece)
            }
        }
        return out
    }

    @Test("one peer lying about the metadata size cannot stall a magnet: the size most peers agree on wins")
    func lyingMetadataSize() throws {
        let (info, _) = try makeTorrent(size: 17_000_000, pieceLength: 16_384, seed: 3)
        let bytes = info.encoded()
        #expect(bytes.count > MetadataMessage.pieceLength)  // several metadata pieces
        let infoHash = Metainfo.hash(bytes)
        var session = TorrentSession(infoHash: infoHash, peerID: [UInt8](repeating: 7, count: 20), seed: 1)
        let now = Moment.zero
        func join(_ key: Int, size: Int) -> [SessionAction] {
            _ = session.peerConnected(
                PeerKey(key), address: Endpoint(ip: IPAddress(v4: 0x0A00_0000 | UInt32(key)), port: 6881),
                outgoing: true, handshake: Self.handshake(infoHash, UInt8(key)), now: now)
            let theirs = ExtensionHandshake(messageIDs: ["ut_metadata": 9], metadataSize: size)
            return session.received(.extended(id: 0, payload: theirs.encoded()), from: PeerKey(key), now: now)
        }
        // The liar comes first and is asked (nobody else is known yet)…
        let first = join(1, size: bytes.count + 1)
        #expect(Self.metadataRequests(first)[PeerKey(1)] != nil)
        // …but two peers agreeing on another size outvote it, and they are asked instead.
        _ = join(2, size: bytes.count)
        let third = join(3, size: bytes.count)
        let asked = Self.metadataRequests(third)
        #expect(asked[PeerKey(1)] == nil)
        #expect(!asked.isEmpty && asked.keys.allSatisfy { $0 == PeerKey(2) || $0 == PeerKey(3) })
        // The honest peers' pieces assemble the dictionary.
        var received = false
        for (key, pieces) in asked {
            for piece in pieces {
                let start = piece * MetadataMessage.pieceLength
                let data = MetadataMessage.data(
                    piece: piece, totalSize: bytes.count,
                    bytes: Array(bytes[start..<min(start + MetadataMessage.pieceLength, bytes.count)]))
                let actions = session.received(.extended(id: 1, payload: data.encoded()), from: key, now: now)
                if actions.contains(where: { if case .metadataReceived = $0 { true } else { false } }) {
                    received = true
                }
            }
        }
        #expect(received && session.info?.encoded() == bytes)
    }

    @Test("a peer that sent all of a metadata that fails the info-hash is dropped and the fetch goes on")
    func badMetadata() throws {
        let (info, _) = try makeTorrent(size: 100_000, pieceLength: 16_384, seed: 4)
        let bytes = info.encoded()
        let infoHash = Metainfo.hash(bytes)
        var session = TorrentSession(infoHash: infoHash, peerID: [UInt8](repeating: 7, count: 20), seed: 1)
        var forged = bytes
        forged[forged.count / 2] ^= 1
        _ = session.peerConnected(
            PeerKey(1), address: Endpoint("10.0.0.1:1")!, outgoing: true,
            handshake: Self.handshake(infoHash, 1),
            now: .zero)
        let theirs = ExtensionHandshake(messageIDs: ["ut_metadata": 9], metadataSize: bytes.count)
        _ = session.received(.extended(id: 0, payload: theirs.encoded()), from: PeerKey(1), now: .zero)
        let data = MetadataMessage.data(piece: 0, totalSize: forged.count, bytes: forged)
        let actions = session.received(
            .extended(id: 1, payload: data.encoded()), from: PeerKey(1), now: .zero)
        #expect(actions.contains { if case .close(PeerKey(1), _, _) = $0 { true } else { false } })
        #expect(session.info == nil)
        // An honest peer arriving later is asked, and the metadata completes.
        _ = session.peerConnected(
            PeerKey(2), address: Endpoint("10.0.0.2:1")!, outgoing: true,
            handshake: Self.handshake(infoHash, 2),
            now: .zero)
        let asked = Self.metadataRequests(
            session.received(.extended(id: 0, payload: theirs.encoded()), from: PeerKey(2), now: .zero))
        #expect(asked[PeerKey(2)] == [0])
        let good = MetadataMessage.data(piece: 0, totalSize: bytes.count, bytes: bytes)
        _ = session.received(.extended(id: 1, payload: good.encoded()), from: PeerKey(2), now: .zero)
        #expect(session.info?.encoded() == bytes)
    }

    @Test("haves before the metadata are bounded per peer")
    func pendingHaves() throws {
        let (info, _) = try makeTorrent(size: 100_000, pieceLength: 16_384, seed: 4)
        let infoHash = Metainfo.hash(info.encoded())
        var session = TorrentSession(infoHash: infoHash, peerID: [UInt8](repeating: 7, count: 20), seed: 1)
        _ = session.peerConnected(
            PeerKey(1), address: Endpoint("10.0.0.1:1")!, outgoing: true,
            handshake: Self.handshake(infoHash, 1),
            now: .zero)
        for piece in 0..<20_000 { _ = session.received(.have(piece: piece), from: PeerKey(1), now: .zero) }
        #expect((session.peers[PeerKey(1)]?.pendingHaves.count ?? 0) == TorrentSession.maxPendingHaves)
    }

    @Test("bans are by IP: the same host on another port is refused; loopback peers are told apart by port")
    func bansByIP() throws {
        #expect(
            TorrentSession.banKey(Endpoint("10.1.2.3:6881")!)
                == TorrentSession.banKey(Endpoint("10.1.2.3:7000")!))
        #expect(
            TorrentSession.banKey(Endpoint("127.0.0.1:6881")!)
                != TorrentSession.banKey(Endpoint("127.0.0.1:7000")!))
        let (info, payload) = try makeTorrent(size: 200_000, pieceLength: 16_384, seed: 9)
        var swarm = SimulatedSwarm(info: info, payload: payload, seeders: [true, true, false], corrupt: [0])
        swarm.nodes[0].address = Endpoint("10.9.9.9:7000")!
        swarm.connect(2, 0)
        swarm.connect(2, 1)
        swarm.run(seconds: 60) { $0.nodes[2].session.isComplete }
        #expect(swarm.nodes[2].session.isComplete)
        #expect(swarm.banned.contains { $0.by == 2 && $0.address.ip == IPAddress("10.9.9.9") })
        #expect(swarm.nodes[2].session.isBanned(Endpoint("10.9.9.9:51413")!))
    }
}

@Suite("Session against port-message floods")
struct PortFloodTests {
    @Test("a peer repeating BEP 5 port messages has its DHT node pinged once")
    func portFlood() throws {
        let (info, _) = try makeTorrent(size: 100_000, pieceLength: 16_384, seed: 4)
        var configuration = SessionConfiguration()
        configuration.dhtPort = 6881
        var session = TorrentSession(
            info: info, peerID: [UInt8](repeating: 7, count: 20), configuration: configuration, seed: 1)
        _ = session.storageReady(have: Bitfield(count: info.pieceCount, allSet: true), now: .zero)
        var reserved = ReservedBits()
        reserved.dht = true
        _ = session.peerConnected(
            PeerKey(1), address: Endpoint("10.0.0.1:1")!, outgoing: false,
            handshake: Handshake(
                reserved: reserved, infoHash: session.infoHash, peerID: [UInt8](repeating: 1, count: 20)),
            now: .zero)
        var nodes = 0
        for index in 0..<10_000 {
            let actions = session.received(.port(UInt16(1 + index % 60_000)), from: PeerKey(1), now: .zero)
            nodes += actions.filter { if case .dhtNode = $0 { true } else { false } }.count
        }
        #expect(nodes == 1)
    }
}

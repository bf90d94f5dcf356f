import Bencode
import BitTorrent
import Crypto
import Foundation
import MainlineDHT
import PeerNet
import TestSupport
import Testing

/// The mainline DHT against libtorrent's on 127.0.0.1: bootstrapping from each other, peers
/// announced by one side found by the other, and BEP 44 items put by one side read by the other.
/// Three nodes: libtorrent and two PeerStack nodes (a node does not look in its own store when
/// it searches, so each side needs a second node to find what it stored itself).
@Suite("Mainline DHT with libtorrent", .serialized)
struct DHTInteropTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/lt_dht.py").path

    /// libtorrent's node, PeerStack's node `a` (the one under test) and its helper `b`.
    struct Network {
        let libtorrent: BackgroundProgram
        let libtorrentPort: Int
        let a: DHTService
        let b: DHTService

        func stop() async {
            libtorrent.stop()
            await a.stop()
            await b.stop()
        }
    }

    static func loopbackNode() async throws -> DHTService {
        var options = DHTServiceOptions()
        options.address = .loopbackV4
        options.port = 0
        return try await DHTService.start(options)
    }

    /// Each side bootstraps from the other: libtorrent is told of the PeerStack nodes with
    /// `add_dht_node`, PeerStack's node bootstraps from libtorrent only.
    static func network() async throws -> Network {
        let libtorrent = try BackgroundProgram(Interop.python, [script, "\(freePort())", "170"])
        let port = try await libtorrent.waitForJSON("port", timeout: 30)["port"] as? Int ?? 0
        let a = try await loopbackNode()
        let b = try await loopbackNode()
        func at(_ port: UInt16) -> Endpoint { Endpoint(ip: .loopbackV4, port: port) }
        _ = try await libtorrent.ask("add_node 127.0.0.1:\(a.port)", expecting: "added")
        _ = try await libtorrent.ask("add_node 127.0.0.1:\(b.port)", expecting: "added")
        _ = await b.bootstrap([at(a.port)])
        _ = await a.bootstrap([at(UInt16(port))])
        return Network(libtorrent: libtorrent, libtorrentPort: port, a: a, b: b)
    }

    @Test("each side bootstraps from the other, and finds the peers the other announced")
    func peersBothWays() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let net = try await Self.network()
        defer { net.libtorrent.stop() }
        let libtorrentKnowsUs = try await eventually(timeout: 30) {
            let answer = try await net.libtorrent.ask("nodes", expecting: "nodes")
            return answer["nodes"] as? Int ?? 0 >= 2
        }
        #expect(libtorrentKnowsUs, "libtorrent's routing table never held both PeerStack nodes")
        #expect(await net.a.routingTableSize >= 2, "PeerStack's node learnt nothing from libtorrent")

        // libtorrent seeds a torrent and announces it (with its listen port) to the DHT.
        _ = try await net.libtorrent.ask(
            "seed \(payload.torrentFile.path) \(payload.seedDirectory.path)", expecting: "seeding")
        let infoHash = NodeID(bytes: payload.metainfo.infoHash.bytes)!
        let libtorrentPeer = "127.0.0.1:\(net.libtorrentPort)"
        let found = try await eventually(timeout: 60) {
            let result = await net.a.run(.getPeers(infoHash, announcePort: nil, impliedPort: false))
            return result.peers.map(\.description).contains(libtorrentPeer)
        }
        #expect(found, "PeerStack's get_peers never found libtorrent's announce")

        // PeerStack announces; libtorrent's get_peers finds it.
        let ours = NodeID(bytes: Array(repeating: 0x5A, count: 20))!
        let announced = await net.a.run(.getPeers(ours, announcePort: 5_001, impliedPort: false))
        #expect(announced.stored >= 2, "announce_peer accepted by \(announced.stored) nodes")
        let seen = try await eventually(timeout: 60) {
            let answer = try await net.libtorrent.ask("get_peers \(ours.hex)", expecting: "get_peers")
            return (answer["peers"] as? [String] ?? []).contains("127.0.0.1:5001")
        }
        #expect(seen, "libtorrent's get_peers never found PeerStack's announce")
        await net.stop()
    }

    @Test("BEP 44 items put by one side are read by the other, immutable and mutable")
    func itemsBothWays() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let net = try await Self.network()
        defer { net.libtorrent.stop() }
        _ = try await eventually(timeout: 30) {
            let answer = try await net.libtorrent.ask("nodes", expecting: "nodes")
            return answer["nodes"] as? Int ?? 0 >= 2
        }

        // Immutable, PeerStack → libtorrent.
        let ourValue = BencodeValue.string("put by PeerStack").encoded()
        let put = await net.a.run(.put(DHTItem(immutable: ourValue)))
        #expect(put.stored >= 2)
        let target = DHTItem.target(immutable: ourValue)
        let readByLibtorrent = try await net.libtorrent.ask(
            "get_immutable \(target.hex)", expecting: "immutable")
        #expect(readByLibtorrent["value"] as? String == "put by PeerStack")

        // Immutable, libtorrent → PeerStack.
        let theirPut = try await net.libtorrent.ask("put_immutable put by libtorrent", expecting: "put")
        #expect(theirPut["success"] as? Int ?? 0 >= 1, "libtorrent's put: \(theirPut)")
        let theirTarget = DHTItem.target(immutable: BencodeValue.string("put by libtorrent").encoded())
        #expect(theirPut["put"] as? String == theirTarget.hex)
        let readByUs = await net.a.run(.get(theirTarget, salt: []))
        #expect(readByUs.item?.value == BencodeValue.string("put by libtorrent").encoded())

        // Mutable with a salt, PeerStack → libtorrent (libtorrent checks the signature).
        let key = Curve25519.Signing.PrivateKey()
        let publicHex = key.publicKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
        let mutable = try DHTItem(
            mutable: BencodeValue.string("mutable by PeerStack").encoded(), seq: 7, salt: Array("salt".utf8),
            signer: key)
        let putMutable = await net.a.run(.put(mutable))
        #expect(putMutable.stored >= 2)
        let theirRead = try await net.libtorrent.ask("get_mutable \(publicHex) salt", expecting: "mutable")
        #expect(theirRead["value"] as? String == "mutable by PeerStack" && theirRead["seq"] as? Int == 7)

        // Mutable without a salt, libtorrent → PeerStack (PeerStack checks the signature).
        let theirKey = Curve25519.Signing.PrivateKey()
        let seedHex = theirKey.rawRepresentation.map { String(format: "%02x", $0) }.joined()
        let theirPublic = Array(theirKey.publicKey.rawRepresentation)
        let theirPublicHex = theirPublic.map { String(format: "%02x", $0) }.joined()
        let theirMutable = try await net.libtorrent.ask(
            "put_mutable \(seedHex) \(theirPublicHex) - mutable by libtorrent", expecting: "put")
        #expect(theirMutable["success"] as? Int ?? 0 >= 1, "libtorrent's mutable put: \(theirMutable)")
        let ourRead = await net.a.run(.get(DHTItem.target(key: theirPublic), salt: []))
        #expect(ourRead.item?.value == BencodeValue.string("mutable by libtorrent").encoded())
        #expect(ourRead.item?.key == theirPublic && ourRead.item?.seq == 1)
        await net.stop()
    }

    @Test("a magnet link whose only peer source is the DHT downloads completely from libtorrent")
    func magnetThroughTheDHT() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let net = try await Self.network()
        defer { net.libtorrent.stop() }
        _ = try await net.libtorrent.ask(
            "seed \(payload.torrentFile.path) \(payload.seedDirectory.path)", expecting: "seeding")
        // No tracker, no x.pe, no --peer: peers can only come from the DHT.
        let magnet = try MagnetLink(parsing: "magnet:?xt=urn:btih:\(payload.metainfo.infoHash.hex)")
        #expect(magnet.peers.isEmpty && magnet.trackers.isEmpty)
        let target = try payload.directory("dht-magnet")
        var options = loopbackOptions(target)
        options.dht = net.a
        let client = try TorrentClient(magnet: magnet, options: options)
        let names = NamesSeen()
        try await withDeadline(120, "magnet download through the DHT") {
            try await client.run { event in
                if case .metadataReceived(let name) = event { names.add(name) }
            }
        }
        #expect(names.all == ["tree"])
        #expect(await payload.isComplete(in: target))
        await net.stop()
    }

    @Test("peerstack torrent get of a torrent without trackers finds libtorrent through the DHT")
    func trackerlessTorrentFromTheCommandLine() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        #expect(payload.metainfo.trackerTiers.isEmpty)
        let net = try await Self.network()
        defer { net.libtorrent.stop() }
        _ = try await net.libtorrent.ask(
            "seed \(payload.torrentFile.path) \(payload.seedDirectory.path)", expecting: "seeding")
        let target = try payload.directory("cli")
        let table = payload.payloads.root.appendingPathComponent("dht.table").path
        let get = try BackgroundProgram(
            try peerstackExecutable().path,
            [
                "torrent", "get", payload.torrentFile.path, "-o", target.path, "--listen", "127.0.0.1",
                "--port", "0",
                "--bootstrap", "127.0.0.1:\(net.libtorrentPort)", "--dht-table", table,
            ])
        defer { get.stop() }
        let status = try await get.waitForExit(timeout: 120)
        #expect(status == 0, "\(get.text.suffix(800))")
        #expect(await payload.isComplete(in: target))
        // The node's routing table was saved for the next run.
        #expect(FileManager.default.fileExists(atPath: table))
        await net.stop()
    }
}

extension BackgroundProgram {
    /// Sends one command line and waits for the next JSON line holding `key`.
    func ask(_ command: String, expecting key: String, timeout: Double = 45) async throws -> [String: Any] {
        let before = text.split(separator: "\n").count
        send(command + "\n")
        return try await newJSON(key, after: before, timeout: timeout)
    }

    private func newJSON(_ key: String, after count: Int, timeout: Double) async throws -> [String: Any] {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let lines = text.split(separator: "\n").dropFirst(count)
            if let line = lines.first(where: { $0.hasPrefix("{") && $0.contains("\"\(key)\"") }),
                let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
            {
                return object
            }
            guard isRunning else { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw Interop.Failure(
            description: "\(name): no '\(key)' answer within \(timeout) s:\n\(text.suffix(2_000))")
    }
}

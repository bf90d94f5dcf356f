import Foundation
import MainlineDHT
import PeerNet
import SystemPackage
import Testing

@testable import BitTorrent

/// uTP in the torrent client, PeerStack to PeerStack on loopback.
@Suite("uTP in the torrent client", .serialized)
struct UTPDriverTests {
    @Test(
        "uTP shares the DHT node's port: a peer downloads over uTP only from a seeder whose DHT node has its port, and the node still answers the DHT"
    )
    func sharesTheDHTPort() async throws {
        let (metainfo, root) = try DriverTests.seedData(size: 2_000_000)
        defer { try? FileManager.default.removeItem(at: root) }
        var dhtOptions = DHTServiceOptions()
        dhtOptions.address = .loopbackV4
        dhtOptions.port = 0
        let dht = try await DHTService.start(dhtOptions)
        defer { Task { await dht.stop() } }
        var seedOptions = TorrentClientOptions(directory: FilePath(root.appendingPathComponent("seed").path))
        seedOptions.listenHost = "127.0.0.1"
        seedOptions.listenPort = Int(dht.port)
        seedOptions.seed = true
        seedOptions.dht = dht
        let seeder = TorrentClient(metainfo: metainfo, options: seedOptions)
        let port = PortBox()
        let seeding = Task { try await seeder.run(onListening: { port.set($0) }, onEvent: { _ in }) }
        defer { seeding.cancel() }
        #expect(try await port.wait() == Int(dht.port))
        var options = TorrentClientOptions(directory: FilePath(root.appendingPathComponent("get").path))
        options.listenHost = "127.0.0.1"
        options.listenPort = 0
        options.transport = .utp
        options.peers = [Endpoint(ip: .loopbackV4, port: dht.port)]
        let leecher = TorrentClient(metainfo: metainfo, options: options)
        let finished = try await finishes(leecher, within: 30)
        #expect(finished, "no download over uTP from the seeder on the DHT's port")
        // KRPC still reaches the node behind the uTP handler.
        var otherOptions = DHTServiceOptions()
        otherOptions.address = .loopbackV4
        otherOptions.port = 0
        let other = try await DHTService.start(otherOptions)
        defer { Task { await other.stop() } }
        _ = await other.bootstrap([Endpoint(ip: .loopbackV4, port: dht.port)])
        #expect(await other.routingTableSize >= 1, "the DHT node on the shared port did not answer")
    }
}

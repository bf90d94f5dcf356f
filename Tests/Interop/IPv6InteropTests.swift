import BitTorrent
import BitTorrentTracker
import Foundation
import MainlineDHT
import PeerNet
import Synchronization
import TestSupport
import Testing

/// BitTorrent over IPv6 on `::1`: a libtorrent seeder found through a tracker's `peers6` (BEP 7)
/// and through the DHT's IPv6 node (BEP 32's `nodes6` and IPv6 `values`), then downloaded from.
@Suite("IPv6 with libtorrent", .serialized)
struct IPv6InteropTests {
    @Test(
        "PeerStack finds a libtorrent seeder on ::1 in the PeerStack tracker's peers6 and downloads from it")
    func trackerPeers6() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        var configuration = TrackerConfiguration()
        configuration.announceInterval = 2
        configuration.minimumInterval = 1
        let tracker = try await TrackerServer.start(
            configuration: configuration, http: Endpoint(ip: .loopbackV6, port: 0), udp: nil)
        defer { Task { await tracker.stop() } }
        var metainfo = payload.metainfo
        metainfo.announce = "http://[::1]:\(tracker.httpAddress?.port ?? 0)/announce"
        let torrent = payload.payloads.root.appendingPathComponent("v6.torrent")
        try Data(metainfo.encoded()).write(to: torrent)
        let seeder = try BackgroundProgram(
            Interop.python,
            [
                Interop.peerScript, "seed", torrent.path, payload.seedDirectory.path, "\(freePort())", "150",
                "0",
                "--ipv6",
            ])
        defer { seeder.stop() }
        _ = try await seeder.waitForJSON("port", timeout: 30)
        let target = try payload.directory("get")
        var options = loopbackOptions(target)
        options.listenHost = "::1"
        let client = TorrentClient(metainfo: metainfo, options: options)
        let announced = Mutex(0)
        try await withDeadline(90, "a download from libtorrent on ::1 found by the tracker") {
            try await client.run { event in
                if case .trackerAnnounced(_, let peers) = event { announced.withLock { $0 = max($0, peers) } }
            }
        }
        #expect(await payload.isComplete(in: target))
        // The tracker's answer held libtorrent's ::1 address, which only `peers6` can carry.
        #expect(announced.withLock { $0 } >= 1, "no announce answered with a peer")
    }

    @Test("PeerStack's IPv6 DHT node finds a libtorrent seeder on ::1 (BEP 32) and the download completes")
    func dhtNodes6() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let libtorrent = try BackgroundProgram(
            Interop.python, [DHTInteropTests.script, "\(freePort())", "170", "--ipv6"])
        defer { libtorrent.stop() }
        let port = try await libtorrent.waitForJSON("port", timeout: 30)["port"] as? Int ?? 0
        func node() async throws -> DHTService {
            var options = DHTServiceOptions()
            options.address = .loopbackV6
            options.port = 0
            return try await DHTService.start(options)
        }
        // Two PeerStack nodes (one searches, the other holds what libtorrent announces too).
        let a = try await node()
        let b = try await node()
        defer {
            Task {
                await a.stop()
                await b.stop()
            }
        }
        _ = try await libtorrent.ask("add_node [::1]:\(a.port)", expecting: "added")
        _ = try await libtorrent.ask("add_node [::1]:\(b.port)", expecting: "added")
        _ = await b.bootstrap([Endpoint(ip: .loopbackV6, port: a.port)])
        _ = await a.bootstrap([Endpoint(ip: .loopbackV6, port: UInt16(port))])
        #expect(await a.routingTableSize >= 1, "PeerStack's IPv6 node learnt nothing from libtorrent")
        _ = try await libtorrent.ask(
            "seed \(payload.torrentFile.path) \(payload.seedDirectory.path)", expecting: "seeding")
        let target = try payload.directory("get")
        var options = loopbackOptions(target)
        options.listenHost = "::1"
        options.dht = a
        options.dhtInterval = .seconds(2)
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        try await withDeadline(120, "a download from libtorrent on ::1 found through the DHT") {
            try await client.run { _ in }
        }
        #expect(await payload.isComplete(in: target))
    }
}

import BitTorrent
import NIOPosix
import PeerNet
import Testing

@testable import BitTorrentTracker

/// The NIO driver end to end on loopback: one dual-stack server, clients over IPv4 and IPv6,
/// HTTP and UDP, through PeerStack's own tracker client.
struct TrackerServerTests {
    @Test("IPv4 and IPv6 clients over HTTP and UDP on one dual-stack server")
    func dualStack() async throws {
        let server: TrackerServer
        do {
            server = try await TrackerServer.start(
                configuration: TrackerConfiguration(), http: Endpoint(ip: .anyV6, port: 0),
                udp: Endpoint(ip: .anyV6, port: 0))
        } catch {
            // No IPv6 on this machine: nothing to test here.
            return
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = TrackerClient(loop: group.next())
        let hash = InfoHash(String(repeating: "5a", count: 20))!
        let http = server.httpAddress?.port ?? 0
        let udp = server.udpAddress?.port ?? 0
        func announce(_ url: String, port: UInt16) async throws -> AnnounceResponse {
            var request = AnnounceRequest(
                infoHash: hash, peerID: Array(repeating: UInt8(port & 0xFF), count: 20), port: port)
            request.event = .started
            request.left = 1
            // Generous: the suite runs beside CPU-heavy interop tests on 2 cores.
            return try await client.announce(url, request, timeout: .seconds(15)).get()
        }
        _ = try await announce("udp://127.0.0.1:\(udp)/announce", port: 4001)
        _ = try await announce("http://127.0.0.1:\(http)/announce", port: 4002)
        _ = try await announce("udp://[::1]:\(udp)/announce", port: 6001)
        let fromSix = try await announce("http://[::1]:\(http)/announce", port: 6002)
        // HTTP gives both families (peers and peers6); UDP only the packet's own (BEP 15).
        #expect(
            Set(fromSix.peers.map(\.description)) == [
                "[::1]:6001", "127.0.0.1:4001", "127.0.0.1:4002",
            ])
        let udpSix = try await announce("udp://[::1]:\(udp)/announce", port: 6003)
        #expect(Set(udpSix.peers.map(\.description)) == ["[::1]:6001", "[::1]:6002"])
        let udpFour = try await announce("udp://127.0.0.1:\(udp)/announce", port: 4003)
        #expect(Set(udpFour.peers.map(\.description)) == ["127.0.0.1:4001", "127.0.0.1:4002"])
        let counts = try await client.scrape(
            "http://127.0.0.1:\(http)/announce", [hash], timeout: .seconds(5)
        ).get()
        #expect(counts[hash] == ScrapeStats(seeders: 0, completed: 0, leechers: 6))
        let statistics = try await server.statistics()
        #expect(statistics.counters.udpAnnounces == 4 && statistics.counters.httpAnnounces == 2)
        try await group.shutdownGracefully()
        await server.stop()
    }
}

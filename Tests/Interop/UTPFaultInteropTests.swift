import BitTorrent
import Foundation
import PeerNet
import TestSupport
import Testing

/// uTP over a bad link: libtorrent seeds over uTP only behind `lossy_link.py`, a UDP relay that
/// drops 5 % of the datagrams each way and delays the rest by 100 ms (plus up to 60 ms more in
/// the second case, which reorders them). This machine's kernel has no `tc netem`
/// (CONFIG_NET_SCH_NETEM is not set), so the link is emulated in user space, for UDP only.
/// `Benchmarks/faults.sh` runs the same on 64 MiB against libtorrent downloading over the link.
@Suite("uTP over a lossy, slow, reordering link", .serialized)
struct UTPFaultInteropTests {
    static let link = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/lossy_link.py").path

    @Test(
        "1 MiB from libtorrent over uTP through 5 % loss and 100 ms delay, then with reordering",
        arguments: [0, 60])
    func lossyLink(jitterMilliseconds: Int) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false, size: 1 << 20)
        defer { payload.payloads.remove() }
        let (seeder, port) = try await startLibtorrentSeeder(payload, ["--utp-only"])
        defer { seeder.stop() }
        let relay = try BackgroundProgram(
            Interop.python, [Self.link, "\(port)", "0.05", "100", "\(jitterMilliseconds)", "170"])
        defer { relay.stop() }
        let linkPort = try await relay.waitForJSON("port", timeout: 20)["port"] as? Int ?? 0
        let target = try payload.directory("get")
        var options = loopbackOptions(target, peers: ["127.0.0.1:\(linkPort)"])
        options.transport = .utp
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        let started = ContinuousClock.now
        try await withDeadline(150, "a uTP download over a lossy link") { try await client.run { _ in } }
        #expect(await payload.isComplete(in: target))
        print(
            "uTP over 5 % loss, 100 ms delay, jitter \(jitterMilliseconds) ms: 1 MiB in \(ContinuousClock.now - started)"
        )
    }
}

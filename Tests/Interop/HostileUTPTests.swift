import BitTorrent
import Foundation
import PeerNet
import TestSupport
import Testing

/// The uTP side of a PeerStack seeder under a flood of connections that never handshake:
/// admission (the oldest handshaking connection makes room) and the handshake deadline bound
/// them, and libtorrent, over uTP only, downloads meanwhile.
@Suite("Hostile uTP peers", .serialized)
struct HostileUTPTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/utp_flood.py").path

    @Test("600 uTP connections that never handshake while libtorrent downloads over uTP from the same seeder")
    func synFlood() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let port = freePort()
        let seeder = TorrentClient(
            metainfo: payload.metainfo,
            options: loopbackOptions(payload.seedDirectory, port: port, seed: true))
        let seeding = Task { try await seeder.run { _ in } }
        defer { seeding.cancel() }
        try await waitForListening(port: port, timeout: 20)
        let flood = try BackgroundProgram(Interop.python, [Self.script, "\(port)", "600", "60"])
        defer { flood.stop() }
        _ = try await flood.waitForJSON("started", timeout: 20)
        let target = try payload.directory("lt")
        let leecher = try libtorrentGet(
            payload.torrentFile.path, into: target, seconds: 90, ["127.0.0.1:\(port)", "--utp-only"])
        defer { leecher.stop() }
        let result = try await leecher.waitForJSON("complete", timeout: 100)
        #expect(result["complete"] as? Bool == true, "libtorrent: \(leecher.text.suffix(500))")
        #expect(await payload.isComplete(in: target))
    }
}

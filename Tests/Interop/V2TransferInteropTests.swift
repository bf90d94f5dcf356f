import BitTorrent
import Foundation
import PeerNet
import TestSupport
import Testing

/// BitTorrent v2 and hybrid torrents (BEP 52) between PeerStack and libtorrent 2.0, both ways:
/// pieces checked by merkle hashes, piece layers fetched with hash requests for a magnet link.
@Suite("v2 and hybrid transfers with libtorrent", .serialized)
struct V2TransferInteropTests {
    /// A magnet link naming the torrent by its v2 hash (`btmh`), by both for a hybrid.
    static func magnet(_ metainfo: Metainfo, port: Int, v2Only: Bool) -> String {
        var uri = "magnet:?xt=urn:btmh:1220\(metainfo.infoHashV2?.hex ?? "")"
        if !v2Only, let v1 = metainfo.infoHashV1 { uri += "&xt=urn:btih:\(v1.hex)" }
        return uri + "&x.pe=127.0.0.1:\(port)"
    }

    @Test(
        "PeerStack downloads a v2 and a hybrid torrent from a libtorrent seeder, from the .torrent and a btmh magnet",
        arguments: [(MetaVersion.v2, false), (.v2, true), (.hybrid, false), (.hybrid, true)])
    func downloadFromLibtorrent(version: MetaVersion, magnet: Bool) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: true, version: version)
        defer { payload.payloads.remove() }
        #expect(payload.metainfo.info.version == version)
        let (seeder, port) = try await startLibtorrentSeeder(payload)
        defer { seeder.stop() }
        let target = try payload.directory("get")
        let client: TorrentClient
        if magnet {
            let link = try MagnetLink(
                parsing: Self.magnet(payload.metainfo, port: port, v2Only: version == .v2))
            client = try TorrentClient(magnet: link, options: loopbackOptions(target))
        } else {
            client = TorrentClient(
                metainfo: payload.metainfo, options: loopbackOptions(target, peers: ["127.0.0.1:\(port)"]))
        }
        try await withDeadline(90, "\(version) download from libtorrent") { try await client.run { _ in } }
        #expect(await payload.isComplete(in: target))
    }

    @Test(
        "libtorrent downloads a v2 and a hybrid torrent from a PeerStack seeder, from the .torrent and a magnet",
        arguments: [(MetaVersion.v2, false), (.v2, true), (.hybrid, false), (.hybrid, true)])
    func libtorrentDownloadsFromUs(version: MetaVersion, magnet: Bool) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: true, version: version)
        defer { payload.payloads.remove() }
        let port = freePort()
        let seeder = TorrentClient(
            metainfo: payload.metainfo,
            options: loopbackOptions(payload.seedDirectory, port: port, seed: true))
        let seeding = Task { try await seeder.run { _ in } }
        defer { seeding.cancel() }
        let target = try payload.directory("lt")
        let source =
            magnet
            ? Self.magnet(payload.metainfo, port: port, v2Only: version == .v2) : payload.torrentFile.path
        let leecher = try BackgroundProgram(
            Interop.python,
            [Interop.peerScript, "get", source, target.path, "\(freePort())", "90", "127.0.0.1:\(port)"])
        defer { leecher.stop() }
        let result = try await leecher.waitForJSON("complete", timeout: 100)
        #expect(result["complete"] as? Bool == true, "libtorrent: \(leecher.text.suffix(500))")
        #expect(await payload.isComplete(in: target))
        seeding.cancel()
        _ = try? await seeding.value
    }
}

import BitTorrent
import Foundation
import PeerNet
import TestSupport
import Testing

/// uTP (BEP 29) with real peers: libtorrent with TCP switched off both ways, and Transmission
/// 3.00 with uTP on, which PeerStack dials over uTP only (`transport = .utp`), so a download
/// that completes went over uTP.
@Suite("uTP with libtorrent and Transmission", .serialized)
struct UTPInteropTests {
    @Test(
        "PeerStack downloads over uTP from a libtorrent seeder that has TCP off, plain and with MSE required")
    func downloadFromLibtorrent() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        for encrypted in [false, true] {
            let payload = try await TransferPayload(multiFile: true)
            defer { payload.payloads.remove() }
            let flags = ["--utp-only"] + (encrypted ? ["--encryption=forced"] : [])
            let (seeder, port) = try await startLibtorrentSeeder(payload, flags)
            defer { seeder.stop() }
            let target = try payload.directory("get")
            var options = loopbackOptions(target, peers: ["127.0.0.1:\(port)"])
            options.transport = .utp
            if encrypted { options.encryption = .require }
            let client = TorrentClient(metainfo: payload.metainfo, options: options)
            try await withDeadline(90, "a uTP download from libtorrent") { try await client.run { _ in } }
            #expect(await payload.isComplete(in: target), "encrypted: \(encrypted)")
        }
    }

    @Test("libtorrent with TCP off downloads over uTP from a PeerStack seeder, plain and with MSE required")
    func uploadToLibtorrent() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        for encrypted in [false, true] {
            let payload = try await TransferPayload(multiFile: false)
            defer { payload.payloads.remove() }
            let flags = ["--utp-only"] + (encrypted ? ["--encryption=forced"] : [])
            try await libtorrentDownloadsFromPeerStack(
                payload, encryption: encrypted ? .require : .prefer, flags
            ) {
                _ in payload.torrentFile.path
            }
        }
    }

    @Test("Transmission downloads over uTP from a PeerStack seeder that dials it over uTP only")
    func transmissionFromPeerStack() async throws {
        try #require(Interop.enabled("transmission-cli"), "transmission-cli is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let target = try payload.directory("transmission")
        let (program, port, finished) = try transmission(
            payload.torrentFile, downloadTo: target, root: payload.payloads.root, utp: true)
        defer { program.stop() }
        var options = loopbackOptions(payload.seedDirectory, peers: ["127.0.0.1:\(port)"], seed: true)
        options.transport = .utp
        let seeder = TorrentClient(metainfo: payload.metainfo, options: options)
        let seeding = Task { try await seeder.run { _ in } }
        defer { seeding.cancel() }
        try await waitForFile(finished, timeout: 120, "Transmission finishing a uTP download")
        #expect(await payload.isComplete(in: target))
    }

    @Test("PeerStack downloads over uTP only from a Transmission seeder")
    func peerStackFromTransmission() async throws {
        try #require(Interop.enabled("transmission-cli"), "transmission-cli is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let (program, port, _) = try transmission(
            payload.torrentFile, downloadTo: payload.seedDirectory, root: payload.payloads.root, utp: true)
        defer { program.stop() }
        let target = try payload.directory("get")
        var options = loopbackOptions(target, peers: ["127.0.0.1:\(port)"])
        options.transport = .utp
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        try await withDeadline(120, "a uTP download from Transmission") { try await client.run { _ in } }
        #expect(await payload.isComplete(in: target))
    }
}

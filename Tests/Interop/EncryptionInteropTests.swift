import BitTorrent
import Foundation
import PeerNet
import TestSupport
import Testing

/// MSE/PE with libtorrent forced to encrypt (RC4 only, both ways): PeerStack reaches it and is
/// reached by it when it requires or prefers encryption, and not when it disables encryption;
/// an aria2 seeder that requires encryption. (Transmission and aria2 leechers that require it:
/// `TrackerAndClientsInteropTests`.)
@Suite("Encryption (MSE/PE) with libtorrent and aria2", .serialized)
struct EncryptionInteropTests {
    @Test(
        "PeerStack downloads from a libtorrent seeder that requires encryption",
        arguments: [EncryptionPolicy.require, .prefer])
    func downloadEncrypted(policy: EncryptionPolicy) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let (seeder, port) = try await startLibtorrentSeeder(payload, ["--encryption=forced"])
        defer { seeder.stop() }
        let target = try payload.directory("get")
        var options = loopbackOptions(target, peers: ["127.0.0.1:\(port)"])
        options.encryption = policy
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        try await withDeadline(90, "an encrypted download from libtorrent") { try await client.run { _ in } }
        #expect(await payload.isComplete(in: target))
    }

    @Test(
        "libtorrent requiring encryption downloads from a PeerStack seeder",
        arguments: [EncryptionPolicy.require, .prefer])
    func uploadEncrypted(policy: EncryptionPolicy) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        try await libtorrentDownloadsFromPeerStack(payload, encryption: policy, ["--encryption=forced"]) {
            _ in
            payload.torrentFile.path
        }
    }

    @Test(
        "PeerStack requiring encryption downloads from an aria2 seeder that requires it (--bt-require-crypto)"
    )
    func downloadFromAria2Encrypted() async throws {
        try #require(Interop.enabled("aria2c"), "aria2c is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let port = freePort()
        let seeder = try BackgroundProgram(
            try Interop.program("aria2c"),
            [
                "--seed-time=3", "--seed-ratio=0.0", "--bt-seed-unverified=true", "--enable-dht=false",
                "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
                "--listen-port=\(port)", "--summary-interval=0", "--console-log-level=warn",
                "--bt-require-crypto=true", "--bt-min-crypto-level=arc4", "-d", payload.seedDirectory.path,
                payload.torrentFile.path,
            ])
        defer { seeder.stop() }
        let target = try payload.directory("get")
        var options = loopbackOptions(target, peers: ["127.0.0.1:\(port)"])
        options.encryption = .require
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        try await waitForListening(port: port, timeout: 20)
        try await withDeadline(90, "an encrypted download from aria2") { try await client.run { _ in } }
        #expect(await payload.isComplete(in: target))
    }

    @Test("preferring encryption, PeerStack falls back to plaintext with a libtorrent that refuses MSE")
    func preferFallsBack() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let (seeder, port) = try await startLibtorrentSeeder(payload, ["--encryption=disabled"])
        defer { seeder.stop() }
        let target = try payload.directory("get")
        var options = loopbackOptions(target, peers: ["127.0.0.1:\(port)"])
        options.encryption = .prefer
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        try await withDeadline(90, "a plain download after a refused MSE attempt") {
            try await client.run { _ in }
        }
        #expect(await payload.isComplete(in: target))
    }

    @Test("with encryption disabled, PeerStack cannot talk to a libtorrent that requires it")
    func disabledCannotReach() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let (seeder, port) = try await startLibtorrentSeeder(payload, ["--encryption=forced"])
        defer { seeder.stop() }
        let target = try payload.directory("get")
        var options = loopbackOptions(target, peers: ["127.0.0.1:\(port)"])
        options.encryption = .disable
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        let connected = EventLog()
        let running = Task {
            try await client.run { event in
                if case .peerConnected = event { connected.add(event) }
            }
        }
        defer { running.cancel() }
        // libtorrent answers a plain handshake by closing: within 5 s not one connection stands.
        let any = try await eventually(timeout: 5) { !connected.all.isEmpty }
        #expect(!any, "a plain connection to a libtorrent that requires encryption")
        running.cancel()
        _ = try? await running.value
        #expect(await !payload.isComplete(in: target))
    }
}

import BitTorrent
import Foundation
import TestSupport
import Testing

/// A PeerStack seeder (the `peerstack torrent seed` process) under attack while libtorrent
/// downloads from it: the attack costs bounded memory, and the honest peer finishes.
@Suite("A PeerStack seeder contains hostile peers", .serialized)
struct HostileSeederTests {
    static let flood = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/flood_peer.py").path

    /// A 64 MiB single-file torrent and a `peerstack torrent seed` process serving it.
    static func startSeeder() async throws -> (Payloads, URL, BackgroundProgram, Int) {
        let payloads = try Payloads()
        try payloads.write("seed/big.bin", size: 64 << 20, seed: 21)
        let metainfo = try await TorrentCreator.create(
            from: try TorrentCreator.scan(payloads.root.appendingPathComponent("seed/big.bin").path),
            options: .init())
        let torrent = payloads.root.appendingPathComponent("big.torrent")
        try Data(metainfo.encoded()).write(to: torrent)
        let port = freePort()
        let seeder = try BackgroundProgram(
            try peerstackExecutable().path,
            [
                "torrent", "seed", torrent.path, payloads.root.appendingPathComponent("seed").path,
                "--port", "\(port)", "--listen", "127.0.0.1", "--no-dht", "-v",
            ])
        try await seeder.waitForLine(timeout: 60, "the seeder seeding") { $0.contains("seeding") }
        return (payloads, torrent, seeder, port)
    }

    @Test(
        "four peers that flood block and ut_metadata requests and never read, for 20 s: the seeder stays within +64 MiB and libtorrent finishes"
    )
    func requestFlood() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let (payloads, torrent, seeder, port) = try await Self.startSeeder()
        defer {
            seeder.stop()
            payloads.remove()
        }
        let baseline = seeder.residentBytes ?? 0
        let target = payloads.root.appendingPathComponent("lt")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        let peak = try await seeder.peakResidentBytes {
            let flooders = try BackgroundProgram(
                "/usr/bin/nice",
                [
                    "-n", "10", Interop.python, Self.flood, "flood", torrent.path, "127.0.0.1:\(port)", "4",
                    "20",
                ])
            defer { flooders.stop() }
            _ = try await flooders.waitForJSON("started", timeout: 10)
            try await Task.sleep(for: .seconds(2))  // the flood is on before the honest peer comes
            let leecher = try BackgroundProgram(
                Interop.python,
                [
                    Interop.peerScript, "get", torrent.path, target.path, "\(freePort())", "90",
                    "127.0.0.1:\(port)",
                ])
            defer { leecher.stop() }
            let result = try await leecher.waitForJSON("complete", timeout: 100)
            #expect(
                result["complete"] as? Bool == true,
                "libtorrent: \(leecher.text.suffix(500))\nseeder: \(seeder.text.suffix(3000))")
            let sent = try await flooders.waitForJSON("sent", timeout: 40)["sent"] as? Int ?? 0
            #expect(sent > 1 << 20, "the flood sent only \(sent) bytes")
        }
        let growth = peak - baseline
        #expect(growth <= 64 << 20, "the seeder grew by \(growth >> 20) MiB (from \(baseline >> 20) MiB)")
        #expect(seeder.isRunning)
    }

    @Test(
        "300 sockets that never send a handshake are all closed by the deadline, and libtorrent still downloads"
    )
    func silentSockets() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let (payloads, torrent, seeder, port) = try await Self.startSeeder()
        defer {
            seeder.stop()
            payloads.remove()
        }
        let silent = try BackgroundProgram(
            Interop.python, [Self.flood, "silent", torrent.path, "127.0.0.1:\(port)", "300", "40"])
        defer { silent.stop() }
        try await Task.sleep(for: .seconds(1))
        let target = payloads.root.appendingPathComponent("lt")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        let leecher = try BackgroundProgram(
            Interop.python,
            [
                Interop.peerScript, "get", torrent.path, target.path, "\(freePort())", "60",
                "127.0.0.1:\(port)",
            ])
        defer { leecher.stop() }
        let result = try await leecher.waitForJSON("complete", timeout: 70)
        #expect(result["complete"] as? Bool == true, "libtorrent: \(leecher.text.suffix(500))")
        // The handshake deadline is 15 s: by then every silent socket is closed.
        let closed = try await silent.waitForJSON("closed", timeout: 45)
        #expect(closed["closed"] as? Int == 300, "\(closed)")
        #expect((closed["after"] as? Double ?? 99) <= 20, "\(closed)")
    }
}

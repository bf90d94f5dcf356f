import BitTorrent
import Foundation
import SystemPackage
import Testing

@Suite("Swarms with several real clients", .serialized)
struct SwarmInteropTests {
    @Test("PEX from libtorrent (BEP 11) gives PeerStack a peer it was never told about")
    func pexFromLibtorrent() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        // Nobody may become a seed: libtorrent drops seed-to-seed (and upload-only) connections
        // and lists only connected peers in PEX. So the libtorrent peer in the middle has just
        // the first half of the data, and everyone stays incomplete.
        let half = try payload.halfCopy()
        let middle = try BackgroundProgram(
            Interop.python,
            [Interop.peerScript, "get", payload.torrentFile.path, half.path, "\(freePort())", "150"])
        defer { middle.stop() }
        let middlePort = try await middle.waitForJSON("port", timeout: 30)["port"] as? Int ?? 0
        // A second libtorrent peer that only the middle one knows about.
        let otherPort = freePort()
        let other = try BackgroundProgram(
            Interop.python,
            [
                Interop.peerScript, "get", payload.torrentFile.path, try payload.directory("other").path,
                "\(otherPort)",
                "150", "127.0.0.1:\(middlePort)",
            ])
        defer { other.stop() }
        _ = try await other.waitForJSON("port", timeout: 30)
        let log = EventLog()
        let client = TorrentClient(
            metainfo: payload.metainfo,
            options: loopbackOptions(
                try payload.directory("get"), peers: ["127.0.0.1:\(middlePort)"], seed: true))
        let running = Task { try await client.run { log.add($0) } }
        defer { running.cancel() }
        // libtorrent sends its first PEX list within seconds of the extension handshake.
        let found = try await eventually(timeout: 45) {
            log.all.contains { $0.hasPrefix("connected 127.0.0.1:\(otherPort) out") }
        }
        #expect(found, "never dialled the peer libtorrent's PEX named: \(log.all.suffix(8))")
        running.cancel()
        _ = try? await running.value
    }

    @Test("PEX from PeerStack (BEP 11) introduces two libtorrent peers to each other")
    func pexToLibtorrent() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        // PeerStack in the middle holds half the data, so nobody completes and every
        // connection stays up (libtorrent drops seed-to-seed connections).
        let half = try payload.halfCopy()
        let middlePort = freePort()
        let middle = TorrentClient(
            metainfo: payload.metainfo, options: loopbackOptions(half, port: middlePort))
        let running = Task { try await middle.run { _ in } }
        defer { running.cancel() }
        try await Task.sleep(for: .seconds(1))
        let portA = freePort()
        let portB = freePort()
        let peerA = try BackgroundProgram(
            Interop.python,
            [
                Interop.peerScript, "get", payload.torrentFile.path, try payload.directory("a").path,
                "\(portA)", "90",
                "127.0.0.1:\(middlePort)",
            ])
        defer { peerA.stop() }
        let peerB = try BackgroundProgram(
            Interop.python,
            [
                Interop.peerScript, "get", payload.torrentFile.path, try payload.directory("b").path,
                "\(portB)", "90",
                "127.0.0.1:\(middlePort)",
            ])
        defer { peerB.stop() }
        // Each was told only of PeerStack; PeerStack's PEX names the other.
        let introduced = try await eventually(timeout: 30) {
            peerA.text.contains("\"127.0.0.1:\(portB)\"") || peerB.text.contains("\"127.0.0.1:\(portA)\"")
        }
        #expect(introduced, "A: \(peerA.text.suffix(300)) B: \(peerB.text.suffix(300))")
        running.cancel()
        _ = try? await running.value
    }

    @Test("a mixed swarm completes for all: libtorrent seeds, PeerStack, aria2 and Transmission leech")
    func mixedSwarm() async throws {
        for program in ["libtorrent", "aria2c", "transmission-cli", "opentracker"] {
            try #require(Interop.enabled(program), "\(program) is not installed")
        }
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let tracker = try await OpenTracker(whitelist: [payload.metainfo.infoHash], in: payload.payloads.root)
        defer { tracker.program.stop() }
        var metainfo = payload.metainfo
        metainfo.announce = tracker.http
        let torrent = payload.payloads.root.appendingPathComponent("tracked.torrent")
        try Data(metainfo.encoded()).write(to: torrent)
        let seeder = try BackgroundProgram(
            Interop.python,
            [Interop.peerScript, "seed", torrent.path, payload.seedDirectory.path, "\(freePort())", "180"])
        defer { seeder.stop() }
        _ = try await seeder.waitForJSON("port", timeout: 30)

        let ariaTarget = try payload.directory("aria2")
        let aria2 = try aria2Get(torrent, into: ariaTarget)
        defer { aria2.stop() }
        let transmissionTarget = try payload.directory("transmission")
        let (transmissionProgram, transmissionPort, finished) = try transmission(
            torrent, downloadTo: transmissionTarget, root: payload.payloads.root)
        defer { transmissionProgram.stop() }
        let ourTarget = try payload.directory("peerstack")
        var options = loopbackOptions(ourTarget, peers: ["127.0.0.1:\(transmissionPort)"], seed: true)
        options.trackers = [[tracker.http]]
        let client = TorrentClient(metainfo: metainfo, options: options)
        let completed = EventLog()
        let running = Task {
            try await client.run { event in
                if case .completed = event { completed.add(event) }
            }
        }
        defer { running.cancel() }
        // Transmission never dials loopback peers: PeerStack dials it, and so does the seeder.
        try await Task.sleep(for: .seconds(1))
        seeder.send("connect 127.0.0.1:\(transmissionPort)\n")

        #expect(try await aria2.waitForExit(timeout: 120) == 0, "aria2: \(aria2.text.suffix(500))")
        try await waitForFile(finished, timeout: 120, "Transmission finishing")
        #expect(try await eventually(timeout: 60) { !completed.all.isEmpty }, "PeerStack did not complete")
        for target in [ariaTarget, transmissionTarget, ourTarget] {
            #expect(
                await payload.isComplete(in: target), "\(target.lastPathComponent) has wrong or missing data")
        }
        running.cancel()
        _ = try? await running.value
    }
}

import BitTorrent
import Foundation
import SystemPackage
import TestSupport
import Testing

@Suite("Crash safety", .serialized)
struct ResumeInteropTests {
    @Test("after kill -9 mid-download, a restart keeps what was verified and ends with correct data")
    func killNine() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        // 3 MB/s (libtorrent applies the limit to loopback peers too, see lt_peer.py): the 34 MB
        // download takes about 11 s, while the kills below wait on what is on disk, not on time.
        let (seeder, port) = try await startLibtorrentSeeder(payload, uploadLimit: 3_000_000)
        defer { seeder.stop() }
        let target = try payload.directory("get")
        let binary = try peerstackExecutable().path
        let arguments = [
            "torrent", "get", payload.torrentFile.path, "-o", target.path, "--peer", "127.0.0.1:\(port)",
            "--port", "0", "--listen", "127.0.0.1", "--no-dht",
        ]
        let pieceLength = payload.metainfo.info.pieceLength
        // Kill twice while data is arriving, each time once more pieces are verified on disk
        // than before (pieces reach the disk only once they passed their hash) and the download
        // is not complete: some pieces verified, some in flight; the next run must keep the
        // first and redo the second.
        var verified = 0
        for round in 1...2 {
            let run = try BackgroundProgram(binary, arguments)
            let deadline = Date().addingTimeInterval(60)
            var killed = false
            while Date() < deadline, run.isRunning {
                let now = await TorrentVerifier.verify(payload.metainfo, in: FilePath(target.path))
                let good = now.goodPieces.filter { $0 }.count
                if good > verified, !now.isComplete {
                    run.signal(SIGKILL)
                    killed = true
                    verified = good
                    break
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            _ = try await run.waitForExit(timeout: 10)
            #expect(killed, "round \(round): no partial state to kill in (\(verified) pieces verified)")
        }
        let before = await TorrentVerifier.verify(payload.metainfo, in: FilePath(target.path))
        #expect(
            !before.isComplete, "the download finished before it could be killed; the test proves nothing")
        let last = try BackgroundProgram(binary, arguments)
        defer { last.stop() }
        let status = try await last.waitForExit(timeout: 90)
        #expect(status == 0, "\(last.text.suffix(500))")
        #expect(await payload.isComplete(in: target))
        // Nothing verified before the crash was fetched again.
        let line = try await last.waitForLine(timeout: 1, "completion line") {
            $0.contains("bytes downloaded from peers")
        }
        let downloaded =
            Int(line.components(separatedBy: ", ").last?.split(separator: " ").first ?? "") ?? Int.max
        let missing = before.goodPieces.filter { !$0 }.count
        #expect(
            downloaded <= missing * pieceLength, "downloaded \(downloaded) with \(missing) pieces missing")
    }
}

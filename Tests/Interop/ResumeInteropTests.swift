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
        // 6 MB/s: the 34 MB download takes about 6 s, so the kills below land mid-download
        // however fast the machine is, and even when a loaded machine wakes the test late.
        let (seeder, port) = try await startLibtorrentSeeder(payload, uploadLimit: 6_000_000)
        defer { seeder.stop() }
        let target = try payload.directory("get")
        let binary = try peerstackExecutable().path
        let arguments = [
            "torrent", "get", payload.torrentFile.path, "-o", target.path, "--peer", "127.0.0.1:\(port)",
            "--port", "0", "--listen", "127.0.0.1",
        ]
        let pieceLength = payload.metainfo.info.pieceLength
        // Kill at a few moments while data is arriving: each time some pieces may be verified,
        // some half-written; the next run must keep the first and redo the second.
        for delay in [150, 300] {
            let run = try BackgroundProgram(binary, arguments)
            // Wait until data is arriving (blocks on disk: the file may be sparse at full size
            // from the start), then a little more.
            let deadline = Date().addingTimeInterval(30)
            while Date() < deadline {
                var info = stat()
                if stat(target.appendingPathComponent("tree/a.bin").path, &info) == 0, info.st_blocks > 0 {
                    break
                }
                try await Task.sleep(for: .milliseconds(10))
            }
            try await Task.sleep(for: .milliseconds(delay))
            run.signal(SIGKILL)
            _ = try await run.waitForExit(timeout: 10)
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

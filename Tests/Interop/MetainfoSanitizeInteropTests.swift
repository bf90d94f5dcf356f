import Foundation
import Testing

@testable import BitTorrent

/// Malformed paths that libtorrent loads by sanitising them: PeerStack opens the same torrents
/// and puts their files at the same safe paths; what libtorrent refuses, PeerStack refuses.
@Suite("Malformed torrent paths, sanitised as libtorrent sanitises them")
struct MetainfoSanitizeInteropTests {
    @Test(
        "every case lt_sanitize.py builds with libtorrent's bencoder: same paths (padding aside) or both refuse; no path can leave the download directory",
        .enabled(if: Interop.enabled("libtorrent")))
    func sameSafePaths() throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lt-sanitize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Scripts/lt_sanitize.py")
        let run = try Interop.run(Interop.python, [script.path, work.path], timeout: 60)
        try #require(run.status == 0, "lt_sanitize.py: \(run.stderr)")
        let expected = try #require(
            try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: [String: Any]])
        #expect(expected.count >= 25)
        for (name, libtorrent) in expected.sorted(by: { $0.key < $1.key }) {
            let path = work.appendingPathComponent("\(name).torrent")
            if let refusal = libtorrent["refused"] as? String {
                #expect(throws: MetainfoError.self, "\(name): libtorrent refuses it (\(refusal))") {
                    try Metainfo(contentsOf: .init(path.path))
                }
                continue
            }
            let metainfo: Metainfo
            do {
                metainfo = try Metainfo(contentsOf: .init(path.path))
            } catch {
                Issue.record("\(name): libtorrent loads it, PeerStack refused: \(error)")
                continue
            }
            let info = metainfo.info
            let files = info.files.filter { !$0.isPadding }
            let paths = files.map { info.relativePath(of: $0).joined(separator: "/") }
            #expect(paths == libtorrent["paths"] as? [String], "\(name)")
            for file in files {
                let components = info.relativePath(of: file)
                #expect(
                    !components.contains {
                        $0.isEmpty || $0 == "." || $0 == ".." || $0.contains("/") || $0.contains("\0")
                    },
                    "\(name): \(components)")
            }
        }
    }
}

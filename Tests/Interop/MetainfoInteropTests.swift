import Foundation
import SystemPackage
import Testing

@testable import BitTorrent

/// PeerStack's reading of a torrent, in libtorrent's terms, to compare the two.
func peerstackView(_ metainfo: Metainfo) -> (infoHash: String, pieceLength: Int, files: [LibtorrentInfo.File])
{
    let info = metainfo.info
    let files = info.files.map { file in
        LibtorrentInfo.File(
            path: info.relativePath(of: file).joined(separator: "/"), size: file.length, pad: file.isPadding,
            offset: file.offset)
    }
    return (metainfo.infoHash.hex, info.pieceLength, files)
}

/// The tools that make torrents, each run on a payload to produce `out`.
enum Maker: String, CaseIterable, Sendable {
    case libtorrent = "libtorrent v1"
    case libtorrentPadded = "libtorrent v1 with BEP 47 pad files"
    case libtorrentHybrid = "libtorrent hybrid v1+v2"
    case mktorrent
    case transmission = "transmission-create"

    var program: String {
        switch self {
        case .libtorrent, .libtorrentPadded, .libtorrentHybrid: return "libtorrent"
        case .mktorrent: return "mktorrent"
        case .transmission: return "transmission-create"
        }
    }

    func make(_ path: URL, into out: URL) throws {
        let tracker = "http://127.0.0.1:9/announce"
        switch self {
        case .libtorrent:
            _ = try Interop.libtorrent(LibtorrentPieceLength.self, ["create", path.path, out.path, "v1"])
        case .libtorrentPadded:
            _ = try Interop.libtorrent(LibtorrentPieceLength.self, ["create", path.path, out.path, "v1pad"])
        case .libtorrentHybrid:
            _ = try Interop.libtorrent(LibtorrentPieceLength.self, ["create", path.path, out.path, "hybrid"])
        case .mktorrent:
            try Interop.check(
                try Interop.program("mktorrent"), ["-a", tracker, "-l", "15", "-o", out.path, path.path])
        case .transmission:
            try Interop.check(
                try Interop.program("transmission-create"), ["-t", tracker, "-o", out.path, path.path])
        }
    }
}

@Suite("Metainfo interop with libtorrent, mktorrent and transmission-create", .serialized)
struct MetainfoInteropTests {
    @Test(
        "PeerStack reads torrents made by real tools: libtorrent's info-hash and file list, and the data verifies",
        arguments: Maker.allCases, ["single.bin", "tree"])
    func readsRealTorrents(maker: Maker, shape: String) async throws {
        try #require(Interop.enabled(maker.program), "\(maker.program) is not installed")
        let payloads = try Payloads.standard()
        defer { payloads.remove() }
        let torrent = payloads.root.appendingPathComponent("\(shape).torrent")
        try maker.make(payloads.root.appendingPathComponent(shape), into: torrent)

        let metainfo = try Metainfo(contentsOf: FilePath(torrent.path))
        let libtorrent = try Interop.libtorrent(LibtorrentInfo.self, ["info", torrent.path])
        let ours = peerstackView(metainfo)
        #expect(ours.infoHash == libtorrent.infoHash)
        #expect(ours.pieceLength == libtorrent.pieceLength)
        #expect(metainfo.info.pieceCount == libtorrent.numPieces)
        #expect(metainfo.info.totalLength == libtorrent.totalSize)
        #expect(ours.files == libtorrent.files)
        #expect(metainfo.info.name == libtorrent.name)
        if maker == .libtorrentPadded && shape == "tree" {
            #expect(metainfo.info.files.contains { $0.isPadding }, "expected BEP 47 pad files")
        }
        // Re-encoding keeps the info dictionary's bytes, so the hash survives.
        #expect(try Metainfo(parsing: metainfo.encoded()).infoHash == metainfo.infoHash)

        let report = await TorrentVerifier.verify(metainfo, in: FilePath(payloads.root.path))
        #expect(
            report.isComplete,
            "PeerStack's verify found \(report.goodPieceCount) of \(report.goodPieces.count) pieces")
    }

    @Test(
        "libtorrent loads every torrent PeerStack creates, with the same info-hash and files, and its recheck passes",
        arguments: ["single.bin", "tree"], [nil, 32_768])
    func libtorrentAcceptsOurs(shape: String, pieceLength: Int?) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payloads = try Payloads.standard()
        defer { payloads.remove() }
        var options = TorrentCreationOptions()
        options.pieceLength = pieceLength
        options.trackerTiers = [["http://127.0.0.1:9/announce"], ["udp://127.0.0.1:9/announce"]]
        options.webSeeds = ["http://127.0.0.1:9/seed/"]
        options.comment = "made by PeerStack"
        options.isPrivate = pieceLength != nil
        let source = try TorrentCreator.scan(payloads.root.appendingPathComponent(shape).path)
        let metainfo = try await TorrentCreator.create(from: source, options: options)
        let torrent = payloads.root.appendingPathComponent("ours.torrent")
        try Data(metainfo.encoded()).write(to: torrent)

        let libtorrent = try Interop.libtorrent(LibtorrentInfo.self, ["info", torrent.path])
        let ours = peerstackView(metainfo)
        #expect(libtorrent.infoHash == ours.infoHash)
        #expect(libtorrent.files == ours.files)
        #expect(libtorrent.pieceLength == ours.pieceLength)
        #expect(libtorrent.trackers == ["http://127.0.0.1:9/announce", "udp://127.0.0.1:9/announce"])
        #expect(libtorrent.webSeeds == ["http://127.0.0.1:9/seed/"])
        #expect(libtorrent.comment == "made by PeerStack")
        #expect(libtorrent.private == options.isPrivate)
        if pieceLength == nil {
            let auto = try Interop.libtorrent(
                LibtorrentPieceLength.self, ["autopiece", "\(metainfo.info.totalLength)"])
            #expect(ours.pieceLength == auto.pieceLength, "automatic piece length differs from libtorrent's")
        }

        let recheck = try Interop.libtorrent(
            LibtorrentRecheck.self, ["recheck", torrent.path, payloads.root.path, "60"])
        #expect(recheck.checked)
        #expect(recheck.infoHash == ours.infoHash)
        #expect(recheck.validPieces == metainfo.info.pieceCount)
        #expect(recheck.isSeeding)
    }

    @Test("libtorrent's recheck of a PeerStack torrent notices a damaged byte (the check can fail)")
    func recheckCanFail() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payloads = try Payloads.standard()
        defer { payloads.remove() }
        let metainfo = try await TorrentCreator.create(
            from: try TorrentCreator.scan(payloads.root.appendingPathComponent("single.bin").path),
            options: .init())
        let torrent = payloads.root.appendingPathComponent("ours.torrent")
        try Data(metainfo.encoded()).write(to: torrent)
        let file = payloads.root.appendingPathComponent("single.bin")
        var data = try Data(contentsOf: file)
        data[500_000] ^= 1
        try data.write(to: file)
        let recheck = try Interop.libtorrent(
            LibtorrentRecheck.self, ["recheck", torrent.path, payloads.root.path, "60"])
        #expect(recheck.validPieces == metainfo.info.pieceCount - 1)
        let ours = await TorrentVerifier.verify(metainfo, in: FilePath(payloads.root.path))
        #expect(ours.goodPieceCount == recheck.validPieces)
    }
}

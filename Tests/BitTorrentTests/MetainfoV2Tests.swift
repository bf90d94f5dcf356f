import Bencode
import Foundation
import Testing

@testable import BitTorrent

/// BEP 52 metainfo, against torrents libtorrent 2.0.8 made (Tests/Vectors/README.md).
@Suite("v2 and hybrid metainfo (BEP 52)")
struct MetainfoV2Tests {
    static let directory: URL = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<2 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Vectors/bittorrent").standardized
    }()

    static func bytes(_ name: String) throws -> [UInt8] {
        Array(try Data(contentsOf: directory.appendingPathComponent(name)))
    }

    /// The vectors' files, in v2 (sorted) order, with the bytes they hold.
    static let data: [(path: [String], bytes: [UInt8])] = {
        let files: [(String, Int, Int)] = [
            ("a.bin", 70_000, 0), ("c.txt", 1, 3), ("empty", 0, 2), ("sub/b.bin", 16_385, 1),
            ("sub/d.bin", 16_384, 4),
        ]
        return files.map { (name: String, size: Int, k: Int) -> (path: [String], bytes: [UInt8]) in
            let bytes = (0..<size).map { UInt8(($0 * 7 + k) % 251) }
            return (name.split(separator: "/").map(String.init), bytes)
        }
    }()

    /// libtorrent's `file_storage.root(i)` for the files with data, in order.
    static let roots = [
        "cb966145801b0078527bd48ca6cb00b8e4b88539bb676a08cd2f443692721eb1",
        "084fed08b978af4d7d196a7446a86b58009e636b611db16211b65a9aadff29c5",
        "adc23d5c32edf3a8c494514bf0d91061fe53006a328898ddef680f58a55b2d30",
        "a2d5df9471ecb6947560e8ac16531483b67d35508c00c2a047f9fc78ed11b29c",
    ]

    static func leaves(_ bytes: [UInt8]) -> [[UInt8]] {
        stride(from: 0, to: bytes.count, by: MerkleTree.blockSize).map {
            MerkleTree.leaf(bytes[$0..<min($0 + MerkleTree.blockSize, bytes.count)])
        }
    }

    @Test("merkle roots of the files equal libtorrent's, and a piece layer leads to its root")
    func merkleRoots() {
        let withData = Self.data.filter { !$0.bytes.isEmpty }
        #expect(withData.map { Hex.encode(MerkleTree.root(leaves: Self.leaves($0.bytes))) } == Self.roots)
        let layer = MerkleTree.pieceLayer(leaves: Self.leaves(withData[0].bytes), pieceLength: 32_768)
        #expect(layer.count == 3)
        #expect(Hex.encode(MerkleTree.root(pieceLayer: layer, pieceLength: 32_768)) == Self.roots[0])
    }

    @Test(
        "libtorrent's v2 and hybrid torrents load with its info-hashes, file layout, pad files and roots",
        arguments: [
            (
                "v2-libtorrent.torrent", MetaVersion.v2, nil as String?,
                "34e41685cb5affa653c9451eb92315b9bc8f8fc4ebb4cc444c3dd0a1495ae5a5"
            ),
            (
                "hybrid-libtorrent.torrent", .hybrid, "5aa370fdc9ce4afbdc747e390eea294ca10a4490",
                "2eefd72a0ba3fd9a70af8daba6238d95c59bd426f594459378559b1cf7360baa"
            ),
        ])
    func libtorrentTorrents(file: String, version: MetaVersion, v1: String?, v2: String) throws {
        let metainfo = try Metainfo(parsing: try Self.bytes(file))
        let info = metainfo.info
        #expect(info.version == version)
        #expect(metainfo.infoHashV1?.hex == v1)
        #expect(metainfo.infoHashV2?.hex == v2)
        #expect(metainfo.infoHash.hex == (v1 ?? String(v2.prefix(40))))
        #expect(info.pieceCount == 6 && info.pieceLength == 32_768)
        // libtorrent's layout: a pad after each file with data that does not end a piece.
        let layout = info.files.map {
            "\($0.path.joined(separator: "/")):\($0.length)\($0.isPadding ? "p" : "")"
        }
        #expect(
            layout == [
                "a.bin:70000", ".pad/28304:28304p", "c.txt:1", ".pad/32767:32767p", "empty:0",
                "sub/b.bin:16385",
                ".pad/16383:16383p", "sub/d.bin:16384", ".pad/16384:16384p",
            ])
        #expect(
            info.files.filter { $0.length > 0 && !$0.isPadding }.map { $0.piecesRoot.map(Hex.encode) }
                == Self.roots)
        #expect(info.files.allSatisfy { $0.length % 32_768 == 0 || $0.isPadding || $0.offset % 32_768 == 0 })
        // The one file longer than a piece has its layer, checked against its root.
        #expect(metainfo.pieceLayers.keys.map(Hex.encode) == [Self.roots[0]])
        // Both hashes in the magnet link, and the file reads back the same.
        let magnet = try MagnetLink(parsing: metainfo.magnetLink.uri)
        #expect(magnet.infoHash?.hex == v1)
        #expect(magnet.v2InfoHash?.hex == v2)
        #expect(magnet.wireHash == metainfo.infoHash)
        let again = try Metainfo(parsing: metainfo.encoded())
        #expect(again.infoHashV2 == metainfo.infoHashV2 && again.pieceLayers == metainfo.pieceLayers)
    }

    /// The hybrid vector with a change made to its decoded form.
    static func hybrid(_ change: (inout [[UInt8]: BencodeValue], inout [[UInt8]: BencodeValue]) -> Void)
        throws
        -> [UInt8]
    {
        guard case .dictionary(var top) = try BencodeDecoder().decode(try bytes("hybrid-libtorrent.torrent")),
            case .dictionary(var info) = top[Array("info".utf8)]
        else { throw MetainfoError.missingField("info", offset: 0) }
        change(&top, &info)
        top[Array("info".utf8)] = .dictionary(info)
        return BencodeValue.dictionary(top).encoded()
    }

    static func key(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test(
        "refused as libtorrent refuses: v1 and v2 views that differ, a missing pad, meta version 3, a layer of the wrong size"
    )
    func refusals() throws {
        let renamed = try Self.hybrid { _, info in
            guard case .list(var files) = info[Self.key("files")], case .dictionary(var third) = files[2]
            else { return }
            third[Self.key("path")] = .list([.bytes(Self.key("other.txt"))])
            files[2] = .dictionary(third)
            info[Self.key("files")] = .list(files)
        }
        #expect(throws: MetainfoError.self) { try Metainfo(parsing: renamed) }
        let noPad = try Self.hybrid { _, info in
            guard case .list(var files) = info[Self.key("files")] else { return }
            files.remove(at: 1)
            info[Self.key("files")] = .list(files)
        }
        #expect(throws: MetainfoError.self) { try Metainfo(parsing: noPad) }
        let version3 = try Self.hybrid { _, info in info[Self.key("meta version")] = .integer(3) }
        #expect(throws: MetainfoError.self) { try Metainfo(parsing: version3) }
        let shortLayer = try Self.hybrid { top, _ in
            top[Self.key("piece layers")] = .dictionary([
                Hex.decode(Array(Self.roots[0].utf8)) ?? []: .bytes([UInt8](repeating: 0, count: 64))
            ])
        }
        #expect(throws: MetainfoError.self) { try Metainfo(parsing: shortLayer) }
    }

    @Test(
        "loaded as libtorrent loads them: no tail pad, no piece layers, a layer that does not match its root (dropped)"
    )
    func lenient() throws {
        let noTailPad = try Self.hybrid { _, info in
            guard case .list(var files) = info[Self.key("files")] else { return }
            files.removeLast()
            info[Self.key("files")] = .list(files)
        }
        #expect(try Metainfo(parsing: noTailPad).info.version == .hybrid)
        let noLayers = try Self.hybrid { top, _ in top[Self.key("piece layers")] = nil }
        #expect(try Metainfo(parsing: noLayers).pieceLayers.isEmpty)
        let badLayer = try Self.hybrid { top, _ in
            top[Self.key("piece layers")] = .dictionary([
                Hex.decode(Array(Self.roots[0].utf8)) ?? []: .bytes([UInt8](repeating: 0, count: 96))
            ])
        }
        #expect(try Metainfo(parsing: badLayer).pieceLayers.isEmpty)
    }

    @Test(
        "torrent creation with --v2 and --hybrid gives libtorrent's exact info-hashes for the same files",
        arguments: [
            (MetaVersion.v2, "34e41685cb5affa653c9451eb92315b9bc8f8fc4ebb4cc444c3dd0a1495ae5a5"),
            (.hybrid, "2eefd72a0ba3fd9a70af8daba6238d95c59bd426f594459378559b1cf7360baa"),
        ])
    func creation(version: MetaVersion, v2: String) async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-v2-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("data")
        try FileManager.default.createDirectory(
            at: folder.appendingPathComponent("sub"), withIntermediateDirectories: true)
        for file in Self.data {
            try Data(file.bytes).write(to: folder.appendingPathComponent(file.path.joined(separator: "/")))
        }
        var options = TorrentCreationOptions()
        options.pieceLength = 32_768
        options.version = version
        options.workers = 2
        let metainfo = try await TorrentCreator.create(
            from: try TorrentCreator.scan(folder.path), options: options)
        #expect(metainfo.infoHashV2?.hex == v2)
        #expect(
            metainfo.infoHashV1?.hex
                == (version == .hybrid ? "5aa370fdc9ce4afbdc747e390eea294ca10a4490" : nil))
        #expect(metainfo.pieceLayers.keys.map(Hex.encode) == [Self.roots[0]])
        // What is written reads back with the same hashes and layers.
        let again = try Metainfo(parsing: metainfo.encoded())
        #expect(again.infoHashV2 == metainfo.infoHashV2 && again.pieceLayers == metainfo.pieceLayers)
        #expect(again.info.version == version)
    }
}

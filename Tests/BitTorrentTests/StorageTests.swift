import Bencode
import Crypto
import Foundation
import NIOCore
import NIOPosix
import SystemPackage
import TestSupport
import Testing

@testable import BitTorrent

/// Storage against what a torrent or the disk may hold: pieces far longer than a read window,
/// and symbolic links planted where the torrent's files go.
@Suite("Piece storage: long pieces and symbolic links")
struct StorageTests {
    static func scratch() throws -> URL {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-storage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        return root
    }

    @Test("libtorrent's limit: a piece length up to 1 GiB − 1 loads, 1 GiB is refused")
    func pieceLengthLimit() throws {
        func info(_ pieceLength: Int64) throws -> InfoDictionary {
            let value: BencodeValue = [
                "name": "x", "length": 10, "piece length": .integer(pieceLength),
                "pieces": .bytes(Array(repeating: 0, count: 20)),
            ]
            return try InfoDictionary(node: try BencodeDecoder().decodeNode(value.encoded()))
        }
        #expect(try info((1 << 30) - 1).pieceLength == (1 << 30) - 1)
        #expect(throws: MetainfoError.self) { try info(1 << 30) }
    }

    @Test("pieces longer than the 4 MiB read window hash and verify from disk, and damage is found")
    func longPieces() async throws {
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        // 6 MiB + 1 pieces (any length loads, as in libtorrent): each spans two windows.
        let pieceLength = (6 << 20) + 1
        let (info, payload) = try makeTorrent(size: 13 << 20, pieceLength: pieceLength, seed: 77)
        let path = root.appendingPathComponent("payload.bin")
        try Data(payload).write(to: path)
        let digests = await PieceHasher.hash(
            layout: FileLayout(info: info), paths: [FilePath(path.path)], workers: 2)
        for piece in 0..<info.pieceCount {
            #expect(digests.digest(piece).map(Array.init) == Array(info.pieceHash(piece)))
        }
        // The cache cannot hold such a piece: blocks go to disk and the check reads it back.
        let storage = PieceStorage(
            info: info, directory: FilePath(root.path), pool: NIOThreadPool.singleton, cacheLimit: 1 << 20)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        #expect(try await storage.verify(1, blockDigests: false, on: loop).get().passed)
        let corrupt = BlockRequest(piece: 1, offset: 5 << 20, length: 4)
        try await storage.write(corrupt, data: ByteBuffer(bytes: [1, 2, 3, 4]), on: loop).get()
        let outcome = try await storage.verify(1, blockDigests: false, on: loop).get()
        #expect(!outcome.passed)
        // On failure every block's digest comes back; only the damaged one differs.
        let blocks = try #require(outcome.digests)
        #expect(blocks.count == (pieceLength + 16_383) / 16_384)
        let start = pieceLength
        let differing = blocks.indices.filter { index in
            let from = start + index * 16_384
            let good = Array(
                Insecure.SHA1.hash(data: payload[from..<min(from + 16_384, start + pieceLength)]))
            return blocks[index] != good
        }
        #expect(differing == [(5 << 20) / 16_384])
    }

    @Test("a symbolic link planted at a torrent's folder or file is never written through")
    func plantedLinks() async throws {
        let root = try Self.scratch()
        defer { try? FileManager.default.removeItem(at: root) }
        let outside = root.appendingPathComponent("outside")
        try FileManager.default.createDirectory(at: outside, withIntermediateDirectories: true)
        let victim = outside.appendingPathComponent("victim")
        try Data("keep".utf8).write(to: victim)
        let downloads = root.appendingPathComponent("downloads")
        try FileManager.default.createDirectory(at: downloads, withIntermediateDirectories: true)
        let files: BencodeValue = .list([
            ["length": 4, "path": .list(["sub", "a.bin"])], ["length": 4, "path": .list(["b.bin"])],
        ])
        let value: BencodeValue = [
            "name": "t", "files": files, "piece length": 16_384,
            "pieces": .bytes(Array(Insecure.SHA1.hash(data: Array("abcdefgh".utf8)))),
        ]
        let info = try InfoDictionary(node: try BencodeDecoder().decodeNode(value.encoded()))
        // The torrent's folder `t` exists, `t/sub` links out; `t/b.bin` links to a file outside.
        let folder = downloads.appendingPathComponent("t")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            at: folder.appendingPathComponent("sub"), withDestinationURL: outside)
        try FileManager.default.createSymbolicLink(
            at: folder.appendingPathComponent("b.bin"), withDestinationURL: victim)
        let storage = PieceStorage(
            info: info, directory: FilePath(downloads.path), pool: NIOThreadPool.singleton, cacheLimit: 0)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        await #expect(throws: StorageError.self) {
            try await storage.write(
                BlockRequest(piece: 0, offset: 0, length: 8), data: ByteBuffer(bytes: Array("abcdefgh".utf8)),
                on: loop
            ).get()
        }
        // The second file alone (bytes 4..<8): the link at its own name is not followed either.
        await #expect(throws: StorageError.self) {
            try await storage.write(
                BlockRequest(piece: 0, offset: 4, length: 4), data: ByteBuffer(bytes: Array("efgh".utf8)),
                on: loop
            ).get()
        }
        #expect(!FileManager.default.fileExists(atPath: outside.appendingPathComponent("a.bin").path))
        #expect(try Data(contentsOf: victim) == Data("keep".utf8))
        // With the links gone, the same write lands inside the download directory.
        try FileManager.default.removeItem(at: folder.appendingPathComponent("sub"))
        try FileManager.default.removeItem(at: folder.appendingPathComponent("b.bin"))
        try await storage.write(
            BlockRequest(piece: 0, offset: 0, length: 8), data: ByteBuffer(bytes: Array("abcdefgh".utf8)),
            on: loop
        ).get()
        #expect(try Data(contentsOf: folder.appendingPathComponent("sub/a.bin")) == Data("abcd".utf8))
    }
}

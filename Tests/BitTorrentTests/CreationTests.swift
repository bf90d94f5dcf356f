import Foundation
import SystemPackage
import TestSupport
import Testing

@testable import BitTorrent

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("peerstack-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Deterministic pseudo-random bytes.
func payload(_ count: Int, seed: UInt64) -> Data {
    Data(SeededGenerator.bytes(count, seed: seed))
}

@Suite("File layout")
struct FileLayoutTests {
    let layout = FileLayout(
        files: [
            FileEntry(path: ["a"], length: 10, offset: 0), FileEntry(path: ["empty"], length: 0, offset: 10),
            FileEntry(path: ["b"], length: 20, offset: 10), FileEntry(path: ["c"], length: 5, offset: 30),
        ], pieceLength: 16)

    @Test("pieces split across files, empty files contribute nothing")
    func segments() {
        #expect(layout.pieceCount == 3)
        #expect(
            layout.segments(in: layout.pieceRange(0)) == [
                .init(fileIndex: 0, fileOffset: 0, length: 10), .init(fileIndex: 2, fileOffset: 0, length: 6),
            ])
        #expect(
            layout.segments(in: layout.pieceRange(1)) == [
                .init(fileIndex: 2, fileOffset: 6, length: 14), .init(fileIndex: 3, fileOffset: 0, length: 2),
            ])
        #expect(layout.segments(in: layout.pieceRange(2)) == [.init(fileIndex: 3, fileOffset: 2, length: 3)])
        #expect(layout.pieces(overlappingFile: 2) == 0..<2)
        #expect(layout.pieces(overlappingFile: 1) == 0..<0)
    }
}

@Suite("Torrent creation and verification")
struct CreationTests {
    @Test(
        "piece length is chosen as libtorrent 2.0.8 chooses it (values read from libtorrent's create_torrent)",
        arguments: [
            (Int64(1), 16_384), (2_684_355, 16_384), (2_684_356, 32_768), (10_737_419, 65_536),
            (42_949_674, 131_072), (687_194_767, 262_144), (687_194_768, 524_288), (2_748_779_070, 1_048_576),
            (703_687_441_777, 8_388_608), (703_687_441_778, 16_777_216), (10_000_000_000_000, 16_777_216),
        ])
    func automaticPieceLength(total: Int64, expected: Int) {
        #expect(TorrentCreator.automaticPieceLength(forTotalLength: total) == expected)
    }

    @Test(
        "a directory becomes a multi-file torrent in byte order; verify finds it complete, then finds damage")
    func createAndVerify() async throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let tree = root.appendingPathComponent("tree")
        try FileManager.default.createDirectory(
            at: tree.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try payload(50_000, seed: 1).write(to: tree.appendingPathComponent("b.bin"))
        try payload(70_001, seed: 2).write(to: tree.appendingPathComponent("sub/z.bin"))
        try Data().write(to: tree.appendingPathComponent("a-empty"))
        try payload(3, seed: 3).write(to: tree.appendingPathComponent("B.bin"))

        let source = try TorrentCreator.scan(tree.path)
        #expect(source.name == "tree" && source.isDirectory)
        #expect(source.files.map(\.path) == [["B.bin"], ["a-empty"], ["b.bin"], ["sub", "z.bin"]])

        var options = TorrentCreationOptions()
        options.trackerTiers = [["http://127.0.0.1:1/announce"], ["udp://127.0.0.1:2"]]
        options.webSeeds = ["http://127.0.0.1:3/"]
        options.isPrivate = true
        options.comment = "test"
        options.creationDate = 1_700_000_000
        options.workers = 2
        let progress = ProgressLog()
        let metainfo = try await TorrentCreator.create(from: source, options: options) { progress.record($0) }
        #expect(metainfo.info.pieceLength == 16_384)
        #expect(metainfo.info.totalLength == 120_004)
        #expect(metainfo.info.pieceCount == 8)
        #expect(metainfo.info.isPrivate)
        #expect(metainfo.announce == "http://127.0.0.1:1/announce")
        #expect(metainfo.announceList == [["http://127.0.0.1:1/announce"], ["udp://127.0.0.1:2"]])
        #expect(progress.last?.bytesDone == 120_004 && progress.last?.piecesDone == 8)
        // The written torrent reads back to the same thing.
        #expect(try Metainfo(parsing: metainfo.encoded()) == metainfo)

        let report = await TorrentVerifier.verify(metainfo, in: FilePath(root.path), workers: 2)
        #expect(report.isComplete)
        #expect(report.goodPieceCount == 8)

        // One flipped byte spoils exactly the piece holding it.
        let target = tree.appendingPathComponent("sub/z.bin")
        var data = try Data(contentsOf: target)
        data[40_000] ^= 0xFF
        try data.write(to: target)
        let damaged = await TorrentVerifier.verify(metainfo, in: FilePath(root.path), workers: 2)
        #expect(!damaged.isComplete)
        #expect(damaged.goodPieceCount == 7)
        let damagedPiece = Int((3 + 50_000 + 40_000) / 16_384)
        #expect(damaged.goodPieces[damagedPiece] == false)
        #expect(damaged.files.first { $0.path == ["tree", "sub", "z.bin"] }?.isComplete == false)
        #expect(damaged.files.first { $0.path == ["tree", "B.bin"] }?.isComplete == true)

        // A missing file makes its pieces bad and is reported missing.
        try FileManager.default.removeItem(at: tree.appendingPathComponent("b.bin"))
        let missing = await TorrentVerifier.verify(metainfo, in: FilePath(root.path), workers: 1)
        #expect(missing.files.first { $0.path == ["tree", "b.bin"] }?.exists == false)
        #expect(missing.goodPieces.prefix(4).allSatisfy { !$0 })
        // The pieces are read in one batch, yet only those holding the missing file's bytes (and
        // the one damaged above) are bad.
        #expect(missing.goodPieces == [false, false, false, false, true, false, true, true])
    }

    @Test("a single file with an explicit piece length")
    func singleFile() async throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("one.bin")
        try payload(100_000, seed: 9).write(to: file)
        var options = TorrentCreationOptions()
        options.pieceLength = 32_768
        let metainfo = try await TorrentCreator.create(
            from: try TorrentCreator.scan(file.path), options: options)
        #expect(!metainfo.info.isMultiFile)
        #expect(metainfo.info.pieceCount == 4)
        #expect(metainfo.info.pieceSize(3) == 100_000 - 3 * 32_768)
        let report = await TorrentVerifier.verify(metainfo, in: FilePath(root.path))
        #expect(report.isComplete)
    }

    @Test("bad sources are refused with a reason")
    func badSources() async throws {
        let root = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: root) }
        #expect(throws: TorrentCreationError.self) {
            try TorrentCreator.scan(root.appendingPathComponent("nope").path)
        }
        #expect(throws: TorrentCreationError.noFiles(path: root.path)) { try TorrentCreator.scan(root.path) }
        try Data().write(to: root.appendingPathComponent("empty"))
        let empty = try TorrentCreator.scan(root.path)
        await #expect(throws: TorrentCreationError.empty(path: empty.name)) {
            try await TorrentCreator.create(from: empty, options: .init())
        }
        try Data([1]).write(to: root.appendingPathComponent("x"))
        var options = TorrentCreationOptions()
        options.pieceLength = 20_000
        await #expect(throws: TorrentCreationError.invalidPieceLength(20_000)) {
            try await TorrentCreator.create(from: try TorrentCreator.scan(root.path), options: options)
        }
    }
}

final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var events: [HashingProgress] = []
    func record(_ event: HashingProgress) { lock.withLock { events.append(event) } }
    var last: HashingProgress? { lock.withLock { events.max { $0.bytesDone < $1.bytesDone } } }
}

import BitTorrent
import Foundation
import PeerNet
import SystemPackage
import TestSupport
import Testing

/// Runs `body`, failing if it takes longer than `seconds`.
func withDeadline<T: Sendable>(
    _ seconds: Double, _ what: String, _ body: @escaping @Sendable () async throws -> T
)
    async throws -> T
{
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            return nil
        }
        guard let first = try await group.next(), let value = first else {
            group.cancelAll()
            throw Interop.Failure(description: "\(what) did not finish within \(seconds) s")
        }
        group.cancelAll()
        return value
    }
}

/// The payloads for transfers: one file of 33 MiB + 1 byte, or a tree of 34 MiB in five files
/// (one empty), neither a multiple of the piece length.
struct TransferPayload {
    let payloads: Payloads
    let seedDirectory: URL
    let metainfo: Metainfo

    /// `version` is the metainfo's: v1 (the default), v2-only or hybrid (BEP 52); `size`, when
    /// given, makes the single file that long instead.
    init(multiFile: Bool, version: MetaVersion = .v1, size: Int? = nil) async throws {
        payloads = try Payloads()
        seedDirectory = payloads.root.appendingPathComponent("seed")
        let shared: URL
        if multiFile {
            try payloads.write("seed/tree/a.bin", size: 20_000_001, seed: 11)
            try payloads.write("seed/tree/empty", size: 0, seed: 12)
            try payloads.write("seed/tree/sub/b.bin", size: 14_000_003, seed: 13)
            try payloads.write("seed/tree/sub/c.txt", size: 1_234, seed: 14)
            try payloads.write("seed/tree/ünï.bin", size: 300_000, seed: 15)
            shared = seedDirectory.appendingPathComponent("tree")
        } else {
            try payloads.write("seed/single.bin", size: size ?? 33 * 1_048_576 + 1, seed: 10)
            shared = seedDirectory.appendingPathComponent("single.bin")
        }
        var options = TorrentCreationOptions()
        options.version = version
        metainfo = try await TorrentCreator.create(
            from: try TorrentCreator.scan(shared.path), options: options)
        try Data(metainfo.encoded()).write(to: torrentFile)
    }

    var torrentFile: URL { payloads.root.appendingPathComponent("payload.torrent") }

    func directory(_ name: String) throws -> URL {
        let url = payloads.root.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A directory holding the first half of the single-file payload: a peer that can never
    /// complete (for tests that need connections to stay up; libtorrent drops seed-to-seed ones).
    func halfCopy() throws -> URL {
        let half = try directory("half")
        let data = try Data(contentsOf: seedDirectory.appendingPathComponent("single.bin"))
        try data.prefix(data.count / 2).write(to: half.appendingPathComponent("single.bin"))
        return half
    }

    /// Every piece of the torrent checks out under `directory`.
    func isComplete(in directory: URL) async -> Bool {
        await TorrentVerifier.verify(metainfo, in: FilePath(directory.path)).isComplete
    }
}

/// A libtorrent seeder (seed mode, loopback) for `payload`, and the port it listens on.
/// `extra`: lt_peer.py flags (`--encryption=forced`).
func startLibtorrentSeeder(_ payload: TransferPayload, uploadLimit: Int = 0, _ extra: [String] = [])
    async throws
    -> (BackgroundProgram, Int)
{
    let seeder = try BackgroundProgram(
        Interop.python,
        [
            Interop.peerScript, "seed", payload.torrentFile.path, payload.seedDirectory.path, "\(freePort())",
            "150", "\(uploadLimit)",
        ] + extra)
    let port = try await seeder.waitForJSON("port", timeout: 30)["port"] as? Int ?? 0
    return (seeder, port)
}

/// PeerStack seeds `payload` (with `encryption`) and libtorrent downloads it from `source` (given
/// PeerStack's port: the .torrent's path or a magnet link; `extra`: lt_peer.py flags), ending
/// with every piece right.
func libtorrentDownloadsFromPeerStack(
    _ payload: TransferPayload, encryption: EncryptionPolicy = .prefer, _ extra: [String] = [],
    source: (Int) -> String
) async throws {
    let port = freePort()
    var options = loopbackOptions(payload.seedDirectory, port: port, seed: true)
    options.encryption = encryption
    let seeder = TorrentClient(metainfo: payload.metainfo, options: options)
    let seeding = Task { try await seeder.run { _ in } }
    defer { seeding.cancel() }
    let target = try payload.directory("lt")
    let leecher = try libtorrentGet(source(port), into: target, seconds: 90, ["127.0.0.1:\(port)"] + extra)
    defer { leecher.stop() }
    let result = try await leecher.waitForJSON("complete", timeout: 100)
    #expect(result["complete"] as? Bool == true, "libtorrent: \(leecher.text.suffix(500))")
    #expect(await payload.isComplete(in: target))
    seeding.cancel()
    _ = try? await seeding.value
}

/// Options for a PeerStack client on loopback.
func loopbackOptions(_ directory: URL, peers: [String] = [], port: Int = 0, seed: Bool = false)
    -> TorrentClientOptions
{
    var options = TorrentClientOptions(directory: FilePath(directory.path))
    options.listenHost = "127.0.0.1"
    options.listenPort = port
    options.peers = peers.compactMap(Endpoint.init)
    options.seed = seed
    return options
}

@Suite("Transfers with libtorrent", .serialized)
struct LibtorrentTransferTests {
    @Test("PeerStack downloads from a libtorrent seeder", arguments: [false, true])
    func downloadFromLibtorrent(multiFile: Bool) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: multiFile)
        defer { payload.payloads.remove() }
        let (seeder, port) = try await startLibtorrentSeeder(payload)
        defer { seeder.stop() }
        let target = try payload.directory("get")
        let client = TorrentClient(
            metainfo: payload.metainfo, options: loopbackOptions(target, peers: ["127.0.0.1:\(port)"]))
        try await withDeadline(90, "download from libtorrent") { try await client.run { _ in } }
        #expect(await payload.isComplete(in: target))
    }

    @Test("libtorrent downloads from a PeerStack seeder", arguments: [false, true])
    func libtorrentDownloadsFromUs(multiFile: Bool) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: multiFile)
        defer { payload.payloads.remove() }
        try await libtorrentDownloadsFromPeerStack(payload) { _ in payload.torrentFile.path }
    }

    @Test("a magnet link with a direct peer fetches the metadata from libtorrent (BEP 9) and downloads")
    func magnetFromLibtorrent() async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let (seeder, port) = try await startLibtorrentSeeder(payload)
        defer { seeder.stop() }
        let target = try payload.directory("magnet")
        let magnet = try MagnetLink(
            parsing: "magnet:?xt=urn:btih:\(payload.metainfo.infoHash.hex)&x.pe=127.0.0.1:\(port)")
        let client = try TorrentClient(magnet: magnet, options: loopbackOptions(target))
        let names = NamesSeen()
        try await withDeadline(90, "magnet download from libtorrent") {
            try await client.run { event in
                if case .metadataReceived(let name) = event { names.add(name) }
            }
        }
        #expect(names.all == ["tree"])
        #expect(await payload.isComplete(in: target))
    }
}

final class NamesSeen: @unchecked Sendable {
    private let lock = NSLock()
    private var names: [String] = []
    func add(_ name: String) { lock.withLock { names.append(name) } }
    var all: [String] { lock.withLock { names } }
}

import Foundation
import NIOCore
import NIOPosix
import PeerNet
import SystemPackage
import TestSupport
import Testing

@testable import BitTorrent

/// The NIO driver on real loopback sockets, for faults found reading the code.
@Suite("Torrent driver faults", .serialized)
struct DriverTests {
    /// A torrent of `size` random bytes written under a fresh directory.
    static func seedData(size: Int) throws -> (Metainfo, URL) {
        let (info, payload) = try makeTorrent(size: size, pieceLength: 16_384, seed: 31)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-driver-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("seed"), withIntermediateDirectories: true)
        try Data(payload).write(to: root.appendingPathComponent("seed/payload.bin"))
        // A metainfo file is `d4:info<the info dictionary>e`.
        let metainfo = try Metainfo(parsing: Array("d4:info".utf8) + info.encoded() + Array("e".utf8))
        return (metainfo, root)
    }

    @Test("peers that close before the handshake free their dialling slots: the real seeder is still reached")
    func preHandshakeCloses() async throws {
        let (metainfo, root) = try Self.seedData(size: 300_000)
        defer { try? FileManager.default.removeItem(at: root) }
        // 70 listeners that accept and close at once (more than the 60-peer cap).
        var rude: [any Channel] = []
        for _ in 0..<70 {
            rude.append(
                try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                    .childChannelInitializer { channel in channel.close() }
                    .bind(host: "127.0.0.1", port: 0).get())
        }
        defer { for channel in rude { channel.close(promise: nil) } }
        var seedOptions = TorrentClientOptions(directory: FilePath(root.appendingPathComponent("seed").path))
        seedOptions.listenHost = "127.0.0.2"  // sorts after every 127.0.0.1 address: dialled last
        seedOptions.listenPort = 0
        seedOptions.seed = true
        let port = PortBox()
        let seeder = TorrentClient(metainfo: metainfo, options: seedOptions)
        let seeding = Task { try await seeder.run(onListening: { port.set($0) }, onEvent: { _ in }) }
        defer { seeding.cancel() }
        let seedPort = try await port.wait()
        var options = TorrentClientOptions(directory: FilePath(root.appendingPathComponent("get").path))
        options.listenHost = "127.0.0.1"
        options.listenPort = 0
        options.session.connectsPerTick = 32
        options.peers =
            rude.compactMap { $0.localAddress.flatMap(Endpoint.init) } + [Endpoint("127.0.0.2:\(seedPort)")!]
        let leecher = TorrentClient(metainfo: metainfo, options: options)
        #expect(try await finishes(leecher, within: 60), "the download never reached the seeder")
    }

    @Test("blocks of unverified pieces held in memory do not count as disk backlog (reads would stay paused)")
    func backlogCountsDiskWritesOnly() async throws {
        let (metainfo, root) = try Self.seedData(size: 100_000)
        defer { try? FileManager.default.removeItem(at: root) }
        let pool = NIOThreadPool.singleton
        let storage = PieceStorage(
            info: metainfo.info, directory: FilePath(root.appendingPathComponent("get").path), pool: pool)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        // One block of each of three pieces: cached, waiting for the rest from peers.
        for piece in 0..<3 {
            try await storage.write(
                BlockRequest(piece: piece, offset: 0, length: 8_192),
                data: ByteBuffer(repeating: 1, count: 8_192),
                on: loop
            ).get()
        }
        #expect(storage.backlog == 0)
    }

    @Test("a read-only descriptor replaced by a writable one stays valid for reads already under way")
    func descriptorUpgrade() async throws {
        let (metainfo, root) = try Self.seedData(size: 100_000)
        defer { try? FileManager.default.removeItem(at: root) }
        let storage = PieceStorage(
            info: metainfo.info, directory: FilePath(root.appendingPathComponent("seed").path),
            pool: NIOThreadPool.singleton, cacheLimit: 0)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let expected = try Data(contentsOf: root.appendingPathComponent("seed/payload.bin"))
        // Many reads at once while a write (cache limit 0: straight to disk) opens the file
        // for writing: every read still returns the file's bytes.
        var reads: [EventLoopFuture<[UInt8]>] = []
        for round in 0..<200 {
            let piece = round % metainfo.info.pieceCount
            let length = metainfo.info.pieceSize(piece)
            reads.append(
                storage.read(BlockRequest(piece: piece, offset: 0, length: min(length, 4_096)), on: loop))
            if round == 100 {
                let last = metainfo.info.pieceCount - 1
                let start = last * 16_384
                _ = storage.write(
                    BlockRequest(piece: last, offset: 0, length: 16),
                    data: ByteBuffer(bytes: expected[start..<start + 16]), on: loop)
            }
        }
        for (round, read) in reads.enumerated() {
            let piece = round % metainfo.info.pieceCount
            let start = piece * 16_384
            let bytes = try await read.get()
            #expect(bytes == Array(expected[start..<start + bytes.count]))
        }
    }
}

/// A port told by `onListening`, awaited by the test.
/// Runs `client` until its download completes (true) or `seconds` pass (false: the run is
/// cancelled; awaiting a task's value does not end with a task group's cancellation).
func finishes(_ client: TorrentClient, within seconds: Double) async throws -> Bool {
    let done = Task { try await client.run { _ in } }
    defer { done.cancel() }
    return try await withThrowingTaskGroup(of: Bool.self) { group in
        group.addTask {
            try await done.value
            return true
        }
        group.addTask {
            try await Task.sleep(for: .seconds(seconds))
            done.cancel()
            return false
        }
        let first = try await group.next() ?? false
        group.cancelAll()
        return first
    }
}

final class PortBox: @unchecked Sendable {
    private let lock = NSLock()
    private var port: Int?
    func set(_ value: Int) { lock.withLock { port = value } }
    func wait() async throws -> Int {
        for _ in 0..<500 {
            if let port = lock.withLock({ port }) { return port }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw CancellationError()
    }
}

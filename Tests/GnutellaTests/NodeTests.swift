import Foundation
import Gnutella
import NIOPosix
import PeerNet
import Synchronization
import SystemPackage
import TestSupport
import Testing

/// Servents on real sockets on loopback: the handshake, deflated connections, QRP tables,
/// routing through ultrapeers and an HTTP download checked against its SHA-1.
@Suite("Gnutella nodes on loopback", .serialized)
struct NodeTests {
    final class Events: Sendable {
        let hits = Mutex<[QueryHit]>([])
        let connected = Mutex(0)
        func handle(_ event: GnutellaEvent) {
            switch event {
            case .result(_, let hit): hits.withLock { $0.append(hit) }
            case .connected: connected.withLock { $0 += 1 }
            default: break
            }
        }
    }

    static func start(ultrapeer: Bool, shares: [ShareEntry] = [], events: Events) async throws -> GnutellaNode
    {
        var configuration = ServentConfiguration()
        configuration.ultrapeer = ultrapeer
        return try await GnutellaNode.start(
            configuration: configuration, shares: shares, listen: Endpoint("127.0.0.1:0")!,
            group: MultiThreadedEventLoopGroup.singleton, seed: UInt64.random(in: 1...1_000_000)
        ) { events.handle($0) }
    }

    /// Waits for `condition` with a deadline.
    static func wait(_ seconds: Double, _ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        Issue.record("timed out waiting for \(what)")
        throw CancellationError()
    }

    @Test(
        "a leaf finds a file shared three ultrapeers away and downloads it, SHA-1 checked, directly and by Push/GIV"
    )
    func searchAndDownload() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("gnutella-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let shared = directory.appendingPathComponent("share")
        try FileManager.default.createDirectory(at: shared, withIntermediateDirectories: true)
        let payload = SeededGenerator.bytes(1_500_000, seed: 7)
        try Data(payload).write(to: shared.appendingPathComponent("rare recording 1957.flac"))
        try Data("other".utf8).write(to: shared.appendingPathComponent("readme.txt"))
        let entries = try ShareEntry.scan(FilePath(shared.path))
        #expect(entries.count == 2)

        let events = (0..<5).map { _ in Events() }
        let ups = [
            try await Self.start(ultrapeer: true, events: events[0]),
            try await Self.start(ultrapeer: true, events: events[1]),
            try await Self.start(ultrapeer: true, events: events[2]),
        ]
        let sharer = try await Self.start(ultrapeer: false, shares: entries, events: events[3])
        let searcher = try await Self.start(ultrapeer: false, events: events[4])
        do {
            try await Self.searchAndFetch(
                ups: ups, sharer: sharer, searcher: searcher, events: events[4], directory: directory,
                payload: payload)
        } catch {
            for node in ups + [sharer, searcher] { await node.shutdown() }
            throw error
        }
        for node in ups + [sharer, searcher] { await node.shutdown() }
    }

    static func searchAndFetch(
        ups: [GnutellaNode], sharer: GnutellaNode, searcher: GnutellaNode, events: Events, directory: URL,
        payload: [UInt8]
    ) async throws {
        ups[1].connect(to: try #require(ups[0].localAddress))
        ups[2].connect(to: try #require(ups[1].localAddress))
        sharer.connect(to: try #require(ups[2].localAddress))
        searcher.connect(to: try #require(ups[0].localAddress))
        try await wait(10, "the network to connect") {
            let counts = [
                try await ups[1].connectionCount(), try await ups[2].connectionCount(),
                try await sharer.connectionCount(), try await searcher.connectionCount(),
            ]
            return counts == [2, 2, 1, 1]
        }
        // The leaf's QRP table has to reach its ultrapeer before a query can pass it on.
        var found: QueryHit?
        let deadline = ContinuousClock.now + .seconds(20)
        while found == nil, ContinuousClock.now < deadline {
            _ = try await searcher.search("recording 1957")
            try await wait(5, "a hit") { !events.hits.withLock { $0 }.isEmpty }
            found = events.hits.withLock { $0.first }
        }
        let hit = try #require(found)
        #expect(hit.results.map(\.name) == ["rare recording 1957.flac"])
        #expect(hit.servent == sharer.guid)
        let sha1 = try #require(hit.results.first?.extensions.sha1)
        let target = FilePath(directory.appendingPathComponent("got.flac").path)
        let size = try await GnutellaDownload.fetch(
            sha1: sha1, from: hit.endpoint, to: target, group: MultiThreadedEventLoopGroup.singleton)
        #expect(size == 1_500_000)
        #expect(try Data(contentsOf: URL(fileURLWithPath: target.string)) == Data(payload))
        // As if the sharer could not be reached: a Push along the hit's path, a GIV back to us,
        // the same file over that connection.
        let pushed = FilePath(directory.appendingPathComponent("pushed.flac").path)
        let index = try #require(hit.results.first?.index)
        let pushedSize = try await searcher.pushDownload(
            servent: hit.servent, index: index, sha1: sha1, to: pushed)
        #expect(pushedSize == 1_500_000)
        #expect(try Data(contentsOf: URL(fileURLWithPath: pushed.string)) == Data(payload))
        // A URN the sharer does not have: 404, nothing left on disk.
        let missing = FilePath(directory.appendingPathComponent("missing").path)
        await #expect(throws: GnutellaDownload.Failure.self) {
            _ = try await GnutellaDownload.fetch(
                sha1: [UInt8](repeating: 1, count: 20), from: hit.endpoint, to: missing,
                group: MultiThreadedEventLoopGroup.singleton)
        }
        #expect(!FileManager.default.fileExists(atPath: missing.string))
    }
}

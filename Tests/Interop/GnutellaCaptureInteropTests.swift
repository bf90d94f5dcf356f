import Foundation
import Gnutella
import NIOPosix
import PeerNet
import Synchronization
import SystemPackage
import Testing

/// The servents' real traffic read by tshark: an ultrapeer and two leaves on loopback with
/// compression off (tshark cannot inflate a deflated stream), captured while one leaf sends its
/// QRP table, searches and downloads from the other; every Gnutella descriptor in the capture
/// is decoded by tshark's `gnutella` dissector with nothing flagged malformed.
@Suite("Gnutella traffic captured and decoded by tshark", .serialized)
struct GnutellaCaptureInteropTests {
    @Test("handshakes, QRP, query, query hit and the HTTP download on the wire")
    func capture() async throws {
        try #require(Interop.enabled("tshark"), "tshark is not installed")
        try #require(Interop.required || getuid() == 0, "capturing on lo needs root")
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "gnutella-cap-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let share = directory.appendingPathComponent("share")
        try FileManager.default.createDirectory(at: share, withIntermediateDirectories: true)
        try Data((0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(
            to: share.appendingPathComponent("captured tune.ogg"))
        let hits = Mutex<[QueryHit]>([])
        func node(_ ultrapeer: Bool, _ shares: [ShareEntry] = []) async throws -> GnutellaNode {
            var configuration = ServentConfiguration()
            configuration.ultrapeer = ultrapeer
            configuration.deflate = false
            return try await GnutellaNode.start(
                configuration: configuration, shares: shares, listen: Endpoint("127.0.0.1:0")!,
                group: MultiThreadedEventLoopGroup.singleton
            ) { event in
                if case .result(_, let hit) = event { hits.withLock { $0.append(hit) } }
            }
        }
        let ultrapeer = try await node(true)
        let sharer = try await node(false, try ShareEntry.scan(FilePath(share.path)))
        let searcher = try await node(false)
        let ports = [ultrapeer, sharer, searcher].compactMap { $0.localAddress?.port }
        let capture = try await PacketCapture(
            interface: "lo", filter: ports.map { "tcp port \($0)" }.joined(separator: " or "),
            file: directory.appendingPathComponent("gnutella.pcapng"), probe: ("127.0.0.1", 9))

        sharer.connect(to: ultrapeer.localAddress!)
        searcher.connect(to: ultrapeer.localAddress!)
        var hit: QueryHit?
        let deadline = ContinuousClock.now + .seconds(20)
        while hit == nil, ContinuousClock.now < deadline {
            if try await searcher.connectionCount() == 1, try await sharer.connectionCount() == 1 {
                _ = try await searcher.search("captured tune")
            }
            try await Task.sleep(for: .milliseconds(300))
            hit = hits.withLock { $0.first }
        }
        let found = try #require(hit, "no hit")
        let sha1 = try #require(found.results.first?.extensions.sha1)
        _ = try await GnutellaDownload.fetch(
            sha1: sha1, from: found.endpoint, to: FilePath(directory.appendingPathComponent("got").path),
            group: MultiThreadedEventLoopGroup.singleton)
        for node in [ultrapeer, sharer, searcher] { await node.shutdown() }
        try await capture.stop()
        let fields = [
            "gnutella.header.payload", "gnutella.query.search", "gnutella.queryhit.hit.name", "_ws.malformed",
        ]
        let values = try capture.fields(
            fields, displayFilter: "gnutella || _ws.malformed",
            decodeAs: ports.map { "tcp.port==\($0),gnutella" })
        let types = Set(values["gnutella.header.payload", default: []])
        #expect(types.contains("128") && types.contains("129"), "payload types seen: \(types.sorted())")
        #expect(types.contains("48"), "no QRP route table update seen")
        #expect(values["gnutella.query.search", default: []].contains("captured tune"))
        #expect(values["gnutella.queryhit.hit.name", default: []].contains("captured tune.ogg"))
        #expect(values["_ws.malformed", default: []].isEmpty, "tshark flagged malformed packets")
        // The handshakes were captured too (the 0.6 connect lines, in the clear).
        let handshakes = try capture.fields(
            ["frame.number"], displayFilter: "frame contains \"GNUTELLA CONNECT/0.6\"")
        #expect(handshakes["frame.number", default: []].count == 2)
    }
}

import Foundation
import Gnutella
import NIOPosix
import PeerNet
import Synchronization
import SystemPackage
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The servents' real traffic read by tshark: an ultrapeer and two leaves on loopback with
/// compression off (tshark cannot inflate a deflated stream), captured while one leaf sends its
/// QRP table, searches and downloads from the other; every Gnutella descriptor in the capture
/// is decoded by tshark's `gnutella` dissector with nothing flagged malformed.
@Suite("Gnutella traffic captured and decoded by tshark", .serialized)
struct GnutellaCaptureInteropTests {
    static let probePort: UInt16 = 9

    /// One UDP datagram to 127.0.0.1:9 (discard), for the capture to show.
    static func sendProbe() {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = probePort.bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let bytes: [UInt8] = [0x70]
        _ = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                sendto(fd, bytes, 1, 0, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
    }

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
        let capture = directory.appendingPathComponent("gnutella.pcapng")
        // Through Python only to unblock SIGTERM first: the test process blocks it, children
        // inherit the mask, and tshark finishes its file only when it can receive the signal.
        let unblocked =
            "import os, signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGTERM, signal.SIGINT]); "
            + "os.execv(sys.argv[1], sys.argv[1:])"
        let tshark = try BackgroundProgram(
            Interop.python,
            [
                "-c", unblocked, Interop.onPath("tshark") ?? "/usr/bin/tshark", "-i", "lo", "-P", "-f",
                (ports.map { "tcp port \($0)" } + ["udp port \(Self.probePort)"]).joined(separator: " or "),
                "-w",
                capture.path,
            ])
        defer { tshark.stop() }
        // "Capturing on" comes before the capture really runs: probe with datagrams until tshark
        // shows one, so the handshakes are not missed.
        try await tshark.waitForLine(timeout: 20, "the capture to start") { $0.contains("Capturing on") }
        let probe = Task.detached {
            for _ in 0..<200 where !Task.isCancelled {
                Self.sendProbe()
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
        defer { probe.cancel() }
        try await tshark.waitForLine(timeout: 20, "a captured probe") { $0.contains("UDP") }
        probe.cancel()

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
        // Let the last segments reach the capture file, then stop tshark (it finishes the file on SIGTERM).
        try await Task.sleep(for: .milliseconds(500))
        tshark.signal(SIGTERM)
        _ = try await tshark.waitForExit(timeout: 20)

        let fields = [
            "gnutella.header.payload", "gnutella.query.search", "gnutella.queryhit.hit.name", "_ws.malformed",
        ]
        let output = try Interop.check(
            Interop.onPath("tshark") ?? "/usr/bin/tshark",
            ["-r", capture.path, "-Y", "gnutella || _ws.malformed", "-T", "fields", "-E", "aggregator=|"]
                + ports.flatMap { ["-d", "tcp.port==\($0),gnutella"] } + fields.flatMap { ["-e", $0] })
        var values: [String: [String]] = [:]
        for line in output.split(separator: "\n") {
            for (field, value) in zip(fields, line.split(separator: "\t", omittingEmptySubsequences: false)) {
                values[field, default: []] += value.split(separator: "|").map(String.init)
            }
        }
        let types = Set(values["gnutella.header.payload", default: []])
        #expect(types.contains("128") && types.contains("129"), "payload types seen: \(types.sorted())")
        #expect(types.contains("48"), "no QRP route table update seen")
        #expect(values["gnutella.query.search", default: []].contains("captured tune"))
        #expect(values["gnutella.queryhit.hit.name", default: []].contains("captured tune.ogg"))
        #expect(values["_ws.malformed", default: []].isEmpty, "tshark flagged malformed packets")
        // The handshakes were captured too (the 0.6 connect lines, in the clear).
        let handshakes = try Interop.check(
            Interop.onPath("tshark") ?? "/usr/bin/tshark",
            [
                "-r", capture.path, "-Y", "frame contains \"GNUTELLA CONNECT/0.6\"", "-T", "fields", "-e",
                "frame.number",
            ])
        #expect(handshakes.split(separator: "\n").count == 2)
    }
}

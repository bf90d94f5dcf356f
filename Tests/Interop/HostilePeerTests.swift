import BitTorrent
import Foundation
import Synchronization
import SystemPackage
import Testing

/// Events seen by a client under test.
final class EventLog: Sendable {
    private let events = Mutex<[String]>([])
    func add(_ event: TorrentEvent) {
        switch event {
        case .peerBanned(let address, let reason):
            events.withLock { $0.append("banned \(address): \(reason)") }
        case .peerClosed(let address, let reason):
            events.withLock { $0.append("closing \(address?.description ?? "?"): \(reason)") }
        case .peerConnected(let address, let outgoing):
            events.withLock { $0.append("connected \(address) \(outgoing ? "out" : "in")") }
        case .completed: events.withLock { $0.append("completed") }
        default: break
        }
    }
    var all: [String] { events.withLock { $0 } }
}

@Suite("Hostile peers on real sockets", .serialized)
struct HostilePeerTests {
    static let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/hostile_peer.py").path

    @Test(
        "a misbehaving peer is dropped (a corrupt one banned) and the download completes from libtorrent",
        arguments: ["corrupt", "oversized", "bitfield", "request"])
    func hostile(mode: String) async throws {
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let data = payload.seedDirectory.appendingPathComponent("single.bin").path
        let hostile = try BackgroundProgram(
            Interop.python, [Self.script, mode, payload.torrentFile.path, data, "\(freePort())", "120"])
        defer { hostile.stop() }
        let hostilePort = try await hostile.waitForJSON("port", timeout: 20)["port"] as? Int ?? 0
        let (seeder, seedPort) = try await startLibtorrentSeeder(payload)
        defer { seeder.stop() }
        let target = try payload.directory("get")
        let log = EventLog()
        // The hostile peer is listed first, so it is dialled and heard from early: over plain
        // TCP, all it speaks (a uTP attempt would spend 3 s, and an MSE attempt a reconnection,
        // and the download could finish from libtorrent before the hostile peer is reached).
        var options = loopbackOptions(target, peers: ["127.0.0.1:\(hostilePort)", "127.0.0.1:\(seedPort)"])
        options.transport = .tcp
        options.encryption = .allow
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        try await withDeadline(90, "download beside a \(mode) peer") { try await client.run { log.add($0) } }
        #expect(await payload.isComplete(in: target))
        let hostileAddress = "127.0.0.1:\(hostilePort)"
        switch mode {
        case "corrupt":
            #expect(log.all.contains { $0.hasPrefix("banned \(hostileAddress)") }, "\(log.all.suffix(10))")
        default:
            #expect(
                log.all.contains { $0.contains(hostileAddress) && $0.hasPrefix("closing") },
                "\(log.all.suffix(10))")
        }
    }
}

import Foundation
import TestSupport
import Testing

/// GossipSub between PeerStack and go-libp2p (p2pd), Kubo and py-libp2p, inside `unshare -n`
/// (gossip_interop.py runs every node and reports what each received).
@Suite("GossipSub interop", .serialized)
struct GossipInteropTests {
    static let script = Libp2pInteropTests.scripts.appendingPathComponent("gossip_interop.py").path

    /// Runs one mode of the script and checks that every node got every published message once,
    /// from its author.
    static func run(_ mode: String, nodes: Int) async throws -> [String: [String: Any]] {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(
            "gossip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let output = try await Libp2pInteropTests.isolated(
            [
                Interop.pipPython, script, mode, work.path, try peerstackExecutable().path,
                Libp2pInteropTests.p2pd, Libp2pInteropTests.pylibp2p,
            ], timeout: 200)
        let result = try Libp2pInteropTests.json(output)
        #expect(result["ready"] as? Bool == true, "every node saw its neighbours subscribe")
        let expected = try #require(result["expected"] as? [String: String])
        #expect(expected.count == nodes)
        let received = try #require(result["nodes"] as? [String: [String: Any]])
        #expect(received.count == nodes)
        for (name, node) in received {
            let messages = try #require(node["received"] as? [[String: Any]], "\(name)")
            let texts = messages.compactMap { $0["data"] as? String }
            #expect(texts.sorted() == expected.keys.sorted(), "\(name) received \(texts)")
            #expect(Set(texts).count == texts.count, "\(name) received a message twice: \(texts)")
            for message in messages {
                let text = message["data"] as? String ?? ""
                #expect(message["from"] as? String == expected[text], "\(name): the author of '\(text)'")
            }
        }
        return received
    }

    @Test(
        "go-libp2p (p2pd -pubsub): a line PeerStack - go - PeerStack over /meshsub/1.1.0; each publishes, each message reaches all three once, signed and relayed both ways",
        .enabled(if: Libp2pInteropTests.hasP2pd), .timeLimit(.minutes(4)))
    func goLibp2p() async throws {
        let nodes = try await Self.run("p2pd", nodes: 3)
        for name in ["peerstack1", "peerstack2"] {
            #expect(nodes[name]?["protocols"] as? [String] == ["/meshsub/1.1.0"], "\(name)")
        }
    }

    @Test(
        "go-libp2p's floodsub router: PeerStack falls back to /floodsub/1.0.0 and messages still reach all three once",
        .enabled(if: Libp2pInteropTests.hasP2pd), .timeLimit(.minutes(4)))
    func floodsub() async throws {
        let nodes = try await Self.run("p2pd-floodsub", nodes: 3)
        for name in ["peerstack1", "peerstack2"] {
            #expect(nodes[name]?["protocols"] as? [String] == ["/floodsub/1.0.0"], "\(name)")
        }
    }

    @Test(
        "Kubo 0.22 (RSA identity, so signed messages carry the key): a line PeerStack - Kubo - PeerStack; every message reaches all three once",
        .enabled(if: Interop.enabled("kubo")), .timeLimit(.minutes(4)))
    func kubo() async throws {
        let nodes = try await Self.run("kubo", nodes: 3)
        for name in ["peerstack1", "peerstack2"] {
            #expect(nodes[name]?["protocols"] as? [String] == ["/meshsub/1.1.0"], "\(name)")
        }
    }

    @Test(
        "py-libp2p 0.8.1: a line PeerStack - py - PeerStack; every message reaches all three once",
        .enabled(if: Libp2pInteropTests.hasPylibp2p), .timeLimit(.minutes(4)))
    func pylibp2p() async throws {
        let nodes = try await Self.run("py", nodes: 3)
        for name in ["peerstack1", "peerstack2"] {
            #expect(nodes[name]?["protocols"] as? [String] == ["/meshsub/1.1.0"], "\(name)")
        }
    }

    @Test(
        "a six-node chain PeerStack - go-libp2p - Kubo - py-libp2p - go-libp2p - PeerStack: each node publishes once and every message reaches all six once, relayed by every implementation",
        .enabled(if: Libp2pInteropTests.hasP2pd && Libp2pInteropTests.hasPylibp2p && Interop.enabled("kubo")),
        .timeLimit(.minutes(4)))
    func mixedMesh() async throws {
        _ = try await Self.run("mesh", nodes: 6)
    }
}

import Foundation
import TestSupport
import Testing

/// Bitswap 1.2 between PeerStack and Kubo 0.22, both directions, inside `unshare -n` (Kubo's
/// defaults name public hosts).
@Suite("Bitswap interop", .serialized)
struct BitswapInteropTests {
    @Test(
        "Kubo 0.22 ⇄ PeerStack: PeerStack fetches by CID a 64 MiB file and a nested tree that Kubo added; Kubo downloads a file and a tree from `peerstack ipfs daemon`; CIDs and bytes equal",
        .enabled(if: Interop.enabled("kubo")), .timeLimit(.minutes(8)))
    func kubo() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kubo-bitswap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let output = try await Libp2pInteropTests.isolated(
            [
                Interop.pipPython,
                Libp2pInteropTests.scripts.appendingPathComponent("kubo_bitswap.py").path, work.path,
                try peerstackExecutable().path, "64",
            ], timeout: 420)
        let result = try Libp2pInteropTests.json(output)

        let fetched = try #require(result["fetched"] as? [String: [String: Any]], "\(result)")
        for name in ["file", "tree"] {
            let seen = try #require(fetched[name], "\(name)")
            #expect(seen["exit"] as? Int == 0, "PeerStack fetching Kubo's \(name): \(seen)")
            #expect(seen["equal"] as? Bool == true, "Kubo's \(name) fetched byte for byte: \(seen)")
            #expect(
                seen["rehashed"] as? String == seen["cid"] as? String,
                "PeerStack's CID for the fetched \(name) is Kubo's: \(seen)")
        }

        let served = try #require(result["served"] as? [String: Any], "\(result)")
        #expect(served["connect"] as? Int == 0, "Kubo connects to the daemon: \(served)")
        for name in ["file", "tree"] {
            let seen = try #require(served[name] as? [String: Any], "\(name): \(served)")
            #expect(seen["download"] as? Int == 0, "Kubo downloading PeerStack's \(name): \(served)")
            #expect(seen["equal"] as? Bool == true, "PeerStack's \(name) downloaded byte for byte: \(served)")
            #expect(
                seen["kuboCID"] as? String == seen["cid"] as? String,
                "Kubo's CID for the \(name) is PeerStack's: \(seen)")
        }
    }
}

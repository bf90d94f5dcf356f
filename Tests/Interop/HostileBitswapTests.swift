import Foundation
import TestSupport
import Testing

/// `peerstack ipfs daemon` contains peers that want every block of a large DAG again and again
/// and never read the answers, while Kubo 0.22 fetches the same DAG from it.
@Suite("PeerStack's Bitswap server contains hostile peers", .serialized)
struct HostileBitswapTests {
    @Test(
        "four py-libp2p peers want all of a 64 MiB file five times and never read; Kubo downloads it meanwhile and the daemon's memory stays bounded",
        .enabled(if: Interop.enabled("kubo") && Libp2pInteropTests.hasPylibp2p),
        .timeLimit(.minutes(5)))
    func neverReading() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hostile-bitswap-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let output = try await Libp2pInteropTests.isolated(
            [
                Interop.pipPython,
                Libp2pInteropTests.scripts.appendingPathComponent("hostile_bitswap.py").path,
                work.path, try peerstackExecutable().path, Libp2pInteropTests.pylibp2p, "64", "4",
            ], timeout: 240)
        let result = try Libp2pInteropTests.json(output)
        let flood = try #require(result["flood"] as? [String: Any], "\(result)")
        #expect(
            flood["peers"] as? Int == 4, "the hostile peers connected and sent their wantlists: \(result)")
        #expect(result["flooding"] as? Bool == true, "the hostile peers held on during the fetch: \(result)")
        #expect(result["download"] as? Int == 0, "Kubo's Download: \(result)")
        #expect(result["equal"] as? Bool == true, "Kubo fetched the file whole: \(result)")
        #expect((result["seconds"] as? Double ?? 999) < 60, "Kubo's fetch took \(result["seconds"] ?? "?") s")
        let before = try #require(result["peakBefore"] as? Int)
        let after = try #require(result["peakAfter"] as? Int)
        // Answering each flooder's wantlist in full would hold 4 × 64 MiB; one message in flight a
        // peer (at most 2 MiB, blocked on the stream's window) is what bounded serving costs.
        #expect(
            after - before < 64 << 20,
            "the daemon's peak RSS grew by \((after - before) >> 20) MiB (\(before >> 20) → \(after >> 20) MiB)"
        )
    }
}

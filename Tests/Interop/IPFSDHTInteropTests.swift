import Foundation
import TestSupport
import Testing

/// The IPFS DHT with three implementations, inside `unshare -n`: Kubo 0.22 (a server of its LAN
/// DHT, `/ipfs/lan/kad/1.0.0`, the only one it serves on loopback), go-libp2p's p2pd (`-dht`, a
/// server of `/ipfs/kad/1.0.0`) and `peerstack ipfs daemon` (both).
@Suite("IPFS DHT interop", .serialized)
struct IPFSDHTInteropTests {
    @Test(
        "PeerStack, Kubo 0.22 and p2pd -dht: what each provides the others find with findprovs and fetch by CID alone; findpeer finds p2pd",
        .enabled(if: Interop.enabled("kubo") && Libp2pInteropTests.hasP2pd), .timeLimit(.minutes(5)))
    func threeNodes() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ipfs-dht-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let output = try await Libp2pInteropTests.isolated(
            [
                Interop.pipPython, Libp2pInteropTests.scripts.appendingPathComponent("ipfs_dht.py").path,
                work.path, try peerstackExecutable().path, Libp2pInteropTests.p2pd,
            ], timeout: 240)
        let result = try Libp2pInteropTests.json(output)
        let log = result["daemonLog"] as? String ?? ""
        let kubo = try #require(result["kuboID"] as? String, "\(result)")
        let p2pd = try #require(result["p2pdID"] as? String, "\(result)")
        let peerstack = try #require(result["peerstackID"] as? String, "\(result)")
        #expect(
            log.contains("DHT: 2 peers in the routing table"),
            "the daemon joins Kubo's and p2pd's DHT: \(log)")

        let swarm = try #require(result["swarmPeers"] as? [String: Any], "\(result)")
        let connected = (swarm["stdout"] as? String ?? "").split(separator: "\n")
        #expect(
            connected.contains { $0.hasSuffix("/p2p/\(kubo)") }
                && connected.contains { $0.hasSuffix("/p2p/\(p2pd)") },
            "ipfs swarm peers lists Kubo and p2pd: \(swarm)")

        let provided = try #require(result["peerstackProvides"] as? [String: Any], "\(result)")
        #expect(provided["p2pdFindsPeerStack"] as? Bool == true, "p2pd's FIND_PROVIDERS: \(provided)")
        #expect(provided["kuboDownload"] as? Int == 0, "Kubo's Download by CID: \(provided)")
        #expect(provided["kuboEqual"] as? Bool == true, "Kubo fetched PeerStack's file: \(provided) \(log)")

        let fromKubo = try #require(result["kuboProvides"] as? [String: Any], "\(result)")
        let findprovs = try #require(fromKubo["findprovs"] as? [String: Any])
        #expect(
            (findprovs["stdout"] as? String)?.split(separator: "\n").map(String.init).contains(kubo) == true,
            "peerstack ipfs routing findprovs finds Kubo: \(findprovs)")
        #expect(fromKubo["p2pdFindsKubo"] as? Bool == true, "p2pd finds Kubo through PeerStack: \(fromKubo)")
        let get = try #require(fromKubo["get"] as? [String: Any])
        #expect(get["exit"] as? Int == 0, "peerstack ipfs get --bootstrap: \(get)")
        #expect(fromKubo["equal"] as? Bool == true, "PeerStack fetched Kubo's file by CID alone: \(fromKubo)")

        let fromP2pd = try #require(result["p2pdProvides"] as? [String: Any], "\(result)")
        let found = try #require(fromP2pd["findprovs"] as? [String: Any])
        #expect(found["stdout"] as? String == p2pd, "findprovs finds p2pd's record: \(found)")
        let peer = try #require(fromP2pd["findpeer"] as? [String: Any])
        let address = try #require((result["p2pd"] as? String)?.components(separatedBy: "/p2p/").first)
        #expect(
            (peer["stdout"] as? String)?.split(separator: "\n").map(String.init).contains(address) == true,
            "findpeer \(p2pd) through Kubo: \(peer)")
        #expect(peerstack.hasPrefix("12D3Koo"))
    }
}

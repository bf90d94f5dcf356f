import Kademlia
import MainlineDHT
import NIOCore
import NIOPosix
import NIOSSL
import PeerNet
import SystemPackage

/// A snapshot of a torrent's progress, reported about once a second.
public struct TorrentProgress: Sendable, Hashable {
    public enum State: String, Sendable, Hashable {
        case fetchingMetadata = "fetching metadata"
        case checking
        case downloading
        case seeding
    }

    public var name: String?
    public var state: State
    /// Verified bytes of the wanted pieces, and their total.
    public var bytesDone: Int64
    public var bytesWanted: Int64
    public var downloadRate: Double
    public var uploadRate: Double
    public var peers: Int
    public var piecesDone: Int
    public var pieceCount: Int
    public var downloaded: Int64
    public var uploaded: Int64
    public var wasted: Int64
}

/// What a running torrent reports.
public enum TorrentEvent: Sendable {
    case progress(TorrentProgress)
    /// Checking data already on disk.
    case checking(HashingProgress)
    case metadataReceived(name: String)
    case completed
    case peerBanned(Endpoint, reason: String)
    /// A peer completed the handshake (`outgoing`: we dialled it).
    case peerConnected(Endpoint, outgoing: Bool)
    /// A tracker could not be reached or refused the announce.
    case trackerError(String, String)
    /// A tracker answered an announce with this many peers.
    case trackerAnnounced(String, peers: Int)
    /// A DHT search (BEP 5 `get_peers`, then `announce_peer`) found this many peers and
    /// announced us to this many nodes.
    case dhtSearched(peers: Int, announcedTo: Int)
    /// A peer told us of others by PEX (BEP 11).
    case peersLearned(from: Endpoint?, count: Int)
    /// A connection was closed, by us or the peer, and why.
    case peerClosed(Endpoint?, reason: String)
    /// A web seed (BEP 19) failed or sent bad data; `dropped`: it is not asked again.
    case webSeedFailed(String, reason: String, dropped: Bool)
}

/// How a ``TorrentClient`` runs.
public struct TorrentClientOptions: Sendable {
    /// Where the data goes (`directory/name…`), and the resume state (`directory/.peerstack/`).
    public var directory: FilePath
    /// Address and port to accept peers on; port 0 picks a free one.
    public var listenHost = "0.0.0.0"
    public var listenPort = 6881
    /// Peers to connect to from the start.
    public var peers: [Endpoint] = []
    /// Tracker tiers (BEP 12); by default the torrent's own (or the magnet link's `tr`).
    public var trackers: [[String]]?
    /// A PEM file of certificates to trust for https trackers and web seeds, besides the system's.
    public var trackerCertificates: FilePath?
    /// Web seeds (BEP 19) to download from over HTTP(S); by default the torrent's `url-list`
    /// (or the magnet link's `ws`).
    public var webSeeds: [String]?
    /// Wait after a web seed's first failure (doubled after each next one), and the failures in
    /// a row after which it is dropped.
    public var webSeedRetry: Duration = .seconds(10)
    public var webSeedMaxFailures = 5
    /// Encryption (MSE/PE) of peer connections, both ways: `prefer` (the default, as in
    /// qBittorrent and Transmission), `require`, `allow` or `disable`.
    public var encryption = EncryptionPolicy.prefer
    /// How we dial peers: uTP first with TCP after it fails (the default, as libtorrent), or
    /// one of them only. Incoming connections are taken on both whatever this says.
    public var transport = PeerTransport.both
    /// uTP's tuning and limits (BEP 29; LEDBAT's target delay among them).
    public var utp = UTPConfiguration()
    /// Keep seeding after the download completes, until cancelled.
    public var seed = false
    /// Indices of the files to download (nil: all).
    public var fileSelection: [Int]?
    public var session = SessionConfiguration()
    /// Limits of every peer connection: a peer must complete the BEP 3 handshake within 15 s,
    /// one that sends nothing for 5 minutes is dropped (the session drops one silent for
    /// ``SessionConfiguration/idleTimeout`` first), and one that does not read what we send stops
    /// being read and served, and is dropped past 8 MiB queued.
    public var connectionLimits = ConnectionLimits(handshakeTimeout: .seconds(15), idleTimeout: .seconds(300))
    /// Admission of incoming connections: most at once over every torrent (each torrent also
    /// caps its own peers, ``SessionConfiguration/maxPeers``), most per IP (loopback exempt), and
    /// most still in their handshake (past it the oldest is closed).
    public var admission = ConnectionLimiter.Configuration(
        maxConnections: 200, maxPerIP: 8, maxHandshaking: 64)
    /// Threads for hashing when checking existing data.
    public var hashWorkers = Machine.coreCount
    /// A DHT node to find peers through and announce to (BEP 5); shared by all torrents of a
    /// process. Never used for private torrents (BEP 27).
    public var dht: DHTService?
    /// Seconds between DHT searches once peers were found (sooner while none were).
    public var dhtInterval: Duration = .seconds(300)
    /// The event loops the torrent's sockets run on (it takes one): the process's shared group
    /// unless given, so a process with many torrents still has one thread per core.
    public var group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    /// Threads for positional disk reads and writes, shared the same way.
    public var blockingPool: NIOThreadPool = .singleton

    public init(directory: FilePath) {
        self.directory = directory
    }
}

/// Downloads and seeds one torrent: the NIO driver around ``TorrentSession``, with storage on a
/// thread pool. `run` returns when the download is complete and verified (or, with
/// ``TorrentClientOptions/seed``, when the task is cancelled); cancelling saves the resume state.
public final class TorrentClient: Sendable {
    public let infoHash: InfoHash
    /// A hybrid torrent's second info-hash (the truncated SHA-256, BEP 52): peers naming it are
    /// served, and it is announced to trackers and the DHT too.
    public let alternateInfoHash: InfoHash?
    private let metainfo: Metainfo?
    /// A magnet link's v2 hash (`btmh`) marks a torrent with a v2 view.
    private let magnetHasV2: Bool
    public let options: TorrentClientOptions

    public init(metainfo: Metainfo, options: TorrentClientOptions) {
        self.metainfo = metainfo
        infoHash = metainfo.infoHash
        alternateInfoHash = metainfo.info.version == .hybrid ? metainfo.infoHashV2?.truncated : nil
        magnetHasV2 = false
        self.options = options
    }

    /// A torrent known by a magnet link: the metadata comes from peers (BEP 9).
    public init(magnet: MagnetLink, options: TorrentClientOptions) throws {
        guard let hash = magnet.wireHash else {
            throw StorageError(path: magnet.uri, reason: "no info-hash")
        }
        infoHash = hash
        alternateInfoHash = magnet.infoHash != nil ? magnet.v2InfoHash?.truncated : nil
        magnetHasV2 = magnet.v2InfoHash != nil
        metainfo = nil
        var options = options
        options.peers += magnet.peers.compactMap(Endpoint.init)
        if options.trackers == nil { options.trackers = magnet.trackers.map { [$0] } }
        if options.webSeeds == nil { options.webSeeds = magnet.webSeeds }
        self.options = options
    }

    /// Runs the torrent. `onEvent` is called from the client's event loop thread.
    /// `onListening` is told the port peers can reach us on.
    public func run(
        onListening: @escaping @Sendable (Int) -> Void = { _ in },
        onEvent: @escaping @Sendable (TorrentEvent) -> Void
    ) async throws {
        // When the DHT has our port, uTP shares its socket, and so its event loop.
        let wantedPort = self.options.listenPort
        let sharedDHT = self.options.dht.flatMap { dht in
            wantedPort != 0 && dht.port == UInt16(clamping: wantedPort) ? dht : nil
        }
        let loop = sharedDHT?.datagramChannel.eventLoop ?? self.options.group.next()
        let pool = options.blockingPool
        var generator = SystemRandomNumberGenerator()
        let peerID = Handshake.makePeerID(using: &generator)
        let seed = UInt64.random(in: 0...UInt64.max, using: &generator)
        let listener = PeerListener()
        let listenIP: IPAddress
        do {
            listenIP = try IPAddress(parsing: options.listenHost)
        } catch {
            throw StorageError(path: options.listenHost, reason: "cannot listen there: \(error)")
        }
        var listening = TCPListener.Configuration(
            limits: options.connectionLimits, admission: options.admission)
        listening.backlog = 64
        listening.receiveAllocator = peerReceiveAllocator
        let incoming: @Sendable (any Channel) throws -> Void = { [encryption = options.encryption] channel in
            // An incoming connection may be plain or MSE; the first bytes tell.
            let mse: MSEHandler? =
                switch encryption {
                case .disable: nil
                case .require:
                    MSEHandler(
                        role: .responder(
                            infoHashes: listener.infoHashes, methods: .rc4, allowPlaintext: false))
                case .prefer, .allow:
                    MSEHandler(
                        role: .responder(
                            infoHashes: listener.infoHashes, methods: [.rc4, .plaintext], allowPlaintext: true
                        ))
                }
            try PeerChannelHandler.install(on: channel, role: .incoming(listener), encryption: mse)
        }
        let server = try await TCPListener.bind(
            on: Endpoint(ip: listenIP, port: UInt16(clamping: options.listenPort)), group: loop,
            configuration: listening, initialize: incoming)
        let port = Int(server.localAddress?.port ?? UInt16(clamping: options.listenPort))
        // uTP on the same port number over UDP (BEP 29), in front of the DHT's node when the DHT
        // has that port, else on a socket of its own.
        let utp = await startUTP(
            on: Endpoint(ip: listenIP, port: UInt16(clamping: port)), loop: loop, limiter: server.limiter,
            accept: incoming)
        onListening(port)

        var sessionConfiguration = options.session
        sessionConfiguration.listenPort = UInt16(clamping: port)
        let dht = metainfo?.info.isPrivate == true ? nil : options.dht
        if let dht { sessionConfiguration.dhtPort = dht.port }
        let session =
            metainfo.map {
                TorrentSession(
                    info: $0.info, pieceLayers: $0.pieceLayers, peerID: peerID,
                    configuration: sessionConfiguration, seed: seed)
            }
            ?? TorrentSession(
                infoHash: infoHash, alternateInfoHash: alternateInfoHash, hasV2: magnetHasV2, peerID: peerID,
                configuration: sessionConfiguration, seed: seed)
        let options = self.options
        let driver = try await loop.submit {
            SessionDriver(
                session: session, loop: loop, pool: pool, directory: options.directory,
                keepSeeding: options.seed,
                workers: options.hashWorkers, connectionLimits: options.connectionLimits, onEvent: onEvent)
        }.get()
        let tiers = options.trackers ?? metainfo?.trackerTiers ?? []
        let roots = try options.trackerCertificates.map { try NIOSSLCertificate.fromPEMFile($0.string) } ?? []
        let webSeeds = options.webSeeds ?? metainfo?.webSeeds ?? []
        try await loop.submit {
            driver.webSeedRetry = options.webSeedRetry
            driver.webSeedMaxFailures = options.webSeedMaxFailures
            driver.encryption = options.encryption
            driver.transport = options.transport
            driver.utp = utp?.socket
            driver.setWebSeeds(webSeeds, extraTrustRoots: roots)
        }.get()
        if !tiers.isEmpty {
            try await loop.submit {
                let announcer = TrackerAnnouncer(tiers: tiers, loop: loop, extraTrustRoots: roots)
                announcer.alternateInfoHash = self.alternateInfoHash
                announcer.onResult = { url, result in
                    switch result {
                    case .success(let response): onEvent(.trackerAnnounced(url, peers: response.peers.count))
                    case .failure(let error): onEvent(.trackerError(url, "\(error)"))
                    }
                }
                driver.announcer = announcer
            }.get()
        }
        let infoHashes = [infoHash] + (alternateInfoHash.map { [$0] } ?? [])
        listener.add(driver, infoHashes: infoHashes)
        if let dht {
            try await loop.submit {
                driver.onDHTNode = { address in dht.ping(address) }
            }.get()
        }
        // A hybrid torrent is looked up and announced under both its info-hashes (BEP 52).
        let searching = dht.map { dht in
            infoHashes.map { infoHash in
                Task { [options] in
                    await Self.searchDHT(
                        dht, infoHash: infoHash, port: port, every: options.dhtInterval, driver: driver,
                        onEvent: onEvent)
                }
            }
        }
        defer { searching?.forEach { $0.cancel() } }
        try await withTaskCancellationHandler {
            try await loop.flatSubmit {
                driver.fileSelection = options.fileSelection
                return driver.start().map {
                    driver.addPeers(options.peers)
                }
            }.get()
            try await driver.finished.futureResult.get()
        } onCancel: {
            loop.execute { driver.finished.succeed() }
        }
        listener.remove(infoHashes)
        try await loop.flatSubmit { driver.stop() }.get()
        await server.close()
        await utp?.stop()
        if let failure = try await loop.submit({ driver.failure }).get() { throw failure }
    }

    /// uTP on `endpoint`'s UDP port: a ``UTPSocket`` added in front of the DHT node's handler
    /// when the DHT listens there, else on a socket of its own. Nil (TCP only) when the port is
    /// taken by something else or uTP is not wanted.
    private func startUTP(
        on endpoint: Endpoint, loop: any EventLoop, limiter: ConnectionLimiter,
        accept: @escaping @Sendable (any Channel) throws -> Void
    ) async -> UTPBinding? {
        var configuration = UTPSocket.Configuration()
        configuration.connection = options.utp
        configuration.limits = options.connectionLimits
        let shared =
            options.dht.map { $0.port == endpoint.port && $0.datagramChannel.eventLoop === loop } ?? false
        // The DHT's socket reads any datagram whole (64 KiB slots); our own reads uTP-sized ones.
        configuration.maxDatagram = shared ? 65_537 : 4_096
        let socket = UTPSocket(configuration: configuration, limiter: limiter, accept: accept)
        if let dht = options.dht, dht.port == endpoint.port, dht.datagramChannel.eventLoop === loop {
            let channel = dht.datagramChannel
            // One uTP socket per port: a second torrent of the process on the same DHT port
            // dials and takes TCP only (its incoming uTP would reach the first torrent's socket).
            if (try? await channel.pipeline.handler(type: UTPSocket.self).get()) != nil { return nil }
            do {
                try await channel.pipeline.addHandler(socket, position: .first).get()
                return UTPBinding(socket: socket, channel: channel, owned: false)
            } catch {
                return nil
            }
        }
        do {
            let channel = try await UDPEndpoint.bind(
                on: endpoint, loop: loop,
                configuration: UDPEndpoint.Configuration(
                    maxDatagram: configuration.maxDatagram, datagramsPerRead: 16, receiveBuffer: 4 << 20,
                    sendBuffer: 4 << 20)
            ) { channel in
                try channel.pipeline.syncOperations.addHandler(socket)
            }
            return UTPBinding(socket: socket, channel: channel, owned: true)
        } catch {
            return nil
        }
    }

    /// Finds peers through the DHT and announces our listening port (BEP 5 `get_peers` and
    /// `announce_peer`), again every `interval` (every 10 s while nobody was found).
    private static func searchDHT(
        _ dht: DHTService, infoHash: InfoHash, port: Int, every interval: Duration, driver: SessionDriver,
        onEvent: @escaping @Sendable (TorrentEvent) -> Void
    ) async {
        guard let target = NodeID(bytes: infoHash.bytes) else { return }
        await dht.joined()
        while !Task.isCancelled {
            let result = await dht.run(
                .getPeers(target, announcePort: UInt16(clamping: port), impliedPort: false))
            let peers = result.peers.compactMap { Endpoint(ip: $0.ip, port: $0.port) }
            onEvent(.dhtSearched(peers: peers.count, announcedTo: result.stored))
            if !peers.isEmpty { driver.loop.execute { driver.addPeers(peers) } }
            do {
                try await Task.sleep(for: peers.isEmpty ? .seconds(10) : interval)
            } catch {
                return
            }
        }
    }
}

/// How peers are dialled.
public enum PeerTransport: String, Sendable, CaseIterable {
    /// uTP first, TCP when the peer does not answer over uTP (libtorrent's way).
    case both
    /// uTP only (BEP 29).
    case utp
    /// TCP only.
    case tcp
}

/// A uTP socket and the UDP channel it sits in (its own, or the DHT's).
struct UTPBinding: Sendable {
    let socket: UTPSocket
    let channel: any Channel
    let owned: Bool

    func stop() async {
        if owned {
            try? await channel.close()
        } else {
            try? await channel.pipeline.removeHandler(socket).get()
        }
    }
}

import DequeModule
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PeerCrypto
import PeerNet
import Synchronization
import SystemPackage

/// Runs a ``TorrentSession`` on one event loop: feeds it socket, disk and timer events and
/// performs the actions it returns. Every method runs on `loop`; nothing else touches the
/// session, so it needs no lock.
final class SessionDriver: @unchecked Sendable {
    let loop: EventLoop
    private(set) var session: TorrentSession
    private(set) var storage: PieceStorage?
    let pool: NIOThreadPool
    let directory: FilePath
    /// Our handshake's reserved bits.
    let reserved: ReservedBits
    let onEvent: @Sendable (TorrentEvent) -> Void
    let workers: Int
    private var channels: [PeerKey: Channel] = [:]
    private var nextKey = 1
    private let origin = NIODeadline.now()
    private var dirty: Set<PeerKey> = []
    private var tickTask: RepeatedTask?
    private var lastResumeSave: Moment = .zero
    private var savingResume = false
    /// Reading from peers is paused while storage is this far behind.
    private var readsPaused = false
    /// Blocks peers asked for, read from disk a few at a time per peer and only while the peer
    /// takes what we send (its connection is writable): a peer that never reads costs its
    /// request queue, not the blocks.
    private var uploads: [PeerKey: UploadQueue] = [:]
    static let readsInFlightPerPeer = 32
    /// Limits of every peer connection (the handshake deadline, backpressure).
    let connectionLimits: ConnectionLimits
    /// Disk backlog (bytes on their way to disk; the piece cache holds up to 24 MiB more of
    /// unverified pieces) at which reading pauses, and at which it resumes.
    static let backlogHigh = 8 << 20
    static let backlogLow = 2 << 20
    private(set) var finished: EventLoopPromise<Void>
    var keepSeeding: Bool
    var fileSelection: [Int]?
    var announcer: TrackerAnnouncer?
    /// Told of DHT nodes that peers name in `port` messages.
    var onDHTNode: ((Endpoint) -> Void)?
    private(set) var failure: Error?
    /// Web seeds (BEP 19), fetched from over HTTP as peers that have everything.
    private var webSeeds: [WebSeedState] = []
    private var webSeedKeys: [PeerKey: Int] = [:]
    private var webFetcher: WebSeedFetcher?
    /// Wait after a web seed's first failure, doubled after each next one; dropped after the last.
    var webSeedRetry: Duration = .seconds(10)
    var webSeedMaxFailures = 5
    /// Encryption (MSE/PE) of the connections we open.
    var encryption = EncryptionPolicy.prefer
    /// Peers whose MSE handshake failed (with `prefer`): dialled in plaintext from then on.
    private var plaintextOnly: Set<Endpoint> = []
    /// How we dial: uTP first, then TCP (or one of them only).
    var transport = PeerTransport.both
    /// uTP on our port (nil: TCP only).
    var utp: UTPSocket?
    /// Peers that did not answer over uTP: dialled over TCP from then on.
    private var tcpOnly: Set<Endpoint> = []
    /// Most peers remembered as plaintext-only (or TCP-only) (beyond it, each is tried with MSE first again).
    static let maxPlaintextOnly = 4_096

    /// One `url-list` entry and how it is doing.
    struct WebSeedState {
        let url: String
        var layout: WebSeedLayout?
        /// The session's key while it is asked for blocks.
        var key: PeerKey?
        var failures = 0
        var retryAt: Moment = .zero
        var dropped = false
        /// Blocks the session asked for, not yet fetched.
        var pending: [BlockRequest] = []
        var inFlight = 0
    }
    /// HTTP requests in flight per web seed, and bytes per request at most.
    static let webSeedConcurrency = 2
    static let webSeedRunBytes = 1 << 20

    init(
        session: TorrentSession, loop: EventLoop, pool: NIOThreadPool, directory: FilePath, keepSeeding: Bool,
        workers: Int, connectionLimits: ConnectionLimits, onEvent: @escaping @Sendable (TorrentEvent) -> Void
    ) {
        self.session = session
        self.connectionLimits = connectionLimits
        self.loop = loop
        self.pool = pool
        self.directory = directory
        self.keepSeeding = keepSeeding
        self.workers = workers
        self.onEvent = onEvent
        var reserved = ReservedBits()
        reserved.extensionProtocol = true
        reserved.fastExtension = true
        reserved.dht = session.configuration.dhtPort != nil
        // BEP 52: the v2 bit only for torrents with a v2 view.
        reserved.v2 = session.hasV2
        self.reserved = reserved
        finished = loop.makePromise()
    }

    /// The handshake we open a connection with: the swarm's main info-hash.
    var handshakeBytes: [UInt8] {
        Handshake(reserved: reserved, infoHash: session.infoHash, peerID: session.peerID).encoded()
    }

    /// The handshake that answers a peer's: the info-hash it named (a hybrid torrent has two).
    func handshakeBytes(replyingTo handshake: Handshake) -> [UInt8] {
        let infoHash = session.infoHashes.contains(handshake.infoHash) ? handshake.infoHash : session.infoHash
        return Handshake(reserved: reserved, infoHash: infoHash, peerID: session.peerID).encoded()
    }

    var now: Moment { .nanoseconds(Int64(NIODeadline.now().uptimeNanoseconds - origin.uptimeNanoseconds)) }

    /// Adds the web seeds to fetch from (BEP 19), with the certificates to trust for HTTPS.
    func setWebSeeds(_ urls: [String], extraTrustRoots: [NIOSSLCertificate]) {
        guard !urls.isEmpty else { return }
        webSeeds = urls.map { WebSeedState(url: $0) }
        webFetcher = WebSeedFetcher(group: loop, extraTrustRoots: extraTrustRoots)
    }

    /// The largest frame a peer may send: a 16 KiB block with headroom, or the bitfield.
    var maxFrameLength: Int {
        max(1 << 17, ((session.picker?.pieceCount ?? (1 << 21)) + 7) / 8 + 16)
    }

    var resumePath: FilePath {
        directory.appending(".peerstack").appending("\(session.infoHash.hex).resume")
    }

    let logger = Logger(label: "peerstack.bittorrent")

    /// A connection closed: a typed event for programs, a debug line for people.
    func closed(_ address: Endpoint?, _ reason: String) {
        logger.debug("closing \(address?.description ?? "a peer"): \(reason)")
        onEvent(.peerClosed(address, reason: reason))
    }

    // MARK: Start and stop

    /// Opens storage for known metadata, works out what is on disk, and starts the timer.
    func start() -> EventLoopFuture<Void> {
        loop.assertInEventLoop()
        tickTask = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .seconds(1)) { [weak self] _ in
            self?.tick()
        }
        // Without the metadata, or a v2 torrent's piece layers, storage waits for `.metadataReceived`.
        guard let info = session.info, !session.needsHashes else {
            onEvent(.progress(progress))
            return loop.makeSucceededVoidFuture()
        }
        return openStorage(info)
    }

    private func openStorage(_ info: InfoDictionary) -> EventLoopFuture<Void> {
        let storage = PieceStorage(info: info, merkle: session.merkle, directory: directory, pool: pool)
        for index in webSeeds.indices {
            webSeeds[index].layout = WebSeedLayout(base: webSeeds[index].url, info: info)
        }
        self.storage = storage
        let resumeBytes = try? SmallFile.read(resumePath, limit: 64 << 20)
        let resume = resumeBytes.flatMap {
            ResumeState(
                decoding: $0, for: session.infoHash, pieceCount: info.pieceCount, fileCount: info.files.count)
        }
        let promise = loop.makePromise(of: Bitfield.self)
        let onEvent = self.onEvent
        let workers = self.workers
        promise.completeWithTask {
            await storage.check(resume: resume, workers: workers) { onEvent(.checking($0)) }
        }
        return promise.futureResult.map { have in
            if let selection = self.fileSelection {
                let priorities = info.files.indices.map { selection.contains($0) ? UInt8(1) : 0 }
                self.perform(self.session.setFilePriorities(priorities, now: self.now))
            }
            self.perform(self.session.storageReady(have: have, now: self.now))
            self.onEvent(.progress(self.progress))
        }
    }

    /// Saves the resume state and closes every connection.
    func stop() -> EventLoopFuture<Void> {
        loop.assertInEventLoop()
        tickTask?.cancel()
        tickTask = nil
        for channel in channels.values { channel.close(promise: nil) }
        let stopped =
            announcer?.stopped(announceRequest(.stopped), timeout: .seconds(3), on: loop)
            ?? loop.makeSucceededVoidFuture()
        let fetcherStopped = loop.makePromise(of: Void.self)
        let fetcher = webFetcher
        webFetcher = nil
        fetcherStopped.completeWithTask { await fetcher?.shutdown() }
        return saveResume().recover { _ in }.and(stopped).and(fetcherStopped.futureResult).map { _ in }
    }

    /// The numbers a tracker wants.
    func announceRequest(_ event: AnnounceEvent) -> AnnounceRequest {
        var request = AnnounceRequest(
            infoHash: session.infoHash, peerID: session.peerID, port: session.configuration.listenPort ?? 6881
        )
        request.event = event
        request.uploaded = session.uploaded
        request.downloaded = session.downloaded
        // Unknown before the metadata arrives: a non-zero guess, so we are not taken for a seed.
        request.left = session.info == nil ? 16_384 : session.bytesLeft
        request.numWant = 200
        return request
    }

    private func finish(_ error: Error? = nil) {
        if let error { failure = error }
        finished.succeed()
    }

    // MARK: Connections

    func register(_ channel: Channel, address: Endpoint, outgoing: Bool, handshake: Handshake) -> PeerKey {
        loop.assertInEventLoop()
        let key = PeerKey(nextKey)
        nextKey += 1
        channels[key] = channel
        if readsPaused { ConnectionGuard.setReadingPaused(channel, true) }
        perform(
            session.peerConnected(key, address: address, outgoing: outgoing, handshake: handshake, now: now))
        if channels[key] != nil { onEvent(.peerConnected(address, outgoing: outgoing)) }
        return key
    }

    func addPeers(_ addresses: [Endpoint]) {
        session.addPeers(addresses)
    }

    func receivedBlock(piece: Int, offset: Int, data: ByteBuffer, from key: PeerKey) {
        perform(session.receivedBlock(piece: piece, offset: offset, data: data, from: key, now: now))
    }

    func received(_ message: PeerMessage, from key: PeerKey) {
        perform(session.received(message, from: key, now: now))
    }

    func disconnected(_ key: PeerKey) {
        channels[key] = nil
        uploads[key] = nil
        dirty.remove(key)
        perform(session.peerDisconnected(key, now: now))
    }

    /// A dial that failed, or a connection closed before its handshake.
    func connectFailed(_ address: Endpoint) {
        session.connectFailed(address, now: now)
    }

    private func connect(_ address: Endpoint) {
        guard transport != .tcp, let utp, !tcpOnly.contains(address) else {
            if transport == .utp { return connectFailed(address) }
            return connectTCP(address)
        }
        utp.connect(to: address.socketAddress) { channel in
            try self.installOutgoing(on: channel, address: address)
        }
        .whenFailure { _ in
            // No answer over uTP (or a reset): TCP, and TCP first from now on.
            guard self.transport == .both else { return self.connectFailed(address) }
            if self.tcpOnly.count < Self.maxPlaintextOnly { self.tcpOnly.insert(address) }
            self.connectTCP(address)
        }
    }

    private func connectTCP(_ address: Endpoint) {
        TCPDialer.connect(
            to: address, on: loop, limits: connectionLimits, receiveAllocator: peerReceiveAllocator
        ) { channel in
            try self.installOutgoing(on: channel, address: address)
        }
        .whenFailure { _ in self.connectFailed(address) }
    }

    /// The handlers of a connection we opened: MSE as the policy says, then the peer wire.
    private func installOutgoing(on channel: any Channel, address: Endpoint) throws {
        let methods: MSEMethods? =
            switch encryption {
            case .prefer: plaintextOnly.contains(address) ? nil : [.rc4, .plaintext]
            case .require: .rc4
            case .allow, .disable: nil
            }
        let mse = methods.map { methods in
            MSEHandler(role: .initiator(infoHash: session.infoHash, methods: methods)) {
                // An MSE attempt the peer cut off: a plain connection next time (prefer only).
                if self.encryption == .prefer, self.plaintextOnly.count < Self.maxPlaintextOnly {
                    self.plaintextOnly.insert(address)
                }
            }
        }
        try PeerChannelHandler.install(on: channel, role: .outgoing(self, address), encryption: mse)
    }

    // MARK: Uploads

    /// The peer's connection can take more: read the next blocks it asked for.
    func writable(_ key: PeerKey) {
        pumpUploads(key)
    }

    private func pumpUploads(_ key: PeerKey) {
        guard let storage, var queue = uploads[key], let channel = channels[key] else { return }
        while queue.inFlight < Self.readsInFlightPerPeer, channel.isWritable,
            let request = queue.waiting.popFirst()
        {
            guard session.stillWanted(request, by: key) else { continue }
            queue.inFlight += 1
            storage.read(request, on: loop).whenComplete { result in
                self.uploads[key]?.inFlight -= 1
                switch result {
                case .success(let data):
                    self.perform(self.session.blockRead(request, for: key, data: data, now: self.now))
                case .failure(let error):
                    self.logger.warning("cannot read \(request): \(error)")
                }
                self.pumpUploads(key)
            }
        }
        uploads[key] = queue
    }

    // MARK: Actions

    func perform(_ actions: [SessionAction]) {
        loop.assertInEventLoop()
        for action in actions {
            switch action {
            case .send(let key, let message):
                if let index = webSeedKeys[key] {
                    // Only requests mean anything to a web seed; they become HTTP range requests.
                    if case .request(let request) = message {
                        webSeeds[index].pending.append(request)
                        webDirty.insert(index)
                    }
                    continue
                }
                guard let channel = channels[key] else { continue }
                var buffer = channel.allocator.buffer(capacity: PeerWireCodec.frameLength(message))
                PeerWireCodec.encode(message, into: &buffer)
                channel.write(buffer, promise: nil)
                dirty.insert(key)
            case .close(let key, let reason, let ban):
                if let index = webSeedKeys[key] {
                    webSeedClosed(index, reason: reason, ban: ban)
                    continue
                }
                if let channel = channels.removeValue(forKey: key) {
                    closed(channel.remoteAddress.flatMap(Endpoint.init), reason)
                    channel.close(promise: nil)
                }
            case .connect(let address):
                connect(address)
            case .write(let request, let data):
                guard let storage else { continue }
                storage.write(request, data: data, on: loop).whenComplete { result in
                    switch result {
                    case .success: self.perform(self.session.blockWritten(request))
                    case .failure(let error): self.storageFailed(error)
                    }
                    self.applyBackpressure()
                }
                applyBackpressure()
            case .verify(let piece, let blockDigests):
                guard let storage else { continue }
                storage.verify(piece, blockDigests: blockDigests, on: loop).whenComplete { result in
                    switch result {
                    case .success(let outcome):
                        self.perform(
                            self.session.pieceVerified(
                                piece, passed: outcome.passed, blockDigests: outcome.digests, now: self.now))
                    case .failure(let error): self.storageFailed(error)
                    }
                    self.applyBackpressure()
                }
            case .read(let request, let key):
                guard channels[key] != nil else { continue }
                uploads[key, default: UploadQueue()].waiting.append(request)
                pumpUploads(key)
            case .readLeaves(let piece, let request, let key):
                guard let storage else { continue }
                storage.leaves(piece, on: loop).whenComplete { result in
                    if case .failure(let error) = result {
                        self.logger.warning("cannot hash piece \(piece): \(error)")
                    }
                    self.perform(
                        self.session.leavesRead(request, leaves: try? result.get(), for: key, now: self.now))
                }
            case .metadataReceived(let info):
                onEvent(.metadataReceived(name: info.name))
                openStorage(info).whenFailure { self.storageFailed($0) }
            case .pieceCompleted:
                break
            case .downloadCompleted:
                onEvent(.progress(progress))
                onEvent(.completed)
                announcer?.completed()
                saveResume().whenComplete { _ in
                    if !self.keepSeeding { self.finish() }
                }
            case .banned(let address, let reason):
                onEvent(.peerBanned(address, reason: reason))
            case .learnedPeers(let key, let count):
                onEvent(
                    .peersLearned(from: channels[key]?.remoteAddress.flatMap(Endpoint.init), count: count))
            case .dhtNode(let address):
                onDHTNode?(address)
            }
        }
        for key in dirty { channels[key]?.flush() }
        dirty.removeAll(keepingCapacity: true)
        let seeds = webDirty
        webDirty.removeAll()
        for index in seeds.sorted() { pumpWebSeed(index) }
    }

    // MARK: Web seeds (BEP 19)

    private var webDirty: Set<Int> = []

    /// Starts asking web seeds that are idle and not backing off for blocks.
    private func connectWebSeeds() {
        guard session.isReady, !session.isComplete, !readsPaused else { return }
        for index in webSeeds.indices
        where webSeeds[index].key == nil && !webSeeds[index].dropped && now >= webSeeds[index].retryAt {
            let key = PeerKey(nextKey)
            nextKey += 1
            webSeedKeys[key] = index
            webSeeds[index].key = key
            perform(session.webSeedConnected(key, address: TorrentSession.webSeedAddress(index), now: now))
            if !session.hasPeer(key) {
                // Refused: banned earlier for bad data.
                webSeedKeys[key] = nil
                webSeeds[index].key = nil
                webSeeds[index].dropped = session.isBanned(TorrentSession.webSeedAddress(index))
            }
        }
    }

    /// Sends the blocks a web seed was asked for as range requests, a few runs at a time.
    private func pumpWebSeed(_ index: Int) {
        guard let key = webSeeds[index].key, let layout = webSeeds[index].layout, let fetcher = webFetcher,
            !readsPaused
        else { return }
        // A second request goes out only once enough is pending: runs stay long.
        while webSeeds[index].inFlight < Self.webSeedConcurrency, !webSeeds[index].pending.isEmpty,
            webSeeds[index].inFlight == 0
                || webSeeds[index].pending.count * BlockRequest.standardLength >= Self.webSeedRunBytes / 4
        {
            let runs = WebSeedLayout.runs(
                webSeeds[index].pending, pieceLength: layout.info.pieceLength, maxBytes: Self.webSeedRunBytes)
            let run = runs[0]
            webSeeds[index].pending = Array(runs.dropFirst().joined())
            webSeeds[index].inFlight += 1
            let promise = loop.makePromise(of: [ByteBuffer].self)
            promise.completeWithTask { try await fetcher.fetch(run, layout: layout) }
            promise.futureResult.whenComplete { result in
                self.webSeeds[index].inFlight -= 1
                // A seed that failed meanwhile has a new key (or none): its answers are dropped.
                guard self.webSeeds[index].key == key else { return }
                switch result {
                case .success(let blocks):
                    self.webSeeds[index].failures = 0
                    for (request, data) in zip(run, blocks) {
                        self.receivedBlock(
                            piece: request.piece, offset: request.offset, data: data, from: key)
                    }
                case .failure(let error):
                    self.webSeedFailed(index, reason: "\(error)")
                }
                self.pumpWebSeed(index)
            }
        }
    }

    /// A web seed's request failed: its blocks go to others, and it is tried again after a
    /// wait that doubles each time, or dropped after ``webSeedMaxFailures`` in a row.
    private func webSeedFailed(_ index: Int, reason: String) {
        guard let key = webSeeds[index].key else { return }
        webSeedKeys[key] = nil
        webSeeds[index].key = nil
        webSeeds[index].pending = []
        perform(session.peerDisconnected(key, now: now))
        webSeeds[index].failures += 1
        let failures = webSeeds[index].failures
        if failures >= webSeedMaxFailures { webSeeds[index].dropped = true }
        webSeeds[index].retryAt = now + webSeedRetry * (1 << min(failures - 1, 16))
        logger.debug("web seed \(webSeeds[index].url): \(reason)")
        onEvent(.webSeedFailed(webSeeds[index].url, reason: reason, dropped: webSeeds[index].dropped))
    }

    /// The session closed a web seed: banned for bad data (dropped for good), or done.
    private func webSeedClosed(_ index: Int, reason: String, ban: Bool) {
        guard let key = webSeeds[index].key else { return }
        webSeedKeys[key] = nil
        webSeeds[index].key = nil
        webSeeds[index].pending = []
        if ban {
            webSeeds[index].dropped = true
            onEvent(.webSeedFailed(webSeeds[index].url, reason: reason, dropped: true))
        } else if !session.isComplete {
            webSeeds[index].failures += 1
            webSeeds[index].retryAt = now + webSeedRetry
        }
    }

    /// Stops reading sockets while the disk is behind (TCP then slows the senders), so memory
    /// stays bounded; resumes once most of the backlog is written.
    private func applyBackpressure() {
        guard let storage else { return }
        let backlog = storage.backlog
        if !readsPaused && backlog > Self.backlogHigh {
            readsPaused = true
        } else if readsPaused && backlog < Self.backlogLow {
            readsPaused = false
        } else {
            return
        }
        for channel in channels.values { ConnectionGuard.setReadingPaused(channel, readsPaused) }
        if !readsPaused { for index in webSeeds.indices { pumpWebSeed(index) } }
    }

    private func storageFailed(_ error: Error) {
        logger.error("storage failed: \(error)")
        finish(error)
    }

    // MARK: Time

    private func tick() {
        let now = self.now
        perform(session.tick(now: now))
        connectWebSeeds()
        if session.isReady || session.awaitingMetadata {
            announcer?.tick(now: now, request: announceRequest) { peers in
                self.session.addPeers(peers)
            }
        }
        onEvent(.progress(progress))
        if now - lastResumeSave >= .seconds(30) { _ = saveResume() }
    }

    /// Flushes written data, then records the verified pieces (never the other way round).
    @discardableResult
    func saveResume() -> EventLoopFuture<Void> {
        guard let storage, let picker = session.picker, session.isReady, !savingResume else {
            return loop.makeSucceededVoidFuture()
        }
        savingResume = true
        lastResumeSave = now
        let have = picker.have
        let path = resumePath
        let infoHash = session.infoHash
        return storage.flush(on: loop).flatMap {
            self.pool.runIfActive(eventLoop: self.loop) {
                try PieceStorage.makeDirectories(path.removingLastComponent())
                let state = ResumeState(infoHash: infoHash, pieces: have, files: storage.stamps())
                try SmallFile.writeAtomically(state.encoded(), to: path)
            }
        }.always { _ in self.savingResume = false }
    }

    var progress: TorrentProgress {
        let picker = session.picker
        var done: Int64 = 0
        var wanted: Int64 = 0
        if let picker {
            for piece in 0..<picker.pieceCount where picker.priority[piece] > 0 {
                let size = Int64(picker.pieceSize(piece))
                wanted += size
                if picker.have[piece] { done += size }
            }
        }
        return TorrentProgress(
            name: session.info?.name,
            state: !session.isReady
                ? (session.info == nil ? .fetchingMetadata : .checking)
                : (session.isComplete ? .seeding : .downloading),
            bytesDone: done, bytesWanted: wanted, downloadRate: session.downloadRate,
            uploadRate: session.uploadRate,
            peers: session.connectedPeers, piecesDone: picker?.have.setCount ?? 0,
            pieceCount: picker?.pieceCount ?? 0,
            downloaded: session.downloaded, uploaded: session.uploaded, wasted: session.wasted)
    }
}

/// A peer's requested blocks: waiting to be read from disk, and reads under way.
struct UploadQueue {
    var waiting = Deque<BlockRequest>()
    var inFlight = 0
}

/// Reads of up to 256 KiB per syscall when a peer streams blocks.
let peerReceiveAllocator = AdaptiveRecvByteBufferAllocator(minimum: 1_024, initial: 16_384, maximum: 262_144)

/// Hands each incoming connection to the torrent named in its handshake (admission and limits
/// are PeerNet's ``TCPListener``'s).
final class PeerListener: Sendable {
    private let drivers = Mutex<[InfoHash: SessionDriver]>([:])

    /// Serves `driver`'s torrent under each of its info-hashes (a hybrid torrent has two).
    func add(_ driver: SessionDriver, infoHashes: [InfoHash]) {
        drivers.withLock { drivers in
            for infoHash in infoHashes { drivers[infoHash] = driver }
        }
    }

    func remove(_ infoHashes: [InfoHash]) {
        drivers.withLock { drivers in
            for infoHash in infoHashes { drivers[infoHash] = nil }
        }
    }
    func driver(for infoHash: InfoHash) -> SessionDriver? { drivers.withLock { $0[infoHash] } }
    /// Every info-hash served (an MSE responder finds the torrent among them).
    func infoHashes() -> [InfoHash] { drivers.withLock { Array($0.keys) } }
}

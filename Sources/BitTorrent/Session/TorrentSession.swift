import Bencode
import NIOCore
import PeerNet

/// The state machine of one torrent in a swarm (BEP 3, 6, 9, 10, 11): which peers to talk to,
/// what to request from whom, whom to unchoke, what to serve, which pieces passed, whom to ban.
///
/// It composes the parts, each a state machine of its own: a ``PeerConnection`` per peer (the
/// handshake and each message's rules), ``MetadataExchange`` (BEP 9), ``PeerExchange`` (BEP 11),
/// the ``Choker``, the ``BanList`` and the ``KnownPeers`` to dial; what spans peers (the piece
/// picker, endgame, completion) is here. No sockets, clock or randomness inside: the driver
/// feeds it events with the time elapsed since an origin of its choosing (``Moment``) and
/// performs the ``SessionAction``s it returns. A peer that breaks a rule gets a `close` for its
/// connection alone.
public struct TorrentSession: Sendable {
    /// The info-hash of the swarm: v1 (SHA-1) for v1 and hybrid torrents, the truncated
    /// SHA-256 for v2-only ones (BEP 52).
    public let infoHash: InfoHash
    /// A hybrid torrent's other info-hash (the truncated SHA-256): connections naming it are
    /// accepted too, and it is announced beside the first (BEP 52).
    public let alternateInfoHash: InfoHash?
    /// Whether the torrent has a v2 view (BEP 52), as far as is known: the handshake's v2 bit
    /// is set only then (libtorrent drops a connection whose handshake sets it for a v1 torrent).
    public let hasV2: Bool
    public let peerID: [UInt8]
    public var configuration: SessionConfiguration
    public private(set) var info: InfoDictionary?
    public private(set) var picker: PiecePicker?
    /// The v2 hashes (BEP 52), for torrents with a v2 view.
    public private(set) var merkle: MerklePieces?
    /// Piece layers still to fetch from peers (a v2 magnet link, or a torrent without them).
    private var layerFetch: LayerFetcher?
    /// Our leaf requests for failed v2 pieces, to find the bad block: request → piece.
    private var blame: [HashRequest: Int] = [:]
    /// Whether `.metadataReceived` was given (or not needed: the driver opened storage itself).
    private var metadataReported = false
    /// Whether storage has said what is on disk (``storageReady(have:now:)``).
    public private(set) var isReady = false
    var peers: [PeerKey: PeerConnection] = [:]
    private var known = KnownPeers()
    private var bans = BanList()
    private var metadata: MetadataExchange
    private var pex = PeerExchange()
    private var choker = Choker()

    /// What a ban or strike is recorded under (see ``BanList/key(_:)``).
    static func banKey(_ address: Endpoint) -> Endpoint { BanList.key(address) }
    /// Most `have`s kept per peer before the metadata says how many pieces there are.
    static let maxPendingHaves = PeerConnection.maxPendingHaves
    private var rng: SplitMix64
    private var lastTick: Moment?
    private var announcedComplete = false
    public private(set) var downloaded: Int64 = 0
    public private(set) var uploaded: Int64 = 0
    /// Bytes received that were not needed or failed their hash.
    public private(set) var wasted: Int64 = 0

    /// Our BEP 10 message IDs.
    static let metadataID: UInt8 = 1
    static let pexID: UInt8 = 2

    /// A session for a torrent whose metadata is known. Call ``storageReady(have:now:)`` with
    /// what is on disk before connecting peers.
    /// `pieceLayers` are a v2 torrent's (BEP 52; those missing are fetched from peers).
    public init(
        info: InfoDictionary, pieceLayers: [[UInt8]: [UInt8]] = [:], peerID: [UInt8],
        configuration: SessionConfiguration = .init(), seed: UInt64
    ) {
        let bytes = info.encoded()
        self.init(
            infoHash: Metainfo.wireHash(bytes, version: info.version),
            alternateInfoHash: info.version == .hybrid ? InfoHashV2(hashing: bytes).truncated : nil,
            hasV2: info.version.hasV2, peerID: peerID, configuration: configuration, seed: seed)
        metadata = MetadataExchange(infoHash: infoHash, infoBytes: bytes)
        setInfo(info, pieceLayers: pieceLayers)
        metadataReported = !needsHashes
    }

    /// A session for a torrent known only by its info-hash (a magnet link): the metadata is
    /// fetched from peers with BEP 9. `hasV2`: the magnet link names a v2 hash (`btmh`).
    public init(
        infoHash: InfoHash, alternateInfoHash: InfoHash? = nil, hasV2: Bool = false, peerID: [UInt8],
        configuration: SessionConfiguration = .init(), seed: UInt64
    ) {
        self.infoHash = infoHash
        self.alternateInfoHash = alternateInfoHash
        self.hasV2 = hasV2
        self.peerID = peerID
        self.configuration = configuration
        metadata = MetadataExchange(infoHash: infoHash)
        rng = SplitMix64(seed: seed)
    }

    private mutating func setInfo(_ info: InfoDictionary, pieceLayers: [[UInt8]: [UInt8]]) {
        self.info = info
        if info.version.hasV2 {
            let merkle = MerklePieces(info: info, pieceLayers: pieceLayers)
            self.merkle = merkle
            if !merkle.isComplete { layerFetch = LayerFetcher(merkle: merkle) }
        }
        var picker = PiecePicker(
            pieceCount: info.pieceCount, pieceLength: info.pieceLength, totalLength: info.totalLength)
        picker.sequential = configuration.sequential
        self.picker = picker
        if info.isPrivate { configuration.enablePEX = false }
    }

    // MARK: Queries

    public var isComplete: Bool { picker?.isComplete ?? false }
    public var connectedPeers: Int { peers.count }
    public var bytesLeft: Int64 { picker?.bytesLeft ?? Int64.max }
    public var downloadRate: Double { peers.values.reduce(0) { $0 + $1.download.rate } }
    public var uploadRate: Double { peers.values.reduce(0) { $0 + $1.upload.rate } }
    public var knownPeerCount: Int { known.count }
    /// The info-hashes connections may name.
    public var infoHashes: [InfoHash] { [infoHash] + (alternateInfoHash.map { [$0] } ?? []) }
    /// A v2-only torrent whose piece layers are still being fetched: its pieces cannot be
    /// checked, so storage waits (`.metadataReceived` comes once they are here).
    public var needsHashes: Bool { info?.version == .v2 && merkle?.isComplete == false }
    /// The metadata (and for v2, the piece layers) is still being fetched from peers.
    public var awaitingMetadata: Bool { info == nil || needsHashes }
    public func isBanned(_ address: Endpoint) -> Bool { bans.isBanned(address) }
    /// Whether a connection (or web seed) with this key is in the session.
    public func hasPeer(_ key: PeerKey) -> Bool { peers[key] != nil }
    /// Addresses of the connected peers.
    public var peerAddresses: [Endpoint] { peers.keys.sorted().compactMap { peers[$0]?.address } }

    // MARK: Setup

    /// Storage is open and holds the pieces in `have`. Returns the messages that tell peers.
    public mutating func storageReady(have: Bitfield, now: Moment) -> [SessionAction] {
        guard let count = picker?.pieceCount, have.count == count else { return [] }
        picker?.setHave(have)
        isReady = true
        var actions: [SessionAction] = []
        for key in peers.keys.sorted() {
            // Peers that connected before the metadata arrived: check what they claimed.
            do {
                if let bitfield = try peers[key]?.resolvePendingAvailability(pieceCount: count) {
                    picker?.peerHas(bitfield)
                }
            } catch {
                actions += close(key, error)
                continue
            }
            for piece in have.setIndices { actions.append(send(key, .have(piece: piece), now)) }
            actions += updateInterest(key, now)
            actions += fillRequests(key, now)
        }
        actions += checkCompletion()
        return actions
    }

    /// Sets per-file priorities (0 = skip); a piece shared by files takes the highest.
    public mutating func setFilePriorities(_ priorities: [UInt8], now: Moment) -> [SessionAction] {
        guard let info, let pieceCount = picker?.pieceCount, priorities.count == info.files.count else {
            return []
        }
        let layout = FileLayout(info: info)
        var pieces = [UInt8](repeating: 0, count: pieceCount)
        for (index, file) in info.files.enumerated() where !file.isPadding {
            for piece in layout.pieces(overlappingFile: index) {
                pieces[piece] = max(pieces[piece], priorities[index])
            }
        }
        picker?.setPriorities(pieces)
        var actions: [SessionAction] = []
        for key in peers.keys.sorted() { actions += updateInterest(key, now) }
        return actions + checkCompletion()
    }

    /// Remembers peers to connect to (from trackers, PEX, the command line).
    public mutating func addPeers(_ addresses: [Endpoint]) {
        let bans = self.bans
        known.add(addresses, limit: configuration.maxKnownPeers) { bans.isBanned($0) }
    }

    // MARK: Connections

    /// A connection completed the BEP 3 handshake. Returns what to send first (extension
    /// handshake, bitfield), or a close.
    public mutating func peerConnected(
        _ key: PeerKey, address: Endpoint, outgoing: Bool, handshake: Handshake, now: Moment
    ) -> [SessionAction] {
        var peer = PeerConnection(key: key, address: address, outgoing: outgoing, now: now)
        switch peer.handshakeReceived(handshake, infoHashes: infoHashes, ourPeerID: peerID) {
        case .accepted:
            break
        case .refused(let reason):
            return [.close(key, reason: reason, ban: false)]
        case .ourselves:
            if outgoing { known.forget(address) }
            bans.refuseEndpoint(address)  // this endpoint only
            return [.close(key, reason: PeerWireError.connectedToSelf.description, ban: true)]
        }
        if bans.refuses(address, peerID: handshake.peerID) {
            return [.close(key, reason: "banned", ban: true)]
        }
        guard peers.count < configuration.maxPeers else {
            return [.close(key, reason: "too many peers", ban: false)]
        }
        if outgoing { known.connected(address) }
        peers[key] = peer
        // The first PEX list goes out a few seconds after the handshake, then one a minute.
        pex.peerJoined(
            key, now: now, interval: configuration.pexInterval, firstDelay: configuration.firstPEXDelay)
        var actions: [SessionAction] = []
        if peer.extensionProtocol {
            var ids: [String: UInt8] = ["ut_metadata": Self.metadataID]
            if configuration.enablePEX { ids["ut_pex"] = Self.pexID }
            let handshake = ExtensionHandshake(
                messageIDs: ids, client: configuration.clientName, listenPort: configuration.listenPort,
                yourIP: address.ip.bytes, requestQueueLength: 500, metadataSize: metadata.infoBytes?.count)
            actions.append(send(key, .extended(id: 0, payload: handshake.encoded()), now))
        }
        if isReady, let picker {
            if peer.fast && picker.have.isComplete {
                actions.append(send(key, .haveAll, now))
            } else if peer.fast && picker.have.isEmpty {
                actions.append(send(key, .haveNone, now))
            } else if !picker.have.isEmpty {
                actions.append(send(key, .bitfield(picker.have.bytes), now))
            }
        } else if peer.fast {
            actions.append(send(key, .haveNone, now))
        }
        if let dhtPort = configuration.dhtPort, handshake.reserved.dht {
            actions.append(send(key, .port(dhtPort), now))
        }
        return actions + requestLayers(key, now)
    }

    /// Requests kept in flight to a web seed, so its HTTP range requests are long enough.
    static let webSeedRequests = 64

    /// The address a web seed (BEP 19) is known by in bans and logs: `100::n` (RFC 6666's
    /// discard prefix, never dialled), one per `url-list` entry.
    public static func webSeedAddress(_ index: Int) -> Endpoint {
        Endpoint(ip: IPAddress(v6High: 0x0100_0000_0000_0000, low: UInt64(index)), port: 0)
    }

    /// A web seed (BEP 19) is ready to serve: it is asked for blocks like a peer that has every
    /// piece (the driver fetches them over HTTP and hands them to ``receivedBlock``); a ban for
    /// bad data closes it as it would a peer.
    public mutating func webSeedConnected(_ key: PeerKey, address: Endpoint, now: Moment) -> [SessionAction] {
        guard isReady, let count = picker?.pieceCount, picker?.isComplete == false, peers[key] == nil,
            !bans.isBanned(address)
        else { return [] }
        let peer = PeerConnection.webSeed(key: key, address: address, pieceCount: count, now: now)
        peers[key] = peer
        if let has = peer.has { picker?.peerHas(has) }
        return updateInterest(key, now) + fillRequests(key, now)
    }

    /// An outgoing connection could not be made; retried later with back-off.
    public mutating func connectFailed(_ address: Endpoint, now: Moment) {
        known.dialFailed(address, now: now)
    }

    /// A connection ended (closed by either side).
    public mutating func peerDisconnected(_ key: PeerKey, now: Moment) -> [SessionAction] {
        guard let peer = peers.removeValue(forKey: key) else { return [] }
        for request in peer.outstanding.keys { picker?.release(request) }
        if let has = peer.has { picker?.peerLeft(has) }
        if peer.outgoing { known.disconnected(peer.address, now: now) }
        pex.peerLeft(key)
        layerFetch?.peerLeft(key)
        for request in peer.hashRequests.keys { blame[request] = nil }
        let askAgain = metadata.peerLeft(key)
        var actions: [SessionAction] = []
        if !peer.outstanding.isEmpty {
            for other in peers.keys.sorted() { actions += fillRequests(other, now) }
        }
        if info == nil, askAgain {
            for other in peers.keys.sorted() { actions += requestMetadata(other, now) }
        }
        if peer.optimistic || !peer.amChoking { actions += runChoker(now: now, rotateOptimistic: false) }
        return actions
    }

    // MARK: Messages

    /// A block arrived (BEP 3 `piece`), its data as read from the socket: the driver's fast
    /// path, so the bytes go from the socket buffer to the piece buffer with one copy.
    public mutating func receivedBlock(
        piece: Int, offset: Int, data: ByteBuffer, from key: PeerKey, now: Moment
    ) -> [SessionAction] {
        guard peers[key] != nil else { return [] }
        let request = BlockRequest(piece: piece, offset: offset, length: data.readableBytes)
        do {
            try peers[key]?.blockArrived(request, now: now)
        } catch {
            return close(key, error)
        }
        return blockArrived(request, data, key, now)
    }

    /// A message arrived from a peer.
    public mutating func received(_ message: PeerMessage, from key: PeerKey, now: Moment) -> [SessionAction] {
        guard peers[key] != nil else { return [] }
        do {
            return try handle(message, from: key, now: now)
        } catch {
            return close(key, error)
        }
    }

    private mutating func handle(_ message: PeerMessage, from key: PeerKey, now: Moment) throws(PeerWireError)
        -> [SessionAction]
    {
        // Mutated in place: a copy of the peer would make every change copy its dictionaries.
        guard
            let event = try peers[key]?.received(
                message, picker: picker, ready: isReady, configuration: configuration, now: now)
        else { return [] }
        switch event {
        case .none:
            return []
        case .dhtNode(let address):
            return [.dhtNode(address)]
        case .released(let requests):
            for request in requests { picker?.release(request) }
            return []
        case .canRequest:
            return fillRequests(key, now)
        case .interested:
            return quickUnchoke(key, now)
        case .gained(let piece):
            picker?.peerHas(piece: piece)
            return afterAvailabilityChange(key, now)
        case .replaced(let old, let new):
            if let old { picker?.peerLeft(old) }
            picker?.peerHas(new)
            return afterAvailabilityChange(key, now)
        case .availabilityChanged:
            return afterAvailabilityChange(key, now)
        case .serve(let request):
            return [.read(request, for: key)]
        case .reply(let answer):
            return [send(key, answer, now)]
        case .block(let request):
            guard case .piece(_, _, let data) = message else { return [] }
            return blockArrived(request, ByteBuffer(bytes: data), key, now)
        case .extensionHandshake(let handshake):
            if metadata.peerAnnounced(key, size: handshake.metadataSize) {
                var actions: [SessionAction] = []
                for other in peers.keys.sorted() { actions += requestMetadata(other, now) }
                return actions
            }
            return requestMetadata(key, now)
        case .hashRequested(let request):
            return hashRequested(request, key, now)
        case .hashesReceived(let request, let hashes):
            return hashesReceived(request, hashes, key, now)
        case .hashesRejected(let request):
            if blame.removeValue(forKey: request) == nil { layerFetch?.failed(request, by: key) }
            return []
        case .extensionMessage(let id, let payload):
            switch id {
            case Self.metadataID:
                return try metadataMessage(try MetadataMessage(decoding: payload), key, now)
            case Self.pexID:
                guard configuration.enablePEX else { return [] }
                let message = try PEXMessage(decoding: payload)
                addPeers(message.added)
                return [.learnedPeers(from: key, count: message.added.count)]
            default:
                return []
            }
        }
    }

    private mutating func afterAvailabilityChange(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        guard let has = peers[key]?.has, let picker else { return [] }
        if picker.have.isComplete && has.isComplete {
            return close(key, reason: "both sides are seeds")
        }
        return updateInterest(key, now) + fillRequests(key, now)
    }

    /// A block we asked for, past its peer's rules: stored, or counted as waste.
    private mutating func blockArrived(
        _ request: BlockRequest, _ data: ByteBuffer, _ key: PeerKey, _ now: Moment
    ) -> [SessionAction] {
        guard let address = peers[key]?.address else { return [] }
        guard picker?.received(request) == true else {
            wasted += Int64(data.readableBytes)
            return fillRequests(key, now)
        }
        downloaded += Int64(data.readableBytes)
        bans.blockReceived(request, from: address)
        var actions: [SessionAction] = [.write(request, data: data)]
        // Endgame: others asked for the same block; cancel it there.
        for other in peers.keys.sorted() where other != key {
            if peers[other]?.outstanding.removeValue(forKey: request) != nil {
                peers[other]?.cancelled.insert(request)
                actions.append(send(other, .cancel(request), now))
            }
        }
        return actions + fillRequests(key, now)
    }

    // MARK: Metadata (BEP 9)

    private mutating func requestMetadata(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        guard info == nil, let remoteID = peers[key]?.extensions["ut_metadata"] else { return [] }
        var actions: [SessionAction] = []
        for piece in metadata.requests(for: key, now: now) {
            let request = MetadataMessage.request(piece: piece).encoded()
            actions.append(send(key, .extended(id: remoteID, payload: request), now))
        }
        return actions
    }

    private mutating func metadataMessage(_ message: MetadataMessage, _ key: PeerKey, _ now: Moment)
        throws(PeerWireError) -> [SessionAction]
    {
        switch message {
        case .request(let piece):
            guard let remoteID = peers[key]?.extensions["ut_metadata"] else { return [] }
            return [send(key, .extended(id: remoteID, payload: metadata.reply(to: piece).encoded()), now)]
        case .reject(let piece):
            metadata.rejected(piece, by: key)
            return []
        case .data(let piece, let totalSize, let bytes):
            switch try metadata.received(piece: piece, totalSize: totalSize, bytes: bytes, from: key) {
            case .pending:
                return []
            case .completed(let parsed, _):
                setInfo(parsed, pieceLayers: [:])
                guard needsHashes else {
                    metadataReported = true
                    return [.metadataReceived(parsed)]
                }
                var actions: [SessionAction] = []
                for other in peers.keys.sorted() { actions += requestLayers(other, now) }
                return actions
            case .failed(let culprit):
                var actions: [SessionAction] = []
                if let culprit {
                    actions += close(
                        culprit, reason: "sent metadata that does not match the info-hash", ban: false)
                }
                for other in peers.keys.sorted() { actions += requestMetadata(other, now) }
                return actions
            }
        }
    }

    // MARK: Hashes (BEP 52)

    /// Most hash requests a peer gets answered per second; more are refused.
    static let hashAnswersPerSecond = 50
    /// Most leaf requests of one peer read from disk at a time (each reads a piece).
    static let leafReadsPerPeer = 2

    private mutating func hashRequested(_ request: HashRequest, _ key: PeerKey, _ now: Moment)
        -> [SessionAction]
    {
        guard let merkle, let peer = peers[key], peer.hashAnswersThisSecond < Self.hashAnswersPerSecond,
            merkle.accepts(request)
        else { return [send(key, .hashReject(request), now)] }
        peers[key]?.hashAnswersThisSecond += 1
        if let piece = merkle.leafPiece(for: request) {
            // Leaves come from the piece's data: only for a piece we have.
            guard isReady, picker?.have[piece] == true, peer.leafReads < Self.leafReadsPerPeer else {
                return [send(key, .hashReject(request), now)]
            }
            peers[key]?.leafReads += 1
            return [.readLeaves(piece: piece, request: request, for: key)]
        }
        guard let hashes = merkle.answer(request) else { return [send(key, .hashReject(request), now)] }
        return [send(key, .hashes(request, hashes: hashes), now)]
    }

    /// The leaves of a piece (a `.readLeaves` action) were read: answer the request they are for.
    /// `leaves` is nil when the read failed.
    public mutating func leavesRead(_ request: HashRequest, leaves: [[UInt8]]?, for key: PeerKey, now: Moment)
        -> [SessionAction]
    {
        guard let peer = peers[key] else { return [] }
        peers[key]?.leafReads = max(0, peer.leafReads - 1)
        guard let leaves, let hashes = merkle?.answer(request, leaves: leaves) else {
            return [send(key, .hashReject(request), now)]
        }
        return [send(key, .hashes(request, hashes: hashes), now)]
    }

    /// Whether hash requests may go to this peer: a connection of a v2-only torrent, one named
    /// by a hybrid's v2 hash, or a peer that set the v2 bit (libtorrent sets it only where a
    /// hybrid connection could be upgraded).
    private func speaksV2(_ peer: PeerConnection) -> Bool {
        peer.supportsV2 || info?.version == .v2
            || (alternateInfoHash != nil && peer.handshakeInfoHash == alternateInfoHash)
    }

    /// Asks a v2 peer for piece layers still missing.
    private mutating func requestLayers(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        guard layerFetch != nil, info != nil, let peer = peers[key], speaksV2(peer) else { return [] }
        guard let requests = layerFetch?.requests(for: key), !requests.isEmpty else { return [] }
        var actions: [SessionAction] = []
        for request in requests {
            peers[key]?.hashRequests[request] = now
            actions.append(send(key, .hashRequest(request), now))
        }
        return actions
    }

    /// A v2 piece failed with blocks from several peers: its leaves, proved by the piece's node,
    /// say which block was bad (BEP 52), so its sender alone is banned.
    private mutating func askForLeaves(_ piece: Int, _ now: Moment) -> [SessionAction] {
        guard let request = merkle?.leafRequest(piece: piece), !blame.values.contains(piece),
            let key = peers.keys.sorted().first(where: { key in
                guard let peer = peers[key] else { return false }
                return speaksV2(peer) && peer.has?[piece] == true
                    && peer.hashRequests.count < LayerFetcher.perPeer * 2
            })
        else { return [] }
        blame[request] = piece
        peers[key]?.hashRequests[request] = now
        return [send(key, .hashRequest(request), now)]
    }

    private mutating func hashesReceived(
        _ request: HashRequest, _ hashes: [[UInt8]], _ key: PeerKey, _ now: Moment
    ) -> [SessionAction] {
        guard let merkle else { return [] }
        let base = merkle.verify(request, hashes: hashes)
        if let piece = blame.removeValue(forKey: request) {
            guard let base else { return close(key, reason: "sent leaf hashes that do not match the piece") }
            var actions: [SessionAction] = []
            for (culprit, reason) in bans.blocksProven(piece, leaves: base) {
                actions += ban(culprit, reason: reason, now: now)
            }
            return actions
        }
        guard let base else {
            layerFetch?.failed(request, by: key)
            return close(key, reason: "sent piece hashes whose proof does not lead to the file's root")
        }
        guard let fetched = layerFetch?.received(request, base: base, merkle: merkle) else {
            return requestLayers(key, now)
        }
        if !(self.merkle?.setLayer(fetched.layer, forFile: fetched.file) ?? false) {
            layerFetch?.restart(file: fetched.file, merkle: merkle)
            return requestLayers(key, now)
        }
        guard self.merkle?.isComplete == true else { return requestLayers(key, now) }
        layerFetch = nil
        guard !metadataReported, let info else { return [] }
        metadataReported = true
        return [.metadataReceived(info)]
    }

    // MARK: Storage events

    /// A block from a `.write` action is on disk.
    public mutating func blockWritten(_ request: BlockRequest) -> [SessionAction] {
        guard picker?.written(request) == true else { return [] }
        return [.verify(piece: request.piece, blockDigests: bans.wantsBlockDigests(request.piece))]
    }

    /// A piece's hash check finished. `blockDigests` (SHA-1 of each block) is given on failure
    /// and when the `.verify` action asked for it.
    public mutating func pieceVerified(_ piece: Int, passed: Bool, blockDigests: [[UInt8]]?, now: Moment)
        -> [SessionAction]
    {
        guard picker != nil else { return [] }
        picker?.verified(piece, passed: passed)
        let pieceSize = picker?.pieceSize(piece) ?? 0
        var actions: [SessionAction] = []
        if passed {
            actions.append(.pieceCompleted(piece))
            for (culprit, reason) in bans.piecePassed(piece, blockDigests: blockDigests) {
                actions += ban(culprit, reason: reason, now: now)
            }
            for key in peers.keys.sorted() {
                actions.append(send(key, .have(piece: piece), now))
                actions += updateInterest(key, now)
            }
            actions += checkCompletion()
        } else {
            wasted += Int64(pieceSize)
            downloaded -= Int64(pieceSize)
            let culprits = bans.pieceFailed(
                piece, blockDigests: blockDigests, maxStrikes: configuration.maxStrikes)
            for (culprit, reason) in culprits { actions += ban(culprit, reason: reason, now: now) }
            actions += askForLeaves(piece, now)
        }
        for key in peers.keys.sorted() { actions += fillRequests(key, now) }
        return actions
    }

    /// Whether a block the peer asked for is still to be sent (not cancelled, the peer not
    /// choked since): the driver asks before reading it from disk.
    public func stillWanted(_ request: BlockRequest, by key: PeerKey) -> Bool {
        guard let peer = peers[key] else { return false }
        return !peer.amChoking && peer.incoming.contains(request)
    }

    /// A block from a `.read` action is ready to send.
    public mutating func blockRead(_ request: BlockRequest, for key: PeerKey, data: [UInt8], now: Moment)
        -> [SessionAction]
    {
        guard let amChoking = peers[key]?.amChoking, !amChoking, peers[key]?.incoming.remove(request) != nil
        else { return [] }
        peers[key]?.upload.add(data.count)
        uploaded += Int64(data.count)
        return [send(key, .piece(piece: request.piece, offset: request.offset, data: data), now)]
    }

    // MARK: Time

    /// Called about once a second: rates, timeouts, keep-alives, choking, PEX and new connections.
    public mutating func tick(now: Moment) -> [SessionAction] {
        let elapsed = lastTick.map { now - $0 } ?? .seconds(1)
        lastTick = now
        var actions: [SessionAction] = []
        for key in peers.keys.sorted() {
            peers[key]?.download.tick(elapsed: elapsed)
            peers[key]?.upload.tick(elapsed: elapsed)
            peers[key]?.hashAnswersThisSecond = 0
            guard let peer = peers[key] else { continue }
            if peer.isWebSeed {
                // No keep-alives or idle limit over HTTP; a request that takes too long is retried.
                for (request, sent) in peer.outstanding where now - sent > configuration.requestTimeout {
                    peers[key]?.outstanding[request] = nil
                    peers[key]?.cancelled.insert(request)
                    picker?.release(request)
                }
                continue
            }
            for (request, sent) in peer.hashRequests where now - sent > configuration.requestTimeout {
                peers[key]?.hashRequests[request] = nil
                if blame.removeValue(forKey: request) == nil { layerFetch?.failed(request, by: key) }
            }
            if now - peer.lastReceived > configuration.idleTimeout {
                actions += close(key, .timedOut("no message for \(configuration.idleTimeout)"))
                continue
            }
            let expired = peer.outstanding.filter { now - $0.value > configuration.requestTimeout }
            for request in expired.keys {
                peers[key]?.outstanding[request] = nil
                peers[key]?.cancelled.insert(request)
                picker?.release(request)
                actions.append(send(key, .cancel(request), now))
            }
            let stalled =
                !peer.outstanding.isEmpty && now - peer.lastReceived > configuration.stallProbeInterval
                && now - peer.lastSent > configuration.stallProbeInterval
            if stalled || now - peer.lastSent > configuration.keepAliveInterval {
                actions.append(send(key, .keepAlive, now))
            }
            if configuration.enablePEX, peer.extensions["ut_pex"] != nil,
                pex.isDue(key, now: now, interval: configuration.pexInterval)
            {
                actions += sendPEX(key, now)
            }
            if info == nil { actions += requestMetadata(key, now) }
            actions += requestLayers(key, now)
        }
        let round = choker.roundDue(
            now: now, interval: configuration.chokeInterval,
            optimisticInterval: configuration.optimisticInterval)
        if round.due { actions += runChoker(now: now, rotateOptimistic: round.rotate) }
        for key in peers.keys.sorted() { actions += fillRequests(key, now) }
        actions += connectMore(now)
        return actions
    }

    private mutating func connectMore(_ now: Moment) -> [SessionAction] {
        guard peers.count < configuration.maxPeers, isReady || awaitingMetadata else { return [] }
        let pending = known.busyCount
        let budget = min(
            configuration.connectsPerTick,
            configuration.maxPeers - peers.count - max(0, pending - peers.count))
        let connected = Set(peers.values.map(\.address))
        let bans = self.bans
        return known.dial(budget: budget, now: now) { connected.contains($0) || !bans.mayDial($0) }
            .map { .connect($0) }
    }

    // MARK: Choking

    private mutating func runChoker(now: Moment, rotateOptimistic: Bool) -> [SessionAction] {
        let seeding = picker?.isComplete ?? false
        let candidates = peers.keys.sorted().compactMap { key -> Choker.Candidate? in
            guard let peer = peers[key] else { return nil }
            return Choker.Candidate(
                key: key, interested: peer.peerInterested,
                snubbed: peer.isSnubbed(now: now, snubTime: configuration.snubTime),
                rate: seeding ? peer.upload.rate : peer.download.rate, lastUnchoked: peer.lastUnchoked,
                optimistic: peer.optimistic)
        }
        let decision = choker.decide(
            candidates, slots: configuration.unchokeSlots, rotate: rotateOptimistic, using: &rng)
        var actions: [SessionAction] = []
        for key in peers.keys.sorted() {
            peers[key]?.optimistic = key == decision.optimistic
            guard let amChoking = peers[key]?.amChoking else { continue }
            let shouldChoke = !decision.unchoke.contains(key)
            if shouldChoke != amChoking { actions += setChoking(key, shouldChoke, now) }
        }
        return actions
    }

    /// A newly interested peer is unchoked at once when a slot is free, not at the next round.
    private mutating func quickUnchoke(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        let unchoked = peers.values.filter { !$0.amChoking }.count
        guard let peer = peers[key], peer.amChoking,
            choker.unchokesAtOnce(unchokedNow: unchoked, slots: configuration.unchokeSlots)
        else { return [] }
        return setChoking(key, false, now)
    }

    private mutating func setChoking(_ key: PeerKey, _ choke: Bool, _ now: Moment) -> [SessionAction] {
        guard let messages = peers[key]?.setChoking(choke, now: now) else { return [] }
        var actions: [SessionAction] = []
        for message in messages { actions.append(send(key, message, now)) }
        return actions
    }

    // MARK: Requests and interest

    private mutating func updateInterest(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        guard let peer = peers[key], let picker, isReady else { return [] }
        let wants = peer.has.map { picker.wantsAnything(from: $0) } ?? false
        guard wants != peer.amInterested else { return [] }
        peers[key]?.amInterested = wants
        return [send(key, wants ? .interested : .notInterested, now)]
    }

    /// Tops up a peer's request pipeline to about `requestQueueTime` of data at its rate.
    private mutating func fillRequests(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        guard isReady, picker != nil else { return [] }
        // The peer's fields are read in this closure, so no copy of it is alive when its
        // requests are recorded below (that would copy its dictionaries).
        let blocks: [BlockRequest] = {
            guard let peer = peers[key], let available = peer.requestable else { return [] }
            let seconds = Double(configuration.requestQueueTime.components.seconds)
            let byRate = Int(peer.download.rate * seconds) / BlockRequest.standardLength
            var target = max(configuration.minRequestsPerPeer, min(byRate, configuration.maxRequestsPerPeer))
            target = min(target, peer.requestQueueLimit)
            if peer.isWebSeed { target = max(target, Self.webSeedRequests) }
            if peer.isSnubbed(now: now, snubTime: configuration.snubTime) { target = 1 }
            let need = target - peer.outstanding.count
            guard need > 0 else { return [] }
            let outstanding = peer.outstanding
            return picker?.pick(
                count: need, from: available, excluding: { outstanding[$0] != nil }, using: &rng) ?? []
        }()
        guard !blocks.isEmpty else { return [] }
        var actions: [SessionAction] = []
        for block in blocks {
            peers[key]?.outstanding[block] = now
            actions.append(.send(key, .request(block)))
        }
        peers[key]?.lastSent = now
        return actions
    }

    // MARK: Peer exchange (BEP 11)

    private mutating func sendPEX(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        guard let remoteID = peers[key]?.extensions["ut_pex"] else { return [] }
        let current = Set(peers.values.filter { $0.key != key && !$0.isWebSeed }.compactMap(\.listenAddress))
        guard let message = pex.message(for: key, current: current, now: now) else { return [] }
        return [send(key, .extended(id: remoteID, payload: message.encoded()), now)]
    }

    // MARK: Helpers

    private mutating func checkCompletion() -> [SessionAction] {
        guard isReady, let picker, picker.isComplete, !announcedComplete else { return [] }
        announcedComplete = true
        var actions: [SessionAction] = [.downloadCompleted]
        for key in peers.keys.sorted() {
            if peers[key]?.amInterested == true {
                peers[key]?.amInterested = false
                actions.append(.send(key, .notInterested))
            }
            if picker.have.isComplete, let has = peers[key]?.has, has.isComplete {
                actions += close(key, reason: "both sides are seeds")
            }
        }
        return actions
    }

    private mutating func send(_ key: PeerKey, _ message: PeerMessage, _ now: Moment) -> SessionAction {
        peers[key]?.lastSent = now
        return .send(key, message)
    }

    private mutating func close(_ key: PeerKey, _ error: PeerWireError) -> [SessionAction] {
        close(key, reason: error.description)
    }

    /// Closes a connection at once: its state goes now, so nothing more is done for it.
    private mutating func close(_ key: PeerKey, reason: String, ban: Bool = false) -> [SessionAction] {
        guard peers[key] != nil else { return [] }
        // Forget it here; the driver's later `peerDisconnected` finds nothing to do.
        let actions = peerDisconnected(key, now: lastTick ?? .zero)
        return [.close(key, reason: reason, ban: ban)] + actions
    }

    private mutating func ban(_ address: Endpoint, reason: String, now: Moment) -> [SessionAction] {
        guard bans.ban(address) else { return [] }
        let banned = BanList.key(address)
        known.forget { BanList.key($0) == banned }
        var actions: [SessionAction] = [.banned(address, reason: reason)]
        for key in peers.keys.sorted() where peers[key].map({ BanList.key($0.address) }) == banned {
            if let id = peers[key]?.peerID { bans.banPeerID(id) }
            actions += close(key, reason: "banned: \(reason)", ban: true)
        }
        return actions
    }
}

import Bencode
import Crypto
import NIOCore
import PeerNet

/// The state machine of one torrent in a swarm (BEP 3, 6, 9, 10, 11): which peers to talk to,
/// what to request from whom, whom to unchoke, what to serve, which pieces passed, whom to ban.
///
/// No sockets, clock or randomness inside: the driver feeds it events with the time elapsed
/// since an origin of its choosing (``Moment``) and performs the ``SessionAction``s it returns.
/// Per-peer protocol rules are enforced here too: a peer that breaks them gets a `close` for its
/// connection alone.
public struct TorrentSession: Sendable {
    struct Peer: Sendable {
        let key: PeerKey
        let address: Endpoint
        let outgoing: Bool
        let peerID: [UInt8]
        let fast: Bool
        let extensionProtocol: Bool
        var extensions: [String: UInt8] = [:]
        var listenPort: UInt16?
        var requestQueueLimit = 250
        var metadataSize: Int?
        var has: Bitfield?
        /// Before the metadata is known, what the peer said it has, checked once it is.
        var pendingBitfield: [UInt8]?
        var pendingHaveAll = false
        var pendingHaves: Set<Int> = []
        /// The DHT port this peer named (BEP 5 `port`): passed on once, so a peer repeating the
        /// message cannot make our DHT node ping without end.
        var dhtPort: UInt16?
        var sawMessage = false
        var amChoking = true
        var amInterested = false
        var peerChoking = true
        var peerInterested = false
        var optimistic = false
        /// Our requests to the peer, with when they were sent.
        var outstanding: [BlockRequest: Moment] = [:]
        /// Requests we cancelled; their blocks may still arrive.
        var cancelled: Set<BlockRequest> = []
        /// The peer's requests being read from disk for it.
        var incoming: Set<BlockRequest> = []
        var allowedFast: Set<Int> = []
        var download = RateMeter()
        var upload = RateMeter()
        var connectedAt: Moment
        var lastBlock: Moment
        var lastReceived: Moment
        var lastSent: Moment
        var lastUnchoked: Moment = .zero
        var metadataRequests: Set<Int> = []
        var pexTold: Set<Endpoint> = []
        var lastPEX: Moment

        /// Where this peer accepts connections: the dialled address, or its IP with the port
        /// from its extension handshake.
        var listenAddress: Endpoint? {
            if outgoing { return address }
            return listenPort.map { Endpoint(ip: address.ip, port: $0) }
        }
    }

    struct KnownPeer: Sendable {
        var failures = 0
        var nextAttempt: Moment = .zero
        var connected = false
    }

    struct MetadataAssembly: Sendable {
        var size: Int?
        var pieces: [Int: [UInt8]] = [:]
        var requestedAt: [Int: Moment] = [:]
        /// Who sent each piece: the culprit when only one peer sent them all and they fail.
        var sources: [Int: PeerKey] = [:]

        var pieceCount: Int {
            size.map { ($0 + MetadataMessage.pieceLength - 1) / MetadataMessage.pieceLength } ?? 0
        }
    }

    public let infoHash: InfoHash
    public let peerID: [UInt8]
    public var configuration: SessionConfiguration
    public private(set) var info: InfoDictionary?
    private var infoBytes: [UInt8]?
    public private(set) var picker: PiecePicker?
    /// Whether storage has said what is on disk (``storageReady(have:now:)``).
    public private(set) var isReady = false
    var peers: [PeerKey: Peer] = [:]
    var known: [Endpoint: KnownPeer] = [:]
    /// Banned peers and strikes are kept by IP (a peer cannot escape by changing its port),
    /// except on loopback, where local peers differ only by port: see ``banKey(_:)``.
    private var bannedAddresses: Set<Endpoint> = []
    private var bannedPeerIDs: Set<[UInt8]> = []
    private var strikes: [Endpoint: Int] = [:]

    /// What a ban or strike is recorded under: the IP (port 0), or the whole endpoint on loopback.
    static func banKey(_ address: Endpoint) -> Endpoint {
        address.ip.isLoopback ? address : Endpoint(ip: address.ip, port: 0)
    }
    /// Per piece, which peer sent each block: the suspects if the piece fails.
    private var contributors: [Int: [Int: Endpoint]] = [:]
    /// Per failed piece, each block's digest and sender, to find the culprit once it passes.
    private var failedBlocks: [Int: [Int: [(peer: Endpoint, digest: [UInt8])]]] = [:]
    private var metadata = MetadataAssembly()
    /// Metadata sizes (BEP 9 `metadata_size`) whose assembled dictionary failed the info-hash,
    /// with the count: a size that failed twice is no longer believed.
    private var failedMetadataSizes: [Int: Int] = [:]
    /// Most `have`s kept per peer before the metadata says how many pieces there are.
    static let maxPendingHaves = 4_096
    private var rng: SplitMix64
    private var lastTick: Moment?
    private var lastChoke: Moment?
    private var lastOptimistic: Moment?
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
    public init(
        info: InfoDictionary, peerID: [UInt8], configuration: SessionConfiguration = .init(), seed: UInt64
    ) {
        let bytes = info.encoded()
        self.init(infoHash: Metainfo.hash(bytes), peerID: peerID, configuration: configuration, seed: seed)
        setInfo(info, bytes: bytes)
    }

    /// A session for a torrent known only by its info-hash (a magnet link): the metadata is
    /// fetched from peers with BEP 9.
    public init(
        infoHash: InfoHash, peerID: [UInt8], configuration: SessionConfiguration = .init(), seed: UInt64
    ) {
        self.infoHash = infoHash
        self.peerID = peerID
        self.configuration = configuration
        rng = SplitMix64(seed: seed)
    }

    private mutating func setInfo(_ info: InfoDictionary, bytes: [UInt8]) {
        self.info = info
        infoBytes = bytes
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
    public func isBanned(_ address: Endpoint) -> Bool { bannedAddresses.contains(Self.banKey(address)) }
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
            guard var peer = peers[key] else { continue }
            // Peers that connected before the metadata arrived: check what they claimed.
            if peer.has == nil {
                var bitfield: Bitfield?
                if peer.pendingHaveAll {
                    bitfield = Bitfield(count: have.count, allSet: true)
                } else if let pending = peer.pendingBitfield {
                    bitfield = Bitfield(bytes: pending, count: have.count)
                    if bitfield == nil {
                        actions += close(
                            key, .bitfieldSize(expected: (have.count + 7) / 8, got: pending.count))
                        continue
                    }
                } else {
                    bitfield = Bitfield(count: have.count)
                }
                if var bitfield {
                    for piece in peer.pendingHaves where piece < have.count { bitfield[piece] = true }
                    peer.has = bitfield
                    self.picker?.peerHas(bitfield)
                }
                peers[key] = peer
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
        for address in addresses where known[address] == nil && !isBanned(address) {
            guard known.count < configuration.maxKnownPeers else { return }
            known[address] = KnownPeer()
        }
    }

    // MARK: Connections

    /// A connection completed the BEP 3 handshake. Returns what to send first (extension
    /// handshake, bitfield), or a close.
    public mutating func peerConnected(
        _ key: PeerKey, address: Endpoint, outgoing: Bool, handshake: Handshake, now: Moment
    ) -> [SessionAction] {
        guard handshake.infoHash == infoHash else {
            return [
                .close(key, reason: PeerWireError.wrongInfoHash(handshake.infoHash).description, ban: false)
            ]
        }
        if handshake.peerID == peerID {
            if outgoing { known[address] = nil }
            bannedAddresses.insert(address)  // ourselves: this endpoint only
            return [.close(key, reason: PeerWireError.connectedToSelf.description, ban: true)]
        }
        if isBanned(address) || bannedAddresses.contains(address) || bannedPeerIDs.contains(handshake.peerID)
        {
            return [.close(key, reason: "banned", ban: true)]
        }
        guard peers.count < configuration.maxPeers else {
            return [.close(key, reason: "too many peers", ban: false)]
        }
        if outgoing { known[address, default: KnownPeer()].connected = true }
        let peer = Peer(
            key: key, address: address, outgoing: outgoing, peerID: handshake.peerID,
            fast: handshake.reserved.fastExtension, extensionProtocol: handshake.reserved.extensionProtocol,
            connectedAt: now, lastBlock: now, lastReceived: now, lastSent: now,
            // The first PEX list goes out a few seconds after the handshake, then one a minute.
            lastPEX: now - configuration.pexInterval + configuration.firstPEXDelay)
        peers[key] = peer
        var actions: [SessionAction] = []
        if peer.extensionProtocol {
            var ids: [String: UInt8] = ["ut_metadata": Self.metadataID]
            if configuration.enablePEX { ids["ut_pex"] = Self.pexID }
            let handshake = ExtensionHandshake(
                messageIDs: ids, client: configuration.clientName, listenPort: configuration.listenPort,
                yourIP: address.ip.bytes, requestQueueLength: 500, metadataSize: infoBytes?.count)
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
        return actions
    }

    /// An outgoing connection could not be made; retried later with back-off.
    public mutating func connectFailed(_ address: Endpoint, now: Moment) {
        guard var entry = known[address] else { return }
        entry.connected = false
        entry.failures += 1
        entry.nextAttempt = now + .seconds(min(300, 1 << min(entry.failures, 8)))
        known[address] = entry
    }

    /// A connection ended (closed by either side).
    public mutating func peerDisconnected(_ key: PeerKey, now: Moment) -> [SessionAction] {
        guard let peer = peers.removeValue(forKey: key) else { return [] }
        for request in peer.outstanding.keys { picker?.release(request) }
        if let has = peer.has { picker?.peerLeft(has) }
        if peer.outgoing, var entry = known[peer.address] {
            entry.connected = false
            entry.nextAttempt = now + .seconds(5)
            known[peer.address] = entry
        }
        for request in metadata.requestedAt.keys where peer.metadataRequests.contains(request) {
            metadata.requestedAt[request] = nil
        }
        var actions: [SessionAction] = []
        if !peer.outstanding.isEmpty {
            for other in peers.keys.sorted() { actions += fillRequests(other, now) }
        }
        if info == nil, peer.metadataSize != nil, chooseMetadataSize() {
            for other in peers.keys.sorted() { actions += requestMetadata(other, now) }
        }
        if peer.optimistic || !peer.amChoking { actions += runChoker(now: now, rotateOptimistic: false) }
        return actions
    }

    // MARK: Messages

    /// A message arrived from a peer.
    /// A block arrived (BEP 3 `piece`), its data as read from the socket: the driver's fast
    /// path, so the bytes go from the socket buffer to the piece buffer with one copy.
    public mutating func receivedBlock(
        piece: Int, offset: Int, data: ByteBuffer, from key: PeerKey, now: Moment
    ) -> [SessionAction] {
        guard peers[key] != nil else { return [] }
        peers[key]?.sawMessage = true
        peers[key]?.lastReceived = now
        do {
            return try blockArrived(
                BlockRequest(piece: piece, offset: offset, length: data.readableBytes), data, key, now)
        } catch {
            return close(key, error)
        }
    }

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
        // Read what is needed and mutate in place: a live copy of the peer would make every
        // in-place change copy its dictionaries (copy-on-write).
        guard let sawMessage = peers[key]?.sawMessage, let fast = peers[key]?.fast else { return [] }
        let first = !sawMessage && message != .keepAlive
        if case .extended = message {} else if message != .keepAlive { peers[key]?.sawMessage = true }
        peers[key]?.lastReceived = now
        let pieceCount = picker?.pieceCount

        func checkPiece(_ piece: Int) throws(PeerWireError) {
            if let pieceCount, piece < 0 || piece >= pieceCount { throw .pieceIndexOutOfRange(piece) }
        }
        func requireFast(_ name: String) throws(PeerWireError) {
            if !fast { throw .fastMessageWithoutFastExtension(name) }
        }

        switch message {
        case .port(let port):
            guard configuration.dhtPort != nil, port != 0, let address = peers[key]?.address,
                peers[key]?.dhtPort == nil
            else { return [] }
            peers[key]?.dhtPort = port
            return [.dhtNode(Endpoint(ip: address.ip, port: port))]
        case .keepAlive, .suggest, .unknown:
            return []
        case .choke:
            peers[key]?.peerChoking = true
            if !fast, let outstanding = peers[key]?.outstanding {
                // Without the fast extension a choke discards every pending request (BEP 3).
                peers[key]?.outstanding = [:]
                for request in outstanding.keys { picker?.release(request) }
            }
            return []
        case .unchoke:
            peers[key]?.peerChoking = false
            return fillRequests(key, now)
        case .interested:
            peers[key]?.peerInterested = true
            return quickUnchoke(key, now)
        case .notInterested:
            peers[key]?.peerInterested = false
            return []
        case .have(let piece):
            try checkPiece(piece)
            guard let picker else {
                if (peers[key]?.pendingHaves.count ?? 0) < Self.maxPendingHaves {
                    peers[key]?.pendingHaves.insert(piece)
                }
                return []
            }
            if peers[key]?.has != nil {
                if peers[key]?.has?[piece] == false {
                    peers[key]?.has?[piece] = true
                    self.picker?.peerHas(piece: piece)
                }
            } else {
                var has = Bitfield(count: picker.pieceCount)
                has[piece] = true
                peers[key]?.has = has
                self.picker?.peerHas(piece: piece)
            }
            return try afterAvailabilityChange(key, now)
        case .bitfield(let bytes):
            guard let picker else {
                peers[key]?.pendingBitfield = bytes
                return []
            }
            guard let bitfield = Bitfield(bytes: bytes, count: picker.pieceCount) else {
                throw .bitfieldSize(expected: (picker.pieceCount + 7) / 8, got: bytes.count)
            }
            return try replaceAvailability(key, bitfield, first: first, now)
        case .haveAll, .haveNone:
            try requireFast(message.name)
            guard let picker else {
                peers[key]?.pendingHaveAll = message == .haveAll
                return []
            }
            return try replaceAvailability(
                key, Bitfield(count: picker.pieceCount, allSet: message == .haveAll), first: first, now)
        case .request(let request):
            return try peerRequested(request, key, now)
        case .piece(let piece, let offset, let data):
            return try blockArrived(
                BlockRequest(piece: piece, offset: offset, length: data.count), ByteBuffer(bytes: data), key,
                now)
        case .cancel(let request):
            peers[key]?.incoming.remove(request)
            return []
        case .reject(let request):
            try requireFast("reject")
            if peers[key]?.outstanding.removeValue(forKey: request) != nil {
                picker?.release(request)
            }
            return []
        case .allowedFast(let piece):
            try requireFast("allowed fast")
            try checkPiece(piece)
            if (peers[key]?.allowedFast.count ?? 0) < 64 { peers[key]?.allowedFast.insert(piece) }
            return fillRequests(key, now)
        case .extended(let id, let payload):
            return try extended(id, payload, key, now)
        }
    }

    /// BEP 3 sends the bitfield first, but some clients (aria2) send `have none` and later a
    /// full bitfield as an update; a later one replaces what the peer had, rather than closing.
    private mutating func replaceAvailability(
        _ key: PeerKey, _ bitfield: Bitfield, first: Bool, _ now: Moment
    )
        throws(PeerWireError) -> [SessionAction]
    {
        if !first, let old = peers[key]?.has { picker?.peerLeft(old) }
        peers[key]?.has = bitfield
        picker?.peerHas(bitfield)
        return try afterAvailabilityChange(key, now)
    }

    private mutating func afterAvailabilityChange(_ key: PeerKey, _ now: Moment) throws(PeerWireError)
        -> [SessionAction]
    {
        guard let peer = peers[key], let has = peer.has, let picker else { return [] }
        if picker.have.isComplete && has.isComplete {
            return close(key, reason: "both sides are seeds")
        }
        return updateInterest(key, now) + fillRequests(key, now)
    }

    private mutating func peerRequested(_ request: BlockRequest, _ key: PeerKey, _ now: Moment)
        throws(PeerWireError)
        -> [SessionAction]
    {
        guard let fast = peers[key]?.fast, let amChoking = peers[key]?.amChoking,
            let queued = peers[key]?.incoming.count
        else { return [] }
        guard let picker, isReady else {
            return fast ? [send(key, .reject(request), now)] : []
        }
        guard request.piece >= 0, request.piece < picker.pieceCount, request.offset >= 0, request.length > 0,
            request.offset + request.length <= picker.pieceSize(request.piece)
        else {
            throw .requestOutOfRange(request)
        }
        guard request.length <= BlockRequest.standardLength else {
            if fast { return [send(key, .reject(request), now)] }
            throw .blockTooLarge(request)
        }
        guard queued < configuration.maxIncomingRequests else {
            throw .tooManyRequests(limit: configuration.maxIncomingRequests)
        }
        guard picker.have[request.piece], !amChoking else {
            return fast ? [send(key, .reject(request), now)] : []
        }
        guard peers[key]?.incoming.insert(request).inserted == true else { return [] }
        return [.read(request, for: key)]
    }

    private mutating func blockArrived(
        _ request: BlockRequest, _ data: ByteBuffer, _ key: PeerKey, _ now: Moment
    ) throws(PeerWireError) -> [SessionAction] {
        guard let address = peers[key]?.address else { return [] }
        guard
            peers[key]?.outstanding.removeValue(forKey: request) != nil
                || peers[key]?.cancelled.remove(request) != nil
        else {
            throw .unrequestedBlock(request)
        }
        peers[key]?.download.add(data.readableBytes)
        peers[key]?.lastBlock = now
        guard picker?.received(request) == true else {
            wasted += Int64(data.readableBytes)
            return fillRequests(key, now)
        }
        downloaded += Int64(data.readableBytes)
        contributors[request.piece, default: [:]][request.offset / BlockRequest.standardLength] = address
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

    // MARK: Extensions (BEP 10, 9, 11)

    private mutating func extended(_ id: UInt8, _ payload: [UInt8], _ key: PeerKey, _ now: Moment)
        throws(PeerWireError) -> [SessionAction]
    {
        guard let peer = peers[key], peer.extensionProtocol else {
            throw .badExtensionMessage("extension message without the extension protocol bit")
        }
        switch id {
        case 0:
            let handshake = try ExtensionHandshake(decoding: payload)
            peers[key]?.extensions = handshake.messageIDs.filter { $0.value != 0 }
            peers[key]?.listenPort = handshake.listenPort
            if let reqq = handshake.requestQueueLength {
                peers[key]?.requestQueueLimit = max(1, min(reqq, 2_000))
            }
            peers[key]?.metadataSize = handshake.metadataSize
            if info == nil, chooseMetadataSize() {
                var actions: [SessionAction] = []
                for other in peers.keys.sorted() { actions += requestMetadata(other, now) }
                return actions
            }
            return requestMetadata(key, now)
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

    /// Takes the metadata size that most peers report (one peer lying about it cannot stall the
    /// fetch: the others' size wins, and a size whose dictionary failed twice is dropped). True
    /// when the size changed (what was assembled is dropped).
    private mutating func chooseMetadataSize() -> Bool {
        var votes: [Int: Int] = [:]
        for peer in peers.values {
            if let size = peer.metadataSize, failedMetadataSizes[size, default: 0] < 2 {
                votes[size, default: 0] += 1
            }
        }
        let best = votes.max { ($0.value, -$0.key) < ($1.value, -$1.key) }?.key
        if let current = metadata.size, let currentVotes = votes[current],
            currentVotes >= votes[best ?? current] ?? 0
        {
            return false
        }
        guard best != metadata.size else { return false }
        metadata = MetadataAssembly()
        metadata.size = best
        return best != nil
    }

    private mutating func requestMetadata(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        guard info == nil, let peer = peers[key], let remoteID = peer.extensions["ut_metadata"],
            peer.metadataSize != nil, let size = metadata.size, peer.metadataSize == size
        else { return [] }
        var actions: [SessionAction] = []
        for piece in 0..<metadata.pieceCount where metadata.pieces[piece] == nil {
            if let at = metadata.requestedAt[piece], now - at < .seconds(10) { continue }
            metadata.requestedAt[piece] = now
            peers[key]?.metadataRequests.insert(piece)
            actions.append(
                send(
                    key, .extended(id: remoteID, payload: MetadataMessage.request(piece: piece).encoded()),
                    now))
        }
        return actions
    }

    private mutating func metadataMessage(_ message: MetadataMessage, _ key: PeerKey, _ now: Moment)
        throws(PeerWireError) -> [SessionAction]
    {
        switch message {
        case .request(let piece):
            guard let remoteID = peers[key]?.extensions["ut_metadata"] else { return [] }
            guard let infoBytes, piece * MetadataMessage.pieceLength < infoBytes.count else {
                return [
                    send(
                        key, .extended(id: remoteID, payload: MetadataMessage.reject(piece: piece).encoded()),
                        now)
                ]
            }
            let start = piece * MetadataMessage.pieceLength
            let bytes = Array(infoBytes[start..<min(start + MetadataMessage.pieceLength, infoBytes.count)])
            let reply = MetadataMessage.data(piece: piece, totalSize: infoBytes.count, bytes: bytes)
            return [send(key, .extended(id: remoteID, payload: reply.encoded()), now)]
        case .reject(let piece):
            metadata.requestedAt[piece] = nil
            peers[key]?.metadataSize = nil  // ask others instead
            return []
        case .data(let piece, let totalSize, let bytes):
            guard info == nil, let size = metadata.size else { return [] }
            guard totalSize == size, piece < metadata.pieceCount,
                bytes.count == min(MetadataMessage.pieceLength, size - piece * MetadataMessage.pieceLength)
            else {
                throw .badExtensionMessage(
                    "ut_metadata piece \(piece) does not fit a \(size)-byte info dictionary")
            }
            metadata.pieces[piece] = bytes
            metadata.sources[piece] = key
            guard metadata.pieces.count == metadata.pieceCount else { return [] }
            var assembled: [UInt8] = []
            for index in 0..<metadata.pieceCount { assembled += metadata.pieces[index] ?? [] }
            let senders = Set(metadata.sources.values)
            metadata.pieces = [:]
            metadata.requestedAt = [:]
            metadata.sources = [:]
            guard Metainfo.hash(assembled) == infoHash,
                let node = try? BencodeDecoder(mode: .lenient, limits: MetainfoLimits.standard.bencode)
                    .decodeNode(assembled),
                let parsed = try? InfoDictionary(node: node, infoHash: infoHash)
            else {
                // Start over. A peer that sent every piece is the culprit and is dropped;
                // otherwise nobody is known, and the size itself loses credit.
                var actions: [SessionAction] = []
                failedMetadataSizes[size, default: 0] += 1
                if senders.count == 1, let culprit = senders.first {
                    peers[culprit]?.metadataSize = nil
                    actions += close(
                        culprit, reason: "sent metadata that does not match the info-hash", ban: false)
                }
                _ = chooseMetadataSize()
                for other in peers.keys.sorted() { actions += requestMetadata(other, now) }
                return actions
            }
            metadata = MetadataAssembly()
            setInfo(parsed, bytes: assembled)
            return [.metadataReceived(parsed)]
        }
    }

    // MARK: Storage events

    /// A block from a `.write` action is on disk.
    public mutating func blockWritten(_ request: BlockRequest) -> [SessionAction] {
        guard picker?.written(request) == true else { return [] }
        return [.verify(piece: request.piece, blockDigests: failedBlocks[request.piece] != nil)]
    }

    /// A piece's hash check finished. `blockDigests` (SHA-1 of each block) is given on failure
    /// and when the `.verify` action asked for it.
    public mutating func pieceVerified(_ piece: Int, passed: Bool, blockDigests: [[UInt8]]?, now: Moment)
        -> [SessionAction]
    {
        guard picker != nil else { return [] }
        picker?.verified(piece, passed: passed)
        let pieceSize = picker?.pieceSize(piece) ?? 0
        let senders = contributors.removeValue(forKey: piece) ?? [:]
        var actions: [SessionAction] = []
        if passed {
            actions.append(.pieceCompleted(piece))
            // Smart ban: a block that differs from the good one names its sender.
            if let failed = failedBlocks.removeValue(forKey: piece), let blockDigests {
                for (index, entries) in failed where index < blockDigests.count {
                    for entry in entries where entry.digest != blockDigests[index] {
                        actions += ban(entry.peer, reason: "sent a corrupt block of piece \(piece)", now: now)
                    }
                }
            }
            for key in peers.keys.sorted() {
                actions.append(send(key, .have(piece: piece), now))
                actions += updateInterest(key, now)
            }
            actions += checkCompletion()
        } else {
            wasted += Int64(pieceSize)
            downloaded -= Int64(pieceSize)
            let suspects = Set(senders.values)
            if let blockDigests {
                for (index, sender) in senders where index < blockDigests.count {
                    failedBlocks[piece, default: [:]][index, default: []].append(
                        (sender, blockDigests[index]))
                }
            }
            if suspects.count == 1, let culprit = suspects.first {
                actions += ban(
                    culprit, reason: "sent every block of piece \(piece), which failed its hash check",
                    now: now)
            } else {
                for suspect in suspects.sorted(by: { $0.description < $1.description }) {
                    strikes[Self.banKey(suspect), default: 0] += 1
                    if let count = strikes[Self.banKey(suspect)], count >= configuration.maxStrikes {
                        actions += ban(suspect, reason: "took part in \(count) pieces that failed", now: now)
                    }
                }
            }
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
        guard var peer = peers[key], peer.incoming.remove(request) != nil, !peer.amChoking else { return [] }
        peer.upload.add(data.count)
        peers[key] = peer
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
            guard var peer = peers[key] else { continue }
            peer.download.tick(elapsed: elapsed)
            peer.upload.tick(elapsed: elapsed)
            peers[key] = peer
            if now - peer.lastReceived > configuration.idleTimeout {
                actions += close(key, .timedOut("no message for \(configuration.idleTimeout)"))
                continue
            }
            let expired = peer.outstanding.filter { now - $0.value > configuration.requestTimeout }
            if !expired.isEmpty {
                for request in expired.keys {
                    peers[key]?.outstanding[request] = nil
                    peers[key]?.cancelled.insert(request)
                    picker?.release(request)
                    actions.append(send(key, .cancel(request), now))
                }
            }
            if now - peer.lastSent > configuration.keepAliveInterval {
                actions.append(send(key, .keepAlive, now))
            }
            if configuration.enablePEX, peer.extensions["ut_pex"] != nil,
                now - peer.lastPEX >= configuration.pexInterval
            {
                actions += sendPEX(key, now)
            }
            if info == nil { actions += requestMetadata(key, now) }
        }
        if lastChoke.map({ now - $0 >= configuration.chokeInterval }) ?? true {
            let rotate = lastOptimistic.map { now - $0 >= configuration.optimisticInterval } ?? true
            if rotate { lastOptimistic = now }
            lastChoke = now
            actions += runChoker(now: now, rotateOptimistic: rotate)
        }
        for key in peers.keys.sorted() { actions += fillRequests(key, now) }
        actions += connectMore(now)
        return actions
    }

    private mutating func connectMore(_ now: Moment) -> [SessionAction] {
        guard peers.count < configuration.maxPeers, isReady || info == nil else { return [] }
        let pending = known.values.filter { $0.connected }.count
        var budget = min(
            configuration.connectsPerTick,
            configuration.maxPeers - peers.count - max(0, pending - peers.count))
        guard budget > 0 else { return [] }
        var actions: [SessionAction] = []
        let connected = Set(peers.values.map(\.address))
        for address in known.keys.sorted(by: { $0.description < $1.description }) {
            guard budget > 0 else { break }
            guard var entry = known[address], !entry.connected, entry.nextAttempt <= now,
                !connected.contains(address), !isBanned(address), !bannedAddresses.contains(address)
            else { continue }
            entry.connected = true
            known[address] = entry
            actions.append(.connect(address))
            budget -= 1
        }
        return actions
    }

    // MARK: Choking

    /// BEP 3 practice: `unchokeSlots` interested peers by the rate they give us (leeching) or
    /// take from us (seeding), never a snubbed one, plus one optimistic unchoke rotated every
    /// `optimisticInterval`.
    private mutating func runChoker(now: Moment, rotateOptimistic: Bool) -> [SessionAction] {
        let seeding = picker?.isComplete ?? false
        let interested = peers.values.filter { $0.peerInterested }
        let ranked = interested.filter { !isSnubbed($0, now) }.sorted { lhs, rhs in
            let left = seeding ? lhs.upload.rate : lhs.download.rate
            let right = seeding ? rhs.upload.rate : rhs.download.rate
            if left != right { return left > right }
            return lhs.lastUnchoked < rhs.lastUnchoked  // round-robin among equals
        }
        var unchoke = Set(ranked.prefix(configuration.unchokeSlots).map(\.key))
        var optimistic = peers.values.first { $0.optimistic && $0.peerInterested }?.key
        if rotateOptimistic || optimistic.map({ unchoke.contains($0) }) ?? true {
            let candidates = interested.filter { !unchoke.contains($0.key) }.map(\.key).sorted()
            optimistic =
                candidates.isEmpty ? nil : candidates[Int.random(in: 0..<candidates.count, using: &rng)]
        }
        if let optimistic { unchoke.insert(optimistic) }
        var actions: [SessionAction] = []
        for key in peers.keys.sorted() {
            guard var peer = peers[key] else { continue }
            peer.optimistic = key == optimistic
            let shouldChoke = !unchoke.contains(key)
            peers[key] = peer
            if shouldChoke != peer.amChoking { actions += setChoking(key, shouldChoke, now) }
        }
        return actions
    }

    /// A newly interested peer is unchoked at once when a slot is free, not at the next round.
    private mutating func quickUnchoke(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        let unchoked = peers.values.filter { !$0.amChoking }.count
        guard let peer = peers[key], peer.amChoking, unchoked < configuration.unchokeSlots + 1 else {
            return []
        }
        return setChoking(key, false, now)
    }

    private mutating func setChoking(_ key: PeerKey, _ choke: Bool, _ now: Moment) -> [SessionAction] {
        guard var peer = peers[key] else { return [] }
        peer.amChoking = choke
        var actions: [SessionAction] = []
        if choke {
            if peer.fast {
                actions += peer.incoming.sorted { $0.description < $1.description }.map {
                    .send(key, .reject($0))
                }
            }
            peer.incoming = []
        } else {
            peer.lastUnchoked = now
        }
        peers[key] = peer
        return actions + [send(key, choke ? .choke : .unchoke, now)]
    }

    private func isSnubbed(_ peer: Peer, _ now: Moment) -> Bool {
        !peer.outstanding.isEmpty && now - peer.lastBlock > configuration.snubTime
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
            guard let peer = peers[key], peer.amInterested, let has = peer.has else { return [] }
            var available = has
            if peer.peerChoking {
                guard peer.fast, !peer.allowedFast.isEmpty else { return [] }
                available = Bitfield(count: has.count)
                for piece in peer.allowedFast where piece < has.count && has[piece] {
                    available[piece] = true
                }
            }
            let seconds = Double(configuration.requestQueueTime.components.seconds)
            let byRate = Int(peer.download.rate * seconds) / BlockRequest.standardLength
            var target = max(configuration.minRequestsPerPeer, min(byRate, configuration.maxRequestsPerPeer))
            target = min(target, peer.requestQueueLimit)
            if isSnubbed(peer, now) { target = 1 }
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

    private mutating func sendPEX(_ key: PeerKey, _ now: Moment) -> [SessionAction] {
        guard let peer = peers[key], let remoteID = peer.extensions["ut_pex"] else { return [] }
        let current = Set(peers.values.filter { $0.key != key }.compactMap(\.listenAddress))
        let added = current.subtracting(peer.pexTold).sorted { $0.description < $1.description }
        let dropped = peer.pexTold.subtracting(current).sorted { $0.description < $1.description }
        peers[key]?.lastPEX = now
        guard !added.isEmpty || !dropped.isEmpty else { return [] }
        let message = PEXMessage(
            added: Array(added.prefix(PEXMessage.maxPeers)),
            dropped: Array(dropped.prefix(PEXMessage.maxPeers)))
        peers[key]?.pexTold = peer.pexTold.subtracting(message.dropped).union(message.added)
        return [send(key, .extended(id: remoteID, payload: message.encoded()), now)]
    }

    // MARK: Helpers

    private mutating func checkCompletion() -> [SessionAction] {
        guard isReady, let picker, picker.isComplete, !announcedComplete else { return [] }
        announcedComplete = true
        var actions: [SessionAction] = [.downloadCompleted]
        for key in peers.keys.sorted() {
            if let peer = peers[key], peer.amInterested {
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
        let banned = Self.banKey(address)
        guard !bannedAddresses.contains(banned) else { return [] }
        bannedAddresses.insert(banned)
        for known in known.keys where Self.banKey(known) == banned { self.known[known] = nil }
        var actions: [SessionAction] = [.banned(address, reason: reason)]
        for key in peers.keys.sorted() where peers[key].map({ Self.banKey($0.address) }) == banned {
            if let id = peers[key]?.peerID { bannedPeerIDs.insert(id) }
            actions += close(key, reason: "banned: \(reason)", ban: true)
        }
        return actions
    }
}

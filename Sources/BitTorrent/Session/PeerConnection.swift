import PeerNet

/// One peer's side of the wire protocol (BEP 3, 5, 6, 10): the handshake's checks, the rules
/// each message must follow, and what the peer has said about itself (choking, interest,
/// availability, requests both ways).
///
/// No sockets, clock or randomness inside, and nothing about other peers: ``TorrentSession``
/// holds one per connection, feeds it the peer's messages, and acts on the ``PeerEvent`` each
/// returns (the piece picker, the choker, the endgame are the session's). A message that breaks
/// a rule throws a ``PeerWireError`` and the session closes this connection alone.
struct PeerConnection: Sendable {
    /// Where the connection is in its life.
    enum Phase: Equatable, Sendable {
        /// The TCP connection is up; the BEP 3 handshake is not yet checked.
        case awaitingHandshake
        /// Handshake accepted; no message yet (BEP 3: a bitfield may only come first).
        case awaitingFirstMessage
        /// Messages are flowing.
        case active
    }

    /// What the peer said it has.
    enum Availability: Sendable {
        /// Before the metadata says how many pieces there are: the claims, checked once it does.
        case pending(bitfield: [UInt8]?, haveAll: Bool, haves: Set<Int>)
        case known(Bitfield)
    }

    /// What the handshake check decided.
    enum HandshakeVerdict: Equatable, Sendable {
        case accepted
        /// Close, for this reason.
        case refused(reason: String)
        /// The peer is ourselves (our own peer ID): close, and never dial this endpoint again.
        case ourselves
    }

    /// Most `have`s kept per peer before the metadata says how many pieces there are.
    static let maxPendingHaves = 4_096
    /// Most BEP 6 allowed-fast pieces remembered per peer.
    static let maxAllowedFast = 64

    let key: PeerKey
    let address: Endpoint
    let outgoing: Bool
    private(set) var phase = Phase.awaitingHandshake
    private(set) var peerID: [UInt8] = []
    private(set) var fast = false
    private(set) var extensionProtocol = false
    /// A web seed (BEP 19) standing in as a peer: the driver turns its requests into HTTP.
    private(set) var isWebSeed = false
    /// The peer set BEP 52's v2 bit in its handshake.
    private(set) var supportsV2 = false
    /// The info-hash the peer's handshake named (a hybrid torrent has two).
    private(set) var handshakeInfoHash: InfoHash?
    /// Our BEP 52 hash requests to the peer, with when they were sent.
    var hashRequests: [HashRequest: Moment] = [:]
    /// The peer's hash requests answered in this second, and its leaf requests being read
    /// from disk: both bounded, as block requests are.
    var hashAnswersThisSecond = 0
    var leafReads = 0
    /// The peer's BEP 10 message IDs by extension name (0, "disabled", dropped).
    private(set) var extensions: [String: UInt8] = [:]
    private(set) var listenPort: UInt16?
    /// The peer's BEP 10 `reqq`: most requests it queues from us.
    private(set) var requestQueueLimit = 250
    private(set) var availability = Availability.pending(bitfield: nil, haveAll: false, haves: [])
    /// The DHT port this peer named (BEP 5 `port`): passed on once, so a peer repeating the
    /// message cannot make our DHT node ping without end.
    private(set) var dhtPort: UInt16?
    var amChoking = true
    var amInterested = false
    private(set) var peerChoking = true
    private(set) var peerInterested = false
    var optimistic = false
    /// Our requests to the peer, with when they were sent.
    var outstanding: [BlockRequest: Moment] = [:]
    /// Requests we cancelled; their blocks may still arrive.
    var cancelled: Set<BlockRequest> = []
    /// The peer's requests being read from disk for it.
    var incoming: Set<BlockRequest> = []
    private(set) var allowedFast: Set<Int> = []
    var download = RateMeter()
    var upload = RateMeter()
    let connectedAt: Moment
    private(set) var lastBlock: Moment
    private(set) var lastReceived: Moment
    var lastSent: Moment
    var lastUnchoked: Moment = .zero

    init(key: PeerKey, address: Endpoint, outgoing: Bool, now: Moment) {
        self.key = key
        self.address = address
        self.outgoing = outgoing
        connectedAt = now
        lastBlock = now
        lastReceived = now
        lastSent = now
    }

    /// A web seed (BEP 19) as a peer: it has every piece and never chokes; we serve it nothing.
    static func webSeed(key: PeerKey, address: Endpoint, pieceCount: Int, now: Moment) -> PeerConnection {
        var peer = PeerConnection(key: key, address: address, outgoing: true, now: now)
        peer.isWebSeed = true
        peer.phase = .active
        peer.availability = .known(Bitfield(count: pieceCount, allSet: true))
        peer.peerChoking = false
        peer.requestQueueLimit = 2_000
        return peer
    }

    /// What the peer has, once the piece count is known.
    var has: Bitfield? {
        if case .known(let bitfield) = availability { return bitfield }
        return nil
    }

    /// The pieces the peer announced with `have` before the metadata arrived.
    var pendingHaves: Set<Int> {
        if case .pending(_, _, let haves) = availability { return haves }
        return []
    }

    /// Where this peer accepts connections: the dialled address, or its IP with the port
    /// from its extension handshake.
    var listenAddress: Endpoint? {
        if outgoing { return address }
        return listenPort.map { Endpoint(ip: address.ip, port: $0) }
    }

    // MARK: Handshake

    /// Checks the peer's BEP 3 handshake: the torrent, and not ourselves. The session's own
    /// checks (bans, peer limits) come after.
    mutating func handshakeReceived(_ handshake: Handshake, infoHashes: [InfoHash], ourPeerID: [UInt8])
        -> HandshakeVerdict
    {
        guard phase == .awaitingHandshake else {
            return .refused(reason: "a second handshake")
        }
        guard infoHashes.contains(handshake.infoHash) else {
            return .refused(reason: PeerWireError.wrongInfoHash(handshake.infoHash).description)
        }
        guard handshake.peerID != ourPeerID else { return .ourselves }
        peerID = handshake.peerID
        fast = handshake.reserved.fastExtension
        extensionProtocol = handshake.reserved.extensionProtocol
        supportsV2 = handshake.reserved.v2
        handshakeInfoHash = handshake.infoHash
        phase = .awaitingFirstMessage
        return .accepted
    }

    // MARK: Messages

    /// Applies a message's rules and its effect on this peer's state; the event says what the
    /// session must do about it. `picker` is nil until the metadata is known.
    mutating func received(
        _ message: PeerMessage, picker: PiecePicker?, ready: Bool, configuration: SessionConfiguration,
        now: Moment
    ) throws(PeerWireError) -> PeerEvent {
        guard phase != .awaitingHandshake else { throw .beforeHandshake(message: message.name) }
        let first = phase == .awaitingFirstMessage && message != .keepAlive
        if case .extended = message {} else if message != .keepAlive { phase = .active }
        lastReceived = now
        let pieceCount = picker?.pieceCount

        func checkPiece(_ piece: Int) throws(PeerWireError) {
            if let pieceCount, piece < 0 || piece >= pieceCount { throw .pieceIndexOutOfRange(piece) }
        }
        func requireFast(_ name: String) throws(PeerWireError) {
            if !fast { throw .fastMessageWithoutFastExtension(name) }
        }

        switch message {
        case .port(let port):
            guard configuration.dhtPort != nil, port != 0, dhtPort == nil else { return .none }
            dhtPort = port
            return .dhtNode(Endpoint(ip: address.ip, port: port))
        case .keepAlive, .suggest, .unknown:
            return .none
        case .choke:
            peerChoking = true
            // Without the fast extension a choke discards every pending request (BEP 3).
            guard !fast, !outstanding.isEmpty else { return .none }
            let released = Array(outstanding.keys)
            outstanding = [:]
            return .released(released)
        case .unchoke:
            peerChoking = false
            return .canRequest
        case .interested:
            peerInterested = true
            return .interested
        case .notInterested:
            peerInterested = false
            return .none
        case .have(let piece):
            try checkPiece(piece)
            switch availability {
            case .pending(let bitfield, let haveAll, var haves):
                if haves.count < Self.maxPendingHaves { haves.insert(piece) }
                availability = .pending(bitfield: bitfield, haveAll: haveAll, haves: haves)
                return .none
            case .known(var bitfield):
                guard !bitfield[piece] else { return .availabilityChanged }
                bitfield[piece] = true
                availability = .known(bitfield)
                return .gained(piece: piece)
            }
        case .bitfield(let bytes):
            guard let pieceCount else {
                if case .pending(_, let haveAll, let haves) = availability {
                    availability = .pending(bitfield: bytes, haveAll: haveAll, haves: haves)
                }
                return .none
            }
            guard let bitfield = Bitfield(bytes: bytes, count: pieceCount) else {
                throw .bitfieldSize(expected: (pieceCount + 7) / 8, got: bytes.count)
            }
            return replaceAvailability(bitfield, first: first)
        case .haveAll, .haveNone:
            try requireFast(message.name)
            guard let pieceCount else {
                if case .pending(let bitfield, _, let haves) = availability {
                    availability = .pending(bitfield: bitfield, haveAll: message == .haveAll, haves: haves)
                }
                return .none
            }
            return replaceAvailability(Bitfield(count: pieceCount, allSet: message == .haveAll), first: first)
        case .request(let request):
            return try requested(request, picker: ready ? picker : nil, configuration: configuration)
        case .piece(let piece, let offset, let data):
            let request = BlockRequest(piece: piece, offset: offset, length: data.count)
            try blockArrived(request, now: now)
            return .block(request)
        case .cancel(let request):
            incoming.remove(request)
            return .none
        case .reject(let request):
            try requireFast("reject")
            guard outstanding.removeValue(forKey: request) != nil else { return .none }
            return .released([request])
        case .allowedFast(let piece):
            try requireFast("allowed fast")
            try checkPiece(piece)
            if allowedFast.count < Self.maxAllowedFast { allowedFast.insert(piece) }
            return .canRequest
        case .hashRequest(let request):
            return .hashRequested(request)
        case .hashes(let request, let hashes):
            // An answer to nothing we asked (or asked and gave up on) is ignored.
            guard hashRequests.removeValue(forKey: request) != nil else { return .none }
            return .hashesReceived(request, hashes)
        case .hashReject(let request):
            guard hashRequests.removeValue(forKey: request) != nil else { return .none }
            return .hashesRejected(request)
        case .extended(let id, let payload):
            guard extensionProtocol else {
                throw .badExtensionMessage("extension message without the extension protocol bit")
            }
            guard id == 0 else { return .extensionMessage(id: id, payload: payload) }
            let handshake = try ExtensionHandshake(decoding: payload)
            extensions = handshake.messageIDs.filter { $0.value != 0 }
            listenPort = handshake.listenPort
            if let reqq = handshake.requestQueueLength { requestQueueLimit = max(1, min(reqq, 2_000)) }
            return .extensionHandshake(handshake)
        }
    }

    /// A block arrived: it must answer one of our requests (or a cancelled one still in flight).
    mutating func blockArrived(_ request: BlockRequest, now: Moment) throws(PeerWireError) {
        phase = .active
        lastReceived = now
        guard outstanding.removeValue(forKey: request) != nil || cancelled.remove(request) != nil else {
            throw .unrequestedBlock(request)
        }
        download.add(request.length)
        lastBlock = now
    }

    /// BEP 3 sends the bitfield first, but some clients (aria2) send `have none` and later a
    /// full bitfield as an update; a later one replaces what the peer had, rather than closing.
    private mutating func replaceAvailability(_ bitfield: Bitfield, first: Bool) -> PeerEvent {
        let old = first ? nil : has
        availability = .known(bitfield)
        return .replaced(old: old, new: bitfield)
    }

    /// The metadata arrived: the claims made before it are checked against the piece count.
    mutating func resolvePendingAvailability(pieceCount: Int) throws(PeerWireError) -> Bitfield? {
        guard case .pending(let bytes, let haveAll, let haves) = availability else { return nil }
        var bitfield: Bitfield
        if haveAll {
            bitfield = Bitfield(count: pieceCount, allSet: true)
        } else if let bytes {
            guard let claimed = Bitfield(bytes: bytes, count: pieceCount) else {
                throw .bitfieldSize(expected: (pieceCount + 7) / 8, got: bytes.count)
            }
            bitfield = claimed
        } else {
            bitfield = Bitfield(count: pieceCount)
        }
        for piece in haves where piece < pieceCount { bitfield[piece] = true }
        availability = .known(bitfield)
        return bitfield
    }

    /// BEP 3 and 6 rules for a peer's request; the request is queued for reading only when we
    /// have the piece and are not choking the peer. `picker` is nil until storage is ready.
    private mutating func requested(
        _ request: BlockRequest, picker: PiecePicker?, configuration: SessionConfiguration
    ) throws(PeerWireError) -> PeerEvent {
        let refuse: PeerEvent = fast ? .reply(.reject(request)) : .none
        guard let picker else { return refuse }
        guard request.piece >= 0, request.piece < picker.pieceCount, request.offset >= 0, request.length > 0,
            request.offset + request.length <= picker.pieceSize(request.piece)
        else {
            throw .requestOutOfRange(request)
        }
        guard request.length <= BlockRequest.standardLength else {
            if fast { return refuse }
            throw .blockTooLarge(request)
        }
        guard incoming.count < configuration.maxIncomingRequests else {
            throw .tooManyRequests(limit: configuration.maxIncomingRequests)
        }
        guard picker.have[request.piece], !amChoking else { return refuse }
        guard incoming.insert(request).inserted else { return .none }
        return .serve(request)
    }

    // MARK: Our side

    /// Chokes or unchokes the peer; returns the messages to send (with BEP 6, a reject for each
    /// request that a choke drops).
    mutating func setChoking(_ choke: Bool, now: Moment) -> [PeerMessage] {
        amChoking = choke
        var messages: [PeerMessage] = []
        if choke {
            if fast { messages = incoming.sorted { $0.description < $1.description }.map { .reject($0) } }
            incoming = []
        } else {
            lastUnchoked = now
        }
        return messages + [choke ? .choke : .unchoke]
    }

    /// The pieces we may request now: all the peer has while it unchokes us, else its BEP 6
    /// allowed-fast pieces; nil when there is nothing to ask for.
    var requestable: Bitfield? {
        guard amInterested, let has else { return nil }
        guard peerChoking else { return has }
        guard fast, !allowedFast.isEmpty else { return nil }
        var available = Bitfield(count: has.count)
        for piece in allowedFast where piece < has.count && has[piece] { available[piece] = true }
        return available
    }

    /// Waiting on blocks that have not come for `snubTime`.
    func isSnubbed(now: Moment, snubTime: Duration) -> Bool {
        !outstanding.isEmpty && now - lastBlock > snubTime
    }
}

/// What a peer's message asks of the session, after ``PeerConnection`` applied its rules.
enum PeerEvent: Sendable {
    case none
    /// The peer named its DHT node (BEP 5).
    case dhtNode(Endpoint)
    /// These requests will not be answered: give them to the picker again.
    case released([BlockRequest])
    /// Requests may be sent now (an unchoke, an allowed-fast piece).
    case canRequest
    case interested
    /// The peer now has `piece`.
    case gained(piece: Int)
    /// The peer's availability was set anew (`old` is what to take back from the picker).
    case replaced(old: Bitfield?, new: Bitfield)
    /// Nothing new, but interest and requests are to be looked at again.
    case availabilityChanged
    /// Queue this request for reading from disk.
    case serve(BlockRequest)
    /// Send this message in answer.
    case reply(PeerMessage)
    /// A block we asked for arrived.
    case block(BlockRequest)
    case extensionHandshake(ExtensionHandshake)
    /// A BEP 10 message under one of our IDs.
    case extensionMessage(id: UInt8, payload: [UInt8])
    /// BEP 52: the peer asks for hashes.
    case hashRequested(HashRequest)
    /// BEP 52: the answer to one of our hash requests (not yet checked).
    case hashesReceived(HashRequest, [[UInt8]])
    /// BEP 52: one of our hash requests was refused.
    case hashesRejected(HashRequest)
}

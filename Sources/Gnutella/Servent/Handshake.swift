import PeerNet

/// What a servent is and offers in its handshakes (Gnutella 0.6, section 2.2.4; the Ultrapeer
/// proposal 1.0; QRP 1.0; the deflate proposal). Limits for its connections live here too.
public struct ServentConfiguration: Sendable {
    public var userAgent = "PeerStack/0.1"
    /// An ultrapeer keeps connections to other ultrapeers and serves leaves; a leaf keeps a
    /// few ultrapeer connections and nothing else.
    public var ultrapeer = false
    /// Ultrapeer-to-ultrapeer connections an ultrapeer keeps (LimeWire: 32; 6 for a small net).
    public var maxUltrapeerPeers = 6
    /// Leaves an ultrapeer serves (LimeWire: 30).
    public var maxLeaves = 30
    /// Ultrapeers a leaf keeps (LimeWire: 3).
    public var leafUltrapeers = 3
    /// Offer and accept `Content-Encoding: deflate`.
    public var deflate = true
    /// Where others reach this servent, when known (sent as `Listen-IP`).
    public var listen: Endpoint?
    /// TTL of the queries this servent starts (and the most a forwarded one may keep).
    public var maxTTL: UInt8 = 7
    /// An ultrapeer's own and its leaves' queries widen step by step (dynamic querying); off,
    /// they are flooded to every ultrapeer at once with `maxTTL`, as 0.4 servents did.
    public var dynamicQuerying = true
    /// Slots of this servent's QRP table: 2^qrpBits (65,536 on the wire by default; the
    /// simulator uses fewer to fit 100,000 nodes in memory).
    public var qrpBits = 16

    public init() {}
}

/// What a finished handshake settled.
public struct HandshakeResult: Sendable, Equatable {
    /// The other side is an ultrapeer (`X-Ultrapeer: True`).
    public var peerIsUltrapeer: Bool
    /// The connection's kind from our side: to another ultrapeer, to a leaf we serve, or (for a
    /// leaf) to its ultrapeer.
    public var kind: ConnectionKind
    /// Bytes we send are deflated; bytes we receive are to be inflated.
    public var deflateOutgoing: Bool
    public var deflateIncoming: Bool
    public var userAgent: String?
    /// Where the peer says it listens (`Listen-IP`), if it said.
    public var peerListen: Endpoint?
    /// Ultrapeers the peer named (`X-Try-Ultrapeers`), for the host cache.
    public var tryUltrapeers: [Endpoint]
}

public enum ConnectionKind: Sendable, Equatable {
    case ultrapeerToUltrapeer
    case ultrapeerToLeaf
    case leafToUltrapeer
}

/// The three-step 0.6 handshake as a state machine: bytes in, bytes to send and an outcome out.
/// The initiator sends `GNUTELLA CONNECT/0.6` and its headers; the responder answers `200 OK`
/// (or `503` with `X-Try-Ultrapeers` when it has no slot of that kind); the initiator confirms
/// with `200 OK` (or refuses). Each side deflates what it sends only when the other listed
/// deflate in `Accept-Encoding` and it said `Content-Encoding: deflate`.
public struct Handshake: Sendable {
    public enum Role: Sendable { case initiator, responder }

    /// What the caller is to do after feeding bytes.
    public enum Step: Sendable, Equatable {
        /// Send these bytes; then keep feeding what arrives.
        case send([UInt8])
        /// Done: send `reply` (possibly empty) and the connection is open with `result`; any
        /// bytes after the handshake (`leftover`) are the first descriptor bytes (to inflate
        /// first, if `result.deflateIncoming`).
        case open(reply: [UInt8], result: HandshakeResult, leftover: [UInt8])
        /// Refused (by us or by the peer): send `reply` (possibly empty) and close. `code` and
        /// `reason` say why; `tryUltrapeers` are where to try instead.
        case refused(reply: [UInt8], code: Int, reason: String, tryUltrapeers: [Endpoint])
        /// Nothing yet: more bytes are needed.
        case waiting
    }

    /// Slots free when a connection asks, decided by the servent.
    public struct Slots: Sendable, Equatable {
        public var ultrapeers: Int
        public var leaves: Int
        public init(ultrapeers: Int, leaves: Int) {
            self.ultrapeers = ultrapeers
            self.leaves = leaves
        }
    }

    public let role: Role
    let configuration: ServentConfiguration
    let slots: Slots
    /// Ultrapeers to suggest in a 503 (and in every response, as servents do).
    let alternatives: [Endpoint]
    private var buffer: [UInt8] = []
    private var phase: Phase
    private var peerHeaders: HandshakeMessage?
    private var ourResponse: HandshakeMessage?

    enum Phase: Sendable { case awaitingRequest, awaitingResponse, awaitingConfirmation, finished }

    /// `slots` (responder) are what the servent has free; `alternatives` are ultrapeers it
    /// knows, offered as `X-Try-Ultrapeers`.
    public init(
        role: Role, configuration: ServentConfiguration, slots: Slots = Slots(ultrapeers: 1, leaves: 1),
        alternatives: [Endpoint] = []
    ) {
        self.role = role
        self.configuration = configuration
        self.slots = slots
        self.alternatives = alternatives
        phase = role == .initiator ? .awaitingResponse : .awaitingRequest
    }

    /// The initiator's first bytes: `GNUTELLA CONNECT/0.6` and its headers.
    public func request() -> [UInt8] {
        HandshakeMessage(startLine: HandshakeMessage.connectLine, headers: commonHeaders()).encoded()
    }

    func commonHeaders() -> [(name: String, value: String)] {
        var headers: [(name: String, value: String)] = [
            ("User-Agent", configuration.userAgent),
            ("X-Ultrapeer", configuration.ultrapeer ? "True" : "False"),
            ("X-Query-Routing", "0.1"),
            ("Pong-Caching", "0.1"),
            ("GGEP", "0.5"),
        ]
        if configuration.ultrapeer { headers.append(("X-Ultrapeer-Query-Routing", "0.1")) }
        if let listen = configuration.listen { headers.append(("Listen-IP", listen.description)) }
        if configuration.deflate { headers.append(("Accept-Encoding", "deflate")) }
        return headers
    }

    /// Feeds bytes from the peer.
    public mutating func received(_ bytes: [UInt8]) throws(GnutellaError) -> Step {
        buffer += bytes
        guard phase != .finished else { return .waiting }
        guard let (message, used) = try HandshakeMessage.parse(buffer) else { return .waiting }
        buffer.removeFirst(used)
        switch phase {
        case .awaitingRequest: return try answer(message)
        case .awaitingResponse: return try confirm(message)
        case .awaitingConfirmation: return try finish(message)
        case .finished: return .waiting
        }
    }

    /// Responder: the peer's CONNECT arrived.
    private mutating func answer(_ request: HandshakeMessage) throws(GnutellaError) -> Step {
        guard request.isConnectRequest else {
            throw .handshake("expected GNUTELLA CONNECT/0.6, got \(request.startLine)")
        }
        guard request.startLine.hasSuffix("/0.6") || request.startLine.hasSuffix("/0.7") else {
            phase = .finished
            let reply = HandshakeMessage(code: 503, reason: "Version not supported").encoded()
            return .refused(
                reply: reply, code: 503, reason: "version \(request.startLine)", tryUltrapeers: [])
        }
        peerHeaders = request
        let peerUltrapeer = Self.isTrue(request["X-Ultrapeer"])
        let refusal: String? =
            switch (configuration.ultrapeer, peerUltrapeer) {
            case (true, true): slots.ultrapeers > 0 ? nil : "No ultrapeer slots"
            case (true, false): slots.leaves > 0 ? nil : "No leaf slots"
            case (false, _): "I am a leaf"
            }
        var headers = commonHeaders()
        if !alternatives.isEmpty {
            headers.append(
                ("X-Try-Ultrapeers", alternatives.prefix(10).map(\.description).joined(separator: ",")))
        }
        if let refusal {
            phase = .finished
            let reply = HandshakeMessage(code: 503, reason: refusal, headers: headers).encoded()
            return .refused(reply: reply, code: 503, reason: refusal, tryUltrapeers: [])
        }
        if configuration.deflate, request.tokens("Accept-Encoding").contains("deflate") {
            headers.append(("Content-Encoding", "deflate"))
        }
        let response = HandshakeMessage(code: 200, reason: "OK", headers: headers)
        ourResponse = response
        phase = .awaitingConfirmation
        return .send(response.encoded())
    }

    /// Initiator: the responder's answer arrived.
    private mutating func confirm(_ response: HandshakeMessage) throws(GnutellaError) -> Step {
        guard let code = response.code else {
            throw .handshake("expected GNUTELLA/0.6 <code>, got \(response.startLine)")
        }
        let tries = Self.endpoints(response["X-Try-Ultrapeers"])
        phase = .finished
        guard code == 200 else {
            return .refused(
                reply: [], code: code, reason: Self.reason(response.startLine), tryUltrapeers: tries)
        }
        let peerUltrapeer = Self.isTrue(response["X-Ultrapeer"])
        let kind: ConnectionKind
        switch (configuration.ultrapeer, peerUltrapeer) {
        case (true, true): kind = .ultrapeerToUltrapeer
        case (false, true): kind = .leafToUltrapeer
        case (true, false): kind = .ultrapeerToLeaf
        case (false, false):
            let reply = HandshakeMessage(code: 503, reason: "Two leaves").encoded()
            return .refused(reply: reply, code: 503, reason: "both sides are leaves", tryUltrapeers: tries)
        }
        var headers: [(name: String, value: String)] = []
        let deflateOut = configuration.deflate && response.tokens("Accept-Encoding").contains("deflate")
        if deflateOut { headers.append(("Content-Encoding", "deflate")) }
        let deflateIn =
            configuration.deflate && response.tokens("Content-Encoding").contains("deflate")
        let reply = HandshakeMessage(code: 200, reason: "OK", headers: headers).encoded()
        let result = HandshakeResult(
            peerIsUltrapeer: peerUltrapeer, kind: kind, deflateOutgoing: deflateOut,
            deflateIncoming: deflateIn,
            userAgent: response["User-Agent"], peerListen: response["Listen-IP"].flatMap { Endpoint($0) },
            tryUltrapeers: tries)
        let leftover = buffer
        buffer = []
        return .open(reply: reply, result: result, leftover: leftover)
    }

    /// Responder: the initiator's confirmation arrived.
    private mutating func finish(_ confirmation: HandshakeMessage) throws(GnutellaError) -> Step {
        phase = .finished
        guard let code = confirmation.code else {
            throw .handshake("expected GNUTELLA/0.6 <code>, got \(confirmation.startLine)")
        }
        guard code == 200, let request = peerHeaders else {
            return .refused(
                reply: [], code: code, reason: Self.reason(confirmation.startLine), tryUltrapeers: [])
        }
        let peerUltrapeer = Self.isTrue(request["X-Ultrapeer"])
        let deflateOut = ourResponse?.tokens("Content-Encoding").contains("deflate") ?? false
        let deflateIn = configuration.deflate && confirmation.tokens("Content-Encoding").contains("deflate")
        let result = HandshakeResult(
            peerIsUltrapeer: peerUltrapeer, kind: peerUltrapeer ? .ultrapeerToUltrapeer : .ultrapeerToLeaf,
            deflateOutgoing: deflateOut, deflateIncoming: deflateIn, userAgent: request["User-Agent"],
            peerListen: request["Listen-IP"].flatMap { Endpoint($0) },
            tryUltrapeers: Self.endpoints(request["X-Try-Ultrapeers"]))
        let leftover = buffer
        buffer = []
        return .open(reply: [], result: result, leftover: leftover)
    }

    static func isTrue(_ value: String?) -> Bool { value?.lowercased() == "true" }

    static func reason(_ startLine: String) -> String {
        String(startLine.split(separator: " ", maxSplits: 2).dropFirst(2).first ?? "")
    }

    /// `host:port` items of a comma-separated header, at most 50, bad ones skipped.
    static func endpoints(_ value: String?) -> [Endpoint] {
        guard let value else { return [] }
        return value.split(separator: ",").prefix(50).compactMap { Endpoint($0.trimmingSpaces()) }
    }
}

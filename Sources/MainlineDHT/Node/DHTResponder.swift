import Crypto
import Kademlia
import PeerNet

/// Limits of the serving side of a DHT node, in one place.
public struct DHTConfiguration: Sendable {
    public var routing = RoutingConfiguration()
    /// Torrents whose peers this node stores, and peers per torrent (oldest dropped first).
    public var maxTorrents = 10_000
    public var maxPeersPerTorrent = 500
    /// How long an announced peer is kept (BEP 5 leaves it to the node; libtorrent: 30 minutes).
    public var peerTimeToLive: Duration = .seconds(30 * 60)
    /// Peers in one `get_peers` reply (a UDP packet holds about 100 IPv4 peers).
    public var maxPeersPerReply = 50
    /// Queries per second per source IP, and the burst allowed.
    public var queriesPerSecond: Double = 20
    public var queryBurst: Double = 50
    /// BEP 44 items stored for others, and how long one lives without being put again
    /// (BEP 44: at least two hours).
    public var maxItems = 1_000
    public var itemTimeToLive: Duration = .seconds(2 * 60 * 60)
    /// Client version sent in `v` (BEP 5: two letters and two bytes).
    public var version: [UInt8] = Array("PS".utf8) + [0, 1]

    public init() {}
}

/// The serving half of a mainline DHT node as a state machine: it takes a decoded query and
/// its source address at a time, updates the routing table and the peer store, and returns the
/// reply (or nothing, for rate-limited sources). Tokens, routing and storage follow BEP 5, with
/// BEP 42's `ip` in replies and BEP 43's read-only queriers kept out of the routing table.
public struct DHTResponder: Sendable {
    public let ownID: NodeID
    public let configuration: DHTConfiguration
    public internal(set) var routing: RoutingTable<Bits160, Endpoint>
    /// Contacts the table wants pinged before it evicts them (drained by ``DHTNode``).
    var evictionCandidates: [Contact<Bits160, Endpoint>] = []
    private var tokens: TokenSecrets
    private var limiter: RateLimiter<IPAddress>
    /// info-hash → peer → when it announced.
    private var peers: KeyValueStore<NodeID, [Endpoint: KademliaTime]>
    /// BEP 44 items by target.
    private var items: KeyValueStore<NodeID, DHTItem>
    public private(set) var droppedQueries = 0

    public init(
        ownID: NodeID, secret: SymmetricKey, configuration: DHTConfiguration = DHTConfiguration(),
        now: KademliaTime
    ) {
        self.ownID = ownID
        self.configuration = configuration
        routing = RoutingTable(ownID: ownID, configuration: configuration.routing, now: now)
        tokens = TokenSecrets(secret: secret)
        limiter = RateLimiter(rate: configuration.queriesPerSecond, burst: configuration.queryBurst)
        peers = KeyValueStore(
            capacity: configuration.maxTorrents, timeToLive: configuration.peerTimeToLive,
            republishInterval: .seconds(Int64.max / 4))
        items = KeyValueStore(
            capacity: configuration.maxItems, timeToLive: configuration.itemTimeToLive,
            republishInterval: .seconds(Int64.max / 4))
    }

    /// The BEP 44 item stored under `target`.
    public func storedItem(_ target: NodeID, now: KademliaTime) -> DHTItem? { items.get(target, now: now) }

    /// Forgets peers and items past their time to live (the driver calls this now and then).
    public mutating func expire(now: KademliaTime) {
        peers.expire(now: now)
        items.expire(now: now)
    }

    /// Rotates the token secret (the driver calls this every five minutes with fresh random bytes).
    public mutating func rotateSecret(_ secret: SymmetricKey) { tokens.rotate(to: secret) }

    /// Peers stored for `infoHash`, newest first.
    public func storedPeers(_ infoHash: NodeID, now: KademliaTime) -> [Endpoint] {
        (peers.get(infoHash, now: now) ?? [:])
            .filter { now - $0.value < configuration.peerTimeToLive }
            .sorted { $0.value > $1.value }.map(\.key)
    }

    /// Whether `source` may be sent a reply now (the per-IP rate limit every reply goes
    /// through, error replies included); counts a drop.
    public mutating func allowReply(to source: Endpoint, now: KademliaTime) -> Bool {
        guard limiter.allow(source.ip, now: now) else {
            droppedQueries += 1
            return false
        }
        return true
    }

    /// Whether `source` is a node that answered one of our queries (so not a forged address):
    /// only such a node may get a reply much larger than its query.
    public func isVerified(_ source: Endpoint, id: NodeID?) -> Bool {
        guard let id, let contact = routing.contact(id) else { return false }
        return contact.answered && contact.address == source
    }

    /// Serves one query from `source`; nil means drop it (rate limit).
    public mutating func handle(_ message: KRPCMessage, from source: Endpoint, now: KademliaTime)
        -> KRPCMessage?
    {
        guard case .query(let query) = message.body, let sender = message.senderID else { return nil }
        guard limiter.allow(source.ip, now: now) else {
            droppedQueries += 1
            return nil
        }
        if !message.readOnly {
            if case .pingBeforeEvicting(let oldest) = routing.insert(
                Contact(id: sender, address: source, lastSeen: now), now: now)
            {
                evictionCandidates.append(oldest)
            }
        }
        var response = KRPCResponse()
        switch query {
        case .ping:
            break
        case .findNode(let target):
            fillNodes(&response, near: target, source: source, now: now)
        case .getPeers(let infoHash):
            response.token = tokens.token(for: source.ip.bytes)
            let known = storedPeers(infoHash, now: now).filter { $0.isIPv6 == source.isIPv6 }
            if known.isEmpty {
                fillNodes(&response, near: infoHash, source: source, now: now)
            } else {
                response.values = Array(known.prefix(configuration.maxPeersPerReply))
            }
        case .announcePeer(let infoHash, let port, let token, let impliedPort):
            guard tokens.isValid(token, for: source.ip.bytes) else {
                return error(203, "bad token", replyingTo: message)
            }
            let announced = impliedPort ? source.port : port
            guard announced != 0 else {
                return error(203, "bad port", replyingTo: message)
            }
            store(Endpoint(ip: source.ip, port: announced), for: infoHash, now: now)
        case .get(let target, let seq):
            response.token = tokens.token(for: source.ip.bytes)
            fillNodes(&response, near: target, source: source, now: now)
            if let item = items.get(target, now: now) {
                response.seq = item.seq
                // BEP 44: a querier that has `seq` already gets only the number back.
                var fresh = true
                if let asked = seq, let have = item.seq { fresh = have > asked }
                if fresh {
                    response.value = item.value
                    response.key = item.key
                    response.signature = item.signature
                }
            }
        case .put(let put):
            guard tokens.isValid(put.token, for: source.ip.bytes) else {
                return error(203, "bad token", replyingTo: message)
            }
            let item: DHTItem
            if let key = put.key, let signature = put.signature, let seq = put.seq {
                item = DHTItem(
                    value: put.value, key: key, signature: signature, seq: seq, salt: put.salt ?? [])
            } else {
                item = DHTItem(immutable: put.value)
            }
            do {
                try item.validate()
                try accept(item, cas: put.cas, now: now)
            } catch let problem {
                return error(problem.code, problem.message, replyingTo: message)
            }
        }
        var reply = KRPCMessage(
            transactionID: message.transactionID, senderID: ownID, body: .response(response))
        reply.requesterAddress = source
        reply.version = configuration.version
        return reply
    }

    private func fillNodes(
        _ response: inout KRPCResponse, near target: NodeID, source: Endpoint, now: KademliaTime
    ) {
        let closest = routing.closest(to: target, count: configuration.routing.k * 2, now: now)
        response.nodes = Array(
            closest.filter { !$0.address.isIPv6 }.prefix(configuration.routing.k).map {
                NodeInfo(id: $0.id, address: $0.address)
            })
        response.nodes6 = Array(
            closest.filter { $0.address.isIPv6 }.prefix(configuration.routing.k).map {
                NodeInfo(id: $0.id, address: $0.address)
            })
    }

    private mutating func store(_ peer: Endpoint, for infoHash: NodeID, now: KademliaTime) {
        if peers.get(infoHash, now: now) == nil {
            guard peers.put(infoHash, [peer: now], now: now) else { return }  // full: not stored
            return
        }
        let limit = configuration.maxPeersPerTorrent
        peers.update(infoHash) { list in
            list[peer] = now
            if list.count > limit, let oldest = list.min(by: { $0.value < $1.value })?.key {
                list[oldest] = nil
            }
        }
    }

    /// Stores `item` unless it would replace a newer one (BEP 44: `seq` only grows; `cas` must
    /// name the stored `seq`).
    private mutating func accept(_ item: DHTItem, cas: Int64?, now: KademliaTime) throws(DHTItem.Problem) {
        let target = item.target
        if let stored = items.get(target, now: now), let storedSeq = stored.seq, let seq = item.seq {
            if let cas, cas != storedSeq { throw .casMismatch }
            if seq < storedSeq { throw .seqTooLow }
            if seq == storedSeq && stored.value != item.value { throw .seqTooLow }
        }
        items.put(target, item, now: now)
    }

    private func error(_ code: Int, _ text: String, replyingTo message: KRPCMessage) -> KRPCMessage {
        var reply = KRPCMessage(
            transactionID: message.transactionID, senderID: nil, body: .error(code: code, message: text))
        reply.version = configuration.version
        return reply
    }
}

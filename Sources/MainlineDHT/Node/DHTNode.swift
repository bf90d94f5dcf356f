import Bencode
import Crypto
import Kademlia
import PeerNet

/// A contact in the mainline DHT's routing table.
public typealias DHTContact = Contact<Bits160, Endpoint>

/// Identifies one operation a ``DHTNode`` runs (bootstrap, lookup, announce, get or put).
public struct DHTOperationID: Hashable, Sendable, CustomStringConvertible {
    public let value: Int
    public var description: String { "#\(value)" }
}

/// What a ``DHTNode`` is asked to do across the network.
public enum DHTOperation: Sendable, Hashable {
    /// Find the nodes closest to `target` (bootstrap and bucket refresh use it).
    case findNode(NodeID)
    /// Find peers of a torrent (BEP 5 `get_peers`), then announce ourselves to the closest
    /// nodes with `announce_peer` when `announcePort` is set (0 with `impliedPort`: the UDP
    /// source port, for peers behind NAT that use one port for both).
    case getPeers(NodeID, announcePort: UInt16?, impliedPort: Bool)
    /// Read a BEP 44 item: immutable under the SHA-1 of its value, mutable under the SHA-1 of
    /// its key and `salt`. The newest (highest `seq`) valid mutable item wins.
    case get(NodeID, salt: [UInt8])
    /// Store a BEP 44 item at the nodes closest to its target (found with `get`).
    case put(DHTItem)

    var target: NodeID {
        switch self {
        case .findNode(let target), .getPeers(let target, _, _), .get(let target, _): return target
        case .put(let item): return item.target
        }
    }
}

/// What an operation found.
public struct DHTResult: Sendable, Hashable {
    public var target: NodeID
    /// The closest nodes that answered, nearest first.
    public var closest: [NodeInfo] = []
    /// `getPeers`: peers of the torrent, in the order they were first heard of.
    public var peers: [Endpoint] = []
    /// `get`: the item found (the newest, for mutable items).
    public var item: DHTItem?
    /// `getPeers` with an announce, or `put`: nodes that accepted the `announce_peer`/`put`.
    public var stored = 0
    /// Hops from the first nodes asked to the closest node that answered.
    public var hops = 0
    public var queries = 0
    public var failures = 0
    public var elapsed: Duration = .zero
}

/// What a ``DHTNode`` wants done.
public enum DHTAction: Sendable, Hashable {
    case send([UInt8], to: Endpoint)
    case finished(DHTOperationID, DHTResult)
}

/// A whole mainline DHT node (BEP 5, 32, 42, 43, 44) as a state machine: datagrams and timer ticks
/// in, datagrams and finished operations out. It serves queries through ``DHTResponder`` and runs
/// its own operations as iterative ``Lookup``s over one table of outstanding transactions.
/// No sockets, clock or randomness inside: the driver (``DHTService``) or the simulator passes
/// them in.
public struct DHTNode: Sendable {
    /// Querier-side settings (the serving side's are in ``DHTConfiguration``).
    public struct Settings: Sendable {
        public var lookup = LookupConfiguration()
        /// BEP 43: send `ro=1` and answer no queries.
        public var readOnly = false
        /// Keep nodes whose ID does not match their IP (BEP 42) out of the routing table.
        public var enforceSecureIDs = false
        /// Refresh buckets, rotate token secrets and expire stored data on timer ticks.
        public var maintenance = true
        /// Most transactions outstanding at once (queries beyond it fail at once).
        public var maxPending = 2_048
        /// Prefer IPv6 contacts and `nodes6` (an IPv6 socket) instead of IPv4.
        public var ipv6 = false

        public init() {}
    }

    private enum Purpose: Sendable {
        case lookup(Int)
        case store(Int)
        case bootstrap(Int)
        case ping
        /// The routing table's least recently seen contact, pinged before a newcomer replaces it.
        case evict
    }

    private struct Pending: Sendable {
        var address: Endpoint
        var expected: NodeID?
        var purpose: Purpose
        var sentAt: KademliaTime
        /// A lookup or bootstrap query is sent once more after a timeout (a lost datagram should not cost the
        /// lookup its closest node).
        var query: KRPCQuery?
        var retried = false
    }

    private enum Phase: Sendable {
        case searching
        case storing(outstanding: Int)
    }

    private struct Running: Sendable {
        var operation: DHTOperation
        var lookup: Lookup<Bits160, Endpoint>
        var phase = Phase.searching
        var tokens: [NodeID: [UInt8]] = [:]
        var peers: [Endpoint] = []
        var peerSet: Set<Endpoint> = []
        var item: DHTItem?
        var stored = 0
        var bootstrapsOutstanding = 0
        var internalOnly = false
    }

    public private(set) var responder: DHTResponder
    public let settings: Settings
    private var pending: [UInt16: Pending] = [:]
    private var nextTransaction: UInt16 = 0
    private var running: [Int: Running] = [:]
    private var nextOperation = 0
    private var lastRotation: KademliaTime
    private var lastExpiry: KademliaTime
    private var externalVotes: [[UInt8]: Int] = [:]
    /// Datagrams dropped: undecodable, unsolicited replies, replies from the wrong address.
    public private(set) var dropped = 0

    public var ownID: NodeID { responder.ownID }
    public var routing: RoutingTable<Bits160, Endpoint> { responder.routing }
    /// Operations still running.
    public var activeOperations: Int { running.count }
    public var outstandingQueries: Int { pending.count }

    public init(
        ownID: NodeID, secret: SymmetricKey, configuration: DHTConfiguration = DHTConfiguration(),
        settings: Settings = Settings(), now: KademliaTime
    ) {
        responder = DHTResponder(ownID: ownID, secret: secret, configuration: configuration, now: now)
        self.settings = settings
        lastRotation = now
        lastExpiry = now
    }

    /// Our address as most responders saw it (BEP 42's `ip`), once at least two agree.
    public var externalIP: [UInt8]? {
        guard let best = externalVotes.max(by: { $0.value < $1.value }), best.value >= 2 else { return nil }
        return best.key
    }

    // MARK: Operations

    /// Joins the network through `addresses` (nodes whose IDs we do not know yet, such as
    /// `--bootstrap` hosts or a saved table): asks each for the nodes near our own ID, then looks
    /// our own ID up through what they name, which fills the routing table (BEP 5).
    public mutating func bootstrap(from addresses: [Endpoint], now: KademliaTime) -> (
        DHTOperationID, [DHTAction]
    ) {
        let (id, first) = start(.findNode(ownID), now: now)
        var actions = first
        for address in Set(addresses) where !address.isUnusable {
            guard let message = query(.findNode(target: ownID)) else { continue }
            if let sent = send(message, to: address, expected: nil, purpose: .bootstrap(id.value), now: now) {
                actions.append(sent)
                running[id.value]?.bootstrapsOutstanding += 1
            }
        }
        return (id, actions + finishIfDone(id.value, now: now))
    }

    /// Starts `operation`, seeded with the closest contacts in the routing table; it reports
    /// `.finished` when done (at once, among the actions returned, if there is nobody to ask).
    public mutating func run(_ operation: DHTOperation, now: KademliaTime) -> (DHTOperationID, [DHTAction]) {
        let (id, actions) = start(operation, now: now)
        return (id, actions + finishIfDone(id.value, now: now))
    }

    private mutating func start(_ operation: DHTOperation, now: KademliaTime) -> (DHTOperationID, [DHTAction])
    {
        nextOperation += 1
        let id = nextOperation
        let seeds = closestContacts(to: operation.target, now: now)
        var lookup = Lookup(target: operation.target, seeds: seeds, configuration: settings.lookup, now: now)
        let first = lookup.start(now: now)
        running[id] = Running(operation: operation, lookup: lookup)
        if case .put(let item) = operation { running[id]?.item = item }
        return (DHTOperationID(value: id), perform(first, for: id, now: now))
    }

    /// Puts a node in the routing table as if it had answered (a node known out of band: the
    /// simulator's ready-made network, tests).
    public mutating func addContact(_ node: NodeInfo, now: KademliaTime) {
        learn(node.id, at: node.address, now: now)
        responder.evictionCandidates.removeAll()
    }

    /// Pings `address` (a peer's BEP 5 `port` message, a node named by a user): if it answers,
    /// it joins the routing table.
    public mutating func ping(_ address: Endpoint, now: KademliaTime) -> [DHTAction] {
        guard !address.isUnusable, let message = query(.ping),
            let sent = send(message, to: address, expected: nil, purpose: .ping, now: now)
        else { return [] }
        return [sent]
    }

    // MARK: Events

    /// A datagram arrived from `source`.
    public mutating func received(_ packet: [UInt8], from source: Endpoint, now: KademliaTime)
        -> [DHTAction]
    {
        let message: KRPCMessage
        do {
            message = try KRPCCodec.decode(packet)
        } catch {
            dropped += 1
            // A query we could read the transaction of gets BEP 5's error back; anything else is dropped.
            guard let transaction = error.transactionID, error.isQuery, !settings.readOnly,
                responder.allowReply(to: source, now: now)
            else { return [] }
            var reply = KRPCMessage(
                transactionID: transaction, senderID: nil,
                body: .error(code: error.code, message: error.description))
            reply.version = responder.configuration.version
            var bytes = KRPCCodec.encode(reply)
            if bytes.count > Self.maxAmplification * packet.count {
                // Never a reply much larger than the query to an address nobody verified.
                reply.body = .error(code: error.code, message: "invalid query")
                bytes = KRPCCodec.encode(reply)
                guard bytes.count <= Self.maxAmplification * packet.count else { return [] }
            }
            return [.send(bytes, to: source)]
        }
        switch message.body {
        case .query:
            guard !settings.readOnly else { return [] }
            if settings.enforceSecureIDs, let sender = message.senderID,
                !SecureNodeID.isValid(sender, ip: source.ip.bytes)
            {
                var readOnly = message
                readOnly.readOnly = true  // answered, but kept out of the table
                return reply(to: readOnly, from: source, queryLength: packet.count, now: now)
            }
            return reply(to: message, from: source, queryLength: packet.count, now: now)
        case .response(let response):
            return handleReply(message, response: response, from: source, now: now)
        case .error:
            return handleReply(message, response: nil, from: source, now: now)
        }
    }

    /// Time passed: fails overdue transactions and, with ``Settings/maintenance``, refreshes
    /// stale buckets (BEP 5: 15 minutes), rotates the token secret (5 minutes) and expires peers
    /// and items.
    public mutating func timerFired(now: KademliaTime, random: inout some RandomNumberGenerator)
        -> [DHTAction]
    {
        var actions: [DHTAction] = []
        let overdue = pending.filter { now - $0.value.sentAt >= settings.lookup.timeout }
        for (transaction, entry) in overdue.sorted(by: { $0.key < $1.key }) {
            pending[transaction] = nil
            if !entry.retried, let body = entry.query, let message = query(body),
                let sent = send(
                    message, to: entry.address, expected: entry.expected, purpose: entry.purpose, now: now,
                    retried: true)
            {
                // Asked again; the lookup asks the next candidate meanwhile, and still takes
                // this one's answer if it comes.
                if let expected = entry.expected { responder.routing.failed(expected, now: now) }
                actions.append(sent)
                if case .lookup(let id) = entry.purpose, let expected = entry.expected,
                    var lookup = running[id]?.lookup
                {
                    let next = lookup.stalled(expected, now: now)
                    running[id]?.lookup = lookup
                    actions += perform(next, for: id, now: now)
                }
                continue
            }
            actions += failed(entry, now: now)
        }
        guard settings.maintenance else { return actions }
        if now - lastRotation >= .seconds(300) {
            lastRotation = now
            var key = [UInt8](repeating: 0, count: 32)
            for index in key.indices { key[index] = UInt8.random(in: 0...255, using: &random) }
            responder.rotateSecret(SymmetricKey(data: key))
        }
        if now - lastExpiry >= .seconds(60) {
            lastExpiry = now
            responder.expire(now: now)
        }
        if running.isEmpty && routing.count > 0 {
            for bucket in routing.bucketsNeedingRefresh(now: now).prefix(2) {
                responder.routing.markRefreshed(bucket, now: now)
                let target = ownID.randomInBucket(bucket, using: &random)
                let (id, started) = start(.findNode(target), now: now)
                running[id.value]?.internalOnly = true
                actions += started + finishIfDone(id.value, now: now)
            }
        }
        return actions
    }

    /// The earliest time ``timerFired(now:random:)`` has work to do.
    public var nextDeadline: KademliaTime? {
        pending.values.map { $0.sentAt + settings.lookup.timeout }.min()
    }

    // MARK: Saving the table

    /// The routing table's contacts, to save and bootstrap from after a restart.
    public var snapshot: RoutingSnapshot {
        var snapshot = RoutingSnapshot(
            ownID: ownID, nodes: routing.contacts.map { NodeInfo(id: $0.id, address: $0.address) })
        snapshot.externalIP = externalIP
        return snapshot
    }

    // MARK: Internals

    private func closestContacts(to target: NodeID, now: KademliaTime) -> [DHTContact] {
        let all = routing.closest(to: target, count: settings.lookup.k * 4, now: now)
        return Array(all.filter { $0.address.isIPv6 == settings.ipv6 }.prefix(settings.lookup.k * 2))
    }

    private func query(_ query: KRPCQuery) -> KRPCMessage? {
        var message = KRPCMessage(transactionID: [], senderID: ownID, body: .query(query))
        message.readOnly = settings.readOnly
        message.version = responder.configuration.version
        return message
    }

    private mutating func send(
        _ message: KRPCMessage, to address: Endpoint, expected: NodeID?, purpose: Purpose,
        now: KademliaTime, retried: Bool = false
    ) -> DHTAction? {
        guard pending.count < settings.maxPending else { return nil }
        var message = message
        repeat { nextTransaction &+= 1 } while pending[nextTransaction] != nil
        message.transactionID = [UInt8(nextTransaction >> 8), UInt8(nextTransaction & 0xFF)]
        var entry = Pending(address: address, expected: expected, purpose: purpose, sentAt: now)
        switch purpose {
        case .lookup, .bootstrap:
            if case .query(let body) = message.body { entry.query = body }
        case .store, .ping, .evict:
            break
        }
        entry.retried = retried
        pending[nextTransaction] = entry
        return .send(KRPCCodec.encode(message), to: address)
    }

    /// A reply to an address that never answered us is at most this many times its query's
    /// size (a forged source cannot turn us into an amplifier); larger ones are trimmed.
    static let maxAmplification = 4

    private mutating func reply(
        to message: KRPCMessage, from source: Endpoint, queryLength: Int, now: KademliaTime
    ) -> [DHTAction] {
        var actions: [DHTAction] = []
        let verified = responder.isVerified(source, id: message.senderID)
        if var reply = responder.handle(message, from: source, now: now) {
            var bytes = KRPCCodec.encode(reply)
            let budget = Self.maxAmplification * queryLength
            if !verified, bytes.count > budget, case .response(var response) = reply.body {
                // Fewer peers, then fewer nodes, then no item, until it fits.
                while bytes.count > budget,
                    !(response.values.isEmpty && response.nodes.isEmpty
                        && response.nodes6.isEmpty && response.value == nil)
                {
                    if !response.values.isEmpty {
                        response.values.removeLast(max(1, response.values.count / 4))
                    } else if !response.nodes6.isEmpty {
                        response.nodes6.removeLast()
                    } else if !response.nodes.isEmpty {
                        response.nodes.removeLast()
                    } else {
                        (response.value, response.key, response.signature) = (nil, nil, nil)
                    }
                    reply.body = .response(response)
                    bytes = KRPCCodec.encode(reply)
                }
            }
            if verified || bytes.count <= budget { actions.append(.send(bytes, to: source)) }
        }
        actions += pingEvictionCandidates(now: now)
        return actions
    }

    private mutating func pingEvictionCandidates(now: KademliaTime) -> [DHTAction] {
        let candidates = responder.evictionCandidates
        responder.evictionCandidates.removeAll()
        return candidates.compactMap { contact in
            guard let message = query(.ping) else { return nil }
            return send(message, to: contact.address, expected: contact.id, purpose: .evict, now: now)
        }
    }

    private mutating func learn(_ contact: NodeID, at address: Endpoint, now: KademliaTime) {
        if settings.enforceSecureIDs && !SecureNodeID.isValid(contact, ip: address.ip.bytes) { return }
        var heard = DHTContact(id: contact, address: address, lastSeen: now)
        heard.answered = true
        if case .pingBeforeEvicting(let oldest) = responder.routing.insert(heard, now: now) {
            responder.evictionCandidates.append(oldest)
        }
    }

    private mutating func handleReply(
        _ message: KRPCMessage, response: KRPCResponse?, from source: Endpoint, now: KademliaTime
    ) -> [DHTAction] {
        guard message.transactionID.count == 2 else {
            dropped += 1
            return []
        }
        let transaction = UInt16(message.transactionID[0]) << 8 | UInt16(message.transactionID[1])
        guard let entry = pending[transaction], entry.address == source else {
            dropped += 1  // unsolicited, late, or spoofed from another address
            return []
        }
        pending[transaction] = nil
        guard let response, let sender = message.senderID else {
            return failed(entry, now: now, routingFailure: false)
        }
        if let expected = entry.expected, expected != sender {
            // Not the node we asked for: the contact is stale; the newcomer is still a node.
            responder.routing.remove(expected)
            learn(sender, at: source, now: now)
            return failed(entry, now: now, routingFailure: false) + pingEvictionCandidates(now: now)
        }
        learn(sender, at: source, now: now)
        if let seen = message.requesterAddress { externalVotes[seen.ip.bytes, default: 0] += 1 }
        if externalVotes.count > 64 { externalVotes = externalVotes.filter { $0.value > 1 } }
        var actions: [DHTAction] = []
        switch entry.purpose {
        case .ping, .evict:
            break
        case .bootstrap(let id):
            guard running[id] != nil else { break }
            running[id]?.bootstrapsOutstanding -= 1
            let seeds = [DHTContact(id: sender, address: source, lastSeen: now)] + named(response, now: now)
            if var lookup = running[id]?.lookup {
                let next = lookup.add(seeds: seeds, now: now)
                running[id]?.lookup = lookup
                actions += perform(next, for: id, now: now)
            }
            actions += finishIfDone(id, now: now)
        case .lookup(let id):
            guard var state = running[id] else { break }
            absorb(response, from: sender, into: &state)
            let next = state.lookup.answered(by: sender, nodes: named(response, now: now), now: now)
            running[id] = state
            actions += perform(next, for: id, now: now)
            actions += finishIfDone(id, now: now)
        case .store(let id):
            if case .response = message.body { running[id]?.stored += 1 }
            actions += storeAnswered(id, now: now)
        }
        return actions + pingEvictionCandidates(now: now)
    }

    /// Nodes a reply names, of our address family, as lookup candidates.
    private func named(_ response: KRPCResponse, now: KademliaTime) -> [DHTContact] {
        let infos = settings.ipv6 ? response.nodes6 : response.nodes
        return infos.prefix(settings.lookup.k * 2).compactMap { info in
            guard info.id != ownID, !info.address.isUnusable else { return nil }
            return DHTContact(id: info.id, address: info.address, lastSeen: now)
        }
    }

    /// Takes what a reply carries besides nodes: tokens, peers, items.
    private func absorb(_ response: KRPCResponse, from sender: NodeID, into state: inout Running) {
        if let token = response.token { state.tokens[sender] = token }
        switch state.operation {
        case .getPeers:
            for peer in response.values where state.peers.count < 2_000 && !peer.isUnusable {
                if state.peerSet.insert(peer).inserted { state.peers.append(peer) }
            }
        case .get(let target, let salt):
            guard let value = response.value else { break }
            let item: DHTItem
            if let key = response.key, let signature = response.signature, let seq = response.seq {
                item = DHTItem(value: value, key: key, signature: signature, seq: seq, salt: salt)
            } else {
                item = DHTItem(immutable: value)
            }
            guard item.target == target, (try? item.validate()) != nil else { break }
            if let have = state.item, let haveSeq = have.seq, let seq = item.seq, seq <= haveSeq { break }
            state.item = item
        case .findNode, .put:
            break
        }
    }

    private mutating func perform(
        _ lookupActions: [LookupAction<Bits160, Endpoint>], for id: Int, now: KademliaTime
    )
        -> [DHTAction]
    {
        guard let operation = running[id]?.operation else { return [] }
        var actions: [DHTAction] = []
        var refused: [NodeID] = []
        for case .query(let contact) in lookupActions {
            let body: KRPCQuery
            switch operation {
            case .findNode(let target): body = .findNode(target: target)
            case .getPeers(let hash, _, _): body = .getPeers(infoHash: hash)
            case .get(let target, _): body = .get(target: target, seq: nil)
            case .put(let item): body = .get(target: item.target, seq: nil)
            }
            if let message = query(body),
                let sent = send(
                    message, to: contact.address, expected: contact.id, purpose: .lookup(id), now: now)
            {
                actions.append(sent)
            } else {
                refused.append(contact.id)
            }
        }
        for contact in refused {
            guard var lookup = running[id]?.lookup else { break }
            let next = lookup.failed(contact, now: now)
            running[id]?.lookup = lookup
            actions += perform(next, for: id, now: now)
        }
        return actions
    }

    private mutating func failed(_ entry: Pending, now: KademliaTime, routingFailure: Bool = true)
        -> [DHTAction]
    {
        if routingFailure, let expected = entry.expected { responder.routing.failed(expected, now: now) }
        switch entry.purpose {
        case .ping:
            return []
        case .evict:
            // Silent when asked: make room for the newcomer waiting in the replacement cache.
            if let expected = entry.expected { responder.routing.evict(expected, now: now) }
            return []
        case .bootstrap(let id):
            running[id]?.bootstrapsOutstanding -= 1
            return finishIfDone(id, now: now)
        case .lookup(let id):
            guard var lookup = running[id]?.lookup, let expected = entry.expected else { return [] }
            let next = lookup.failed(expected, now: now)
            running[id]?.lookup = lookup
            return perform(next, for: id, now: now) + finishIfDone(id, now: now)
        case .store(let id):
            return storeAnswered(id, now: now)
        }
    }

    private mutating func storeAnswered(_ id: Int, now: KademliaTime) -> [DHTAction] {
        guard case .storing(let outstanding) = running[id]?.phase else { return [] }
        running[id]?.phase = .storing(outstanding: outstanding - 1)
        return outstanding - 1 <= 0 ? finish(id, now: now) : []
    }

    /// Ends the search phase once the lookup has converged; announces or puts if asked to.
    private mutating func finishIfDone(_ id: Int, now: KademliaTime) -> [DHTAction] {
        guard let state = running[id], case .searching = state.phase, state.bootstrapsOutstanding <= 0,
            state.lookup.isFinished
        else { return [] }
        let request: (NodeID, [UInt8]) -> KRPCQuery?
        switch state.operation {
        case .getPeers(let hash, let port?, let implied):
            request = { _, token in
                .announcePeer(infoHash: hash, port: port, token: token, impliedPort: implied)
            }
        case .put(let item):
            request = { _, token in
                var put = PutRequest(token: token, value: item.value)
                put.key = item.key
                put.signature = item.signature
                put.seq = item.seq
                put.salt = item.salt.isEmpty ? nil : item.salt
                return .put(put)
            }
        default:
            return finish(id, now: now)
        }
        var actions: [DHTAction] = []
        for contact in state.lookup.closest {
            guard let token = state.tokens[contact.id], let body = request(contact.id, token),
                let message = query(body),
                let sent = send(
                    message, to: contact.address, expected: contact.id, purpose: .store(id), now: now)
            else { continue }
            actions.append(sent)
        }
        guard !actions.isEmpty else { return finish(id, now: now) }
        running[id]?.phase = .storing(outstanding: actions.count)
        return actions
    }

    private mutating func finish(_ id: Int, now: KademliaTime) -> [DHTAction] {
        guard let state = running.removeValue(forKey: id) else { return [] }
        // Transactions still out for it are answered into the void.
        for (transaction, entry) in pending {
            switch entry.purpose {
            case .lookup(id), .store(id), .bootstrap(id): pending[transaction]?.purpose = .ping
            default: break
            }
        }
        guard !state.internalOnly else { return [] }
        var result = DHTResult(target: state.operation.target)
        result.closest = state.lookup.closest.map { NodeInfo(id: $0.id, address: $0.address) }
        result.peers = state.peers
        result.item = state.item
        result.stored = state.stored
        result.hops = state.lookup.hops
        result.queries = state.lookup.queriesSent
        result.failures = state.lookup.failures
        result.elapsed = now - state.lookup.startedAt
        return [.finished(DHTOperationID(value: id), result)]
    }
}

extension Endpoint {
    /// Port 0 or an unspecified address: nothing can be sent there.
    var isUnusable: Bool { port == 0 || ip.isUnspecified }
}

/// A routing table saved to disk (BEP 5 suggests keeping it across restarts): our ID and the
/// contacts, bencoded as `id`, `nodes` and `nodes6` in the compact forms of KRPC.
public struct RoutingSnapshot: Sendable, Hashable {
    public var ownID: NodeID
    public var nodes: [NodeInfo]
    /// Our address as other nodes reported it (BEP 42's `ip`), for choosing a secure ID.
    public var externalIP: [UInt8]?

    public init(ownID: NodeID, nodes: [NodeInfo]) {
        self.ownID = ownID
        self.nodes = nodes
    }

    public func encoded() -> [UInt8] {
        let v4 = nodes.filter { !$0.address.isIPv6 }.flatMap { $0.id.bytes + $0.address.compact }
        let v6 = nodes.filter { $0.address.isIPv6 }.flatMap { $0.id.bytes + $0.address.compact }
        var dictionary: [[UInt8]: BencodeValue] = [
            Array("id".utf8): .bytes(ownID.bytes), Array("nodes".utf8): .bytes(v4),
            Array("nodes6".utf8): .bytes(v6),
        ]
        if let externalIP { dictionary[Array("ip".utf8)] = .bytes(externalIP) }
        return BencodeValue.dictionary(dictionary).encoded()
    }

    /// Reads a saved table; nil for anything that is not one (a damaged file is not an error
    /// worth stopping for: the node bootstraps afresh).
    public init?(decoding bytes: [UInt8]) {
        let limits = BencodeDecoder.Limits(maxDepth: 4, maxElements: 16, maxInputSize: 1 << 20)
        guard let value = try? BencodeDecoder(mode: .lenient, limits: limits).decode(bytes),
            let id = value["id"]?.bytes.flatMap({ NodeID(bytes: $0) })
        else { return nil }
        ownID = id
        nodes =
            KRPCCodec.compactNodes(value["nodes"]?.bytes ?? [], ipLength: 4)
            + KRPCCodec.compactNodes(value["nodes6"]?.bytes ?? [], ipLength: 16)
        if let ip = value["ip"]?.bytes, ip.count == 4 || ip.count == 16 { externalIP = ip }
    }

    /// The ID to start with: the saved one, unless our external IP is known (and public) and the
    /// saved ID does not match it, then a fresh BEP 42 ID for that IP.
    public func startingID(using random: inout some RandomNumberGenerator) -> NodeID {
        guard let ip = externalIP, !SecureNodeID.isExempt(ip), !SecureNodeID.isValid(ownID, ip: ip) else {
            return ownID
        }
        let bytes = (0..<20).map { _ in UInt8.random(in: 0...255, using: &random) }
        return SecureNodeID.make(ip: ip, r: bytes[19], random: bytes) ?? ownID
    }
}

import Kademlia
import Multiformats
import PeerCrypto

/// A position in the kad-dht's 256-bit keyspace.
public typealias KadID = KademliaID<Bits256>

extension KademliaID where Width == Bits256 {
    /// A key's position: SHA-256 of its bytes (kad-dht spec, "Distance"). Peer IDs are keyed by
    /// their multihash bytes, provider records by the content's multihash, values by their key.
    public static func kad(_ key: [UInt8]) -> KadID {
        KadID(bytes: Multihash.hash(key, with: .sha256).digest) ?? .zero
    }

    public static func kad(_ peer: PeerID) -> KadID { kad(peer.multihash.bytes) }
}

/// Which records a kad-dht node accepts (kad-dht spec, "Entry validation"): `/pk/<peer ID>` holds
/// the public key protobuf whose peer ID that is; every other namespace is refused.
public enum KadRecordValidator {
    public static let publicKeyPrefix = Array("/pk/".utf8)

    /// The key under which `peer`'s public key is stored.
    public static func publicKeyKey(_ peer: PeerID) -> [UInt8] { publicKeyPrefix + peer.multihash.bytes }

    /// Checks that `value` may be stored under `key`.
    public static func validate(key: [UInt8], value: [UInt8]) throws(KadError) {
        guard key.starts(with: publicKeyPrefix) else {
            let namespace = key.dropFirst().split(separator: UInt8(ascii: "/"), maxSplits: 1).first
            let name = namespace.flatMap { String(validating: Array($0.prefix(32)), as: UTF8.self) } ?? "?"
            throw .invalidRecord("the namespace /\(name)/ is not one this node validates (only /pk/)")
        }
        let raw = Array(key.dropFirst(publicKeyPrefix.count))
        var offset = 0
        guard let multihash = try? Multihash.read(raw, at: &offset), offset == raw.count,
            let peer = try? PeerID(multihash: multihash)
        else { throw .invalidRecord("a /pk/ key that is not a peer ID") }
        guard let key = try? PublicKey(bytes: value) else {
            throw .invalidRecord("the value under /pk/\(peer) is not a public key protobuf")
        }
        guard peer.matches(key) else {
            throw .invalidRecord("the public key under /pk/\(peer) is \(PeerID(publicKey: key))'s")
        }
    }
}

/// The state of a kad-dht node without its I/O: the routing table (only peers in server mode,
/// as identify shows), the addresses of peers it names, the provider records and values it
/// stores for others, and the per-source rate limit; it answers requests (``respond(to:from:source:now:)``)
/// as go-libp2p-kad-dht does. Every store is bounded; time comes in.
public struct KadNode: Sendable {
    public struct Configuration: Sendable {
        /// Bucket size and the peers a response names (kad-dht spec: 20).
        public var k = 20
        /// Whether this node answers requests and is announced in identify (server mode), or
        /// only asks (client mode: other nodes keep it out of their routing tables).
        public var server = true
        /// How long a provider record lives (go-libp2p-kad-dht: 48 hours).
        public var providerValidity: Duration = .seconds(48 * 3600)
        /// How often this node announces what it provides again (go-libp2p-kad-dht: 22 hours).
        public var republishInterval: Duration = .seconds(22 * 3600)
        /// How long a stored value lives (go-libp2p-kad-dht's MaxRecordAge: 36 hours).
        public var recordValidity: Duration = .seconds(36 * 3600)
        public var maxProviderKeys = 50_000
        public var maxProvidersPerKey = 64
        public var maxRecords = 10_000
        public var maxKnownPeers = 10_000
        /// Requests a second from one peer, and the burst (Kubo sends over a hundred at once
        /// when it starts: its routing-table refresh and first lookups).
        public var requestsPerSecond: Double = 20
        public var requestBurst: Double = 300
        /// Requests a second from one IP, all its peers together (peer IDs cost nothing to
        /// make; peers on one host or behind one NAT share an IP), and the burst.
        public var requestsPerSecondPerIP: Double = 200
        public var requestBurstPerIP: Double = 1_000

        public init() {}
    }

    public typealias Contact = Kademlia.Contact<Bits256, PeerID>

    public let ownPeer: PeerID
    public let ownID: KadID
    public let configuration: Configuration
    /// Where this node is reached (its listen addresses), named when it names itself.
    public var ownAddresses: [Multiaddr] = []
    public private(set) var routing: RoutingTable<Bits256, PeerID>
    /// Addresses of peers heard of (the peerbook), at most ``Configuration/maxKnownPeers``.
    public private(set) var addresses: [PeerID: [Multiaddr]] = [:]
    private var providers: KeyValueStore<[UInt8], [PeerID: KademliaTime]>
    private var records: KeyValueStore<[UInt8], KadMessage.Record>
    /// Keys this node provides itself (announced again every republish interval).
    private var provided: KeyValueStore<[UInt8], Bool>
    private var peerLimiter: RateLimiter<PeerID>
    private var ipLimiter: RateLimiter<[UInt8]>

    public init(ownPeer: PeerID, configuration: Configuration = Configuration(), now: KademliaTime) {
        self.ownPeer = ownPeer
        ownID = .kad(ownPeer)
        self.configuration = configuration
        var routingConfiguration = RoutingConfiguration()
        routingConfiguration.k = configuration.k
        routing = RoutingTable(ownID: ownID, configuration: routingConfiguration, now: now)
        providers = KeyValueStore(
            capacity: configuration.maxProviderKeys, timeToLive: configuration.providerValidity,
            republishInterval: configuration.republishInterval)
        records = KeyValueStore(
            capacity: configuration.maxRecords, timeToLive: configuration.recordValidity,
            republishInterval: configuration.republishInterval)
        provided = KeyValueStore(
            capacity: configuration.maxProviderKeys, timeToLive: configuration.providerValidity,
            republishInterval: configuration.republishInterval)
        peerLimiter = RateLimiter(rate: configuration.requestsPerSecond, burst: configuration.requestBurst)
        ipLimiter = RateLimiter(
            rate: configuration.requestsPerSecondPerIP, burst: configuration.requestBurstPerIP)
    }

    // MARK: Peers

    /// Remembers where `peer` is; with `server` (identify lists `/ipfs/kad/1.0.0`) it also
    /// joins the routing table. `answered`: it answered one of our queries.
    public mutating func learned(
        _ peer: PeerID, addresses new: [Multiaddr], server: Bool, answered: Bool = false, now: KademliaTime
    ) {
        guard peer != ownPeer else { return }
        remember(peer, new)
        guard server else { return }
        var contact = Contact(id: .kad(peer), address: peer, lastSeen: now)
        contact.answered = answered
        routing.insert(contact, now: now)
    }

    /// Records the peers a response named (their addresses only: they join the routing table
    /// when they answer or identify as servers).
    public mutating func heard(of peers: [KadMessage.Peer]) {
        for peer in peers where peer.id != ownPeer { remember(peer.id, peer.addresses) }
    }

    private mutating func remember(_ peer: PeerID, _ new: [Multiaddr]) {
        let usable = Array(new.filter { !$0.components.isEmpty }.prefix(16))
        guard !usable.isEmpty else { return }
        if addresses[peer] == nil, addresses.count >= configuration.maxKnownPeers {
            // Forget peers not in the routing table first.
            let routed = Set(routing.contacts.map(\.address))
            if let victim = addresses.keys.first(where: { !routed.contains($0) }) { addresses[victim] = nil }
            guard addresses.count < configuration.maxKnownPeers else { return }
        }
        var merged = usable
        for old in addresses[peer] ?? [] where !merged.contains(old) && merged.count < 16 {
            merged.append(old)
        }
        addresses[peer] = merged
    }

    /// A query to `peer` failed or timed out.
    public mutating func failed(_ peer: PeerID, now: KademliaTime) { routing.failed(.kad(peer), now: now) }

    /// A peer that broke the protocol: out of the routing table.
    public mutating func remove(_ peer: PeerID) { routing.remove(.kad(peer)) }

    /// The `count` routing-table peers closest to `key`, as the wire names them.
    public func closestPeers(to key: KadID, count: Int? = nil, excluding: PeerID? = nil, now: KademliaTime)
        -> [KadMessage.Peer]
    {
        routing.closest(to: key, count: (count ?? configuration.k) + 1, now: now)
            .filter { $0.address != excluding }
            .prefix(count ?? configuration.k)
            .map { KadMessage.Peer(id: $0.address, addresses: addresses[$0.address] ?? []) }
    }

    /// Seeds for a lookup of `key`: the closest routing-table contacts.
    public func seeds(for key: KadID, now: KademliaTime) -> [Contact] {
        routing.closest(to: key, count: configuration.k, now: now)
    }

    // MARK: Provider records and values

    /// Stores `peer` as a provider of `key` (a multihash's bytes) until the validity ends.
    @discardableResult
    public mutating func addProvider(
        _ key: [UInt8], _ peer: PeerID, addresses new: [Multiaddr], now: KademliaTime
    )
        -> Bool
    {
        remember(peer, new)
        var set = providers.get(key, now: now) ?? [:]
        set = set.filter { now - $0.value < configuration.providerValidity }
        if set[peer] == nil, set.count >= configuration.maxProvidersPerKey {
            guard let oldest = set.min(by: { $0.value < $1.value }) else { return false }
            set[oldest.key] = nil
        }
        set[peer] = now
        return providers.put(key, set, now: now)
    }

    /// The live providers of `key`, newest first.
    public func providers(of key: [UInt8], now: KademliaTime) -> [KadMessage.Peer] {
        var list = (providers.get(key, now: now) ?? [:])
            .filter { now - $0.value < configuration.providerValidity }
            .sorted { $0.value > $1.value }
            .map {
                KadMessage.Peer(
                    id: $0.key, addresses: $0.key == ownPeer ? ownAddresses : addresses[$0.key] ?? [])
            }
        if provided.get(key, now: now) != nil, !list.contains(where: { $0.id == ownPeer }) {
            list.insert(KadMessage.Peer(id: ownPeer, addresses: ownAddresses), at: 0)
        }
        return Array(list.prefix(configuration.k))
    }

    /// Marks `key` as provided by this node (answered locally and republished).
    public mutating func provide(_ key: [UInt8], now: KademliaTime) {
        provided.put(key, true, ours: true, now: now)
    }

    /// Keys this node provides whose announcement is due again.
    public mutating func dueForRepublish(now: KademliaTime) -> [[UInt8]] {
        provided.dueForRepublish(now: now).map(\.0)
    }

    /// Stores a validated record (this node's own ones too).
    public mutating func store(_ record: KadMessage.Record, now: KademliaTime) throws(KadError) {
        try KadRecordValidator.validate(key: record.key, value: record.value)
        var kept = record
        kept.timeReceived = ""
        guard records.put(record.key, kept, now: now) else {
            throw .tooMany("stored records", limit: configuration.maxRecords)
        }
    }

    public func record(_ key: [UInt8], now: KademliaTime) -> KadMessage.Record? { records.get(key, now: now) }

    /// Drops provider records and values past their validity.
    public mutating func expire(now: KademliaTime) {
        providers.expire(now: now)
        records.expire(now: now)
    }

    // MARK: Serving

    /// The response to `request` from `peer` (whose connection comes from `source`, an IP's
    /// bytes), within the per-peer and per-IP rate limits; nil when none is sent (ADD_PROVIDER has no response). Throws for a request that
    /// is refused: the driver resets the stream.
    public mutating func respond(
        to request: KadMessage, from peer: PeerID, source: [UInt8], now: KademliaTime
    )
        throws(KadError) -> KadMessage?
    {
        guard ipLimiter.allow(source, now: now), peerLimiter.allow(peer, now: now) else { throw .rateLimited }
        switch request.kind {
        case .ping:
            return KadMessage(kind: .ping)
        case .findNode:
            var closer: [KadMessage.Peer]
            if request.key == ownPeer.multihash.bytes {
                closer = [KadMessage.Peer(id: ownPeer, addresses: ownAddresses)]
            } else {
                closer = closestPeers(to: .kad(request.key), excluding: peer, now: now)
                // The target itself, if this node knows where it is (go-libp2p-kad-dht does too).
                var offset = 0
                if let multihash = try? Multihash.read(request.key, at: &offset), offset == request.key.count,
                    let target = try? PeerID(multihash: multihash), let known = addresses[target],
                    !closer.contains(where: { $0.id == target })
                {
                    closer.insert(KadMessage.Peer(id: target, addresses: known), at: 0)
                    closer = Array(closer.prefix(configuration.k))
                }
            }
            return KadMessage(kind: .findNode, key: request.key, closerPeers: closer)
        case .getProviders:
            guard !request.key.isEmpty, request.key.count <= 80 else {
                throw .malformed("a GET_PROVIDERS key of \(request.key.count) bytes", offset: 0)
            }
            return KadMessage(
                kind: .getProviders, key: request.key,
                closerPeers: closestPeers(to: .kad(request.key), excluding: peer, now: now),
                providerPeers: providers(of: request.key, now: now))
        case .addProvider:
            guard !request.key.isEmpty, request.key.count <= 80 else {
                throw .malformed("an ADD_PROVIDER key of \(request.key.count) bytes", offset: 0)
            }
            var offset = 0
            guard (try? Multihash.read(request.key, at: &offset)) != nil, offset == request.key.count else {
                throw .malformed("an ADD_PROVIDER key that is not a multihash", offset: 0)
            }
            // Only the sender may announce itself (kad-dht spec, "Content routing").
            for provider in request.providerPeers where provider.id == peer {
                addProvider(request.key, peer, addresses: provider.addresses, now: now)
            }
            return nil
        case .getValue:
            var response = KadMessage(
                kind: .getValue, key: request.key,
                closerPeers: closestPeers(to: .kad(request.key), excluding: peer, now: now))
            if var found = record(request.key, now: now) {
                found.timeReceived = ""
                response.record = found
            }
            return response
        case .putValue:
            guard let record = request.record, record.key == request.key else {
                throw .invalidRecord("a PUT_VALUE whose record key is not the message's key")
            }
            try store(record, now: now)
            return request  // go-libp2p-kad-dht echoes the request
        }
    }
}

import Kademlia
import Multiformats
import PeerCrypto

/// The libp2p Kademlia DHT (`/ipfs/kad/1.0.0`, the kad-dht spec) on a ``Libp2pHost``: the driver
/// of ``KadNode``. Every new connection is identified, and peers whose identify lists the
/// protocol join the routing table; in server mode it serves the protocol (and identify lists
/// it). Lookups are Kademlia's (``Lookup``) with α queries in flight, one stream per request,
/// each under a deadline. Nothing is contacted but the peers named to ``bootstrap(_:)`` and
/// those they name.
public actor KadDHT {
    public static let protocolID = "/ipfs/kad/1.0.0"
    /// Kubo's LAN DHT (its dual DHT's second half, for peers on private and loopback
    /// addresses): the same messages under another name. On loopback Kubo serves only this one.
    public static let lanProtocolID = "/ipfs/lan/kad/1.0.0"

    public struct Configuration: Sendable {
        public var node = KadNode.Configuration()
        public var message = KadMessage.Limits()
        /// The protocol names served and spoken, preferred first. Both by default, as one
        /// keyspace and one store: a node on loopback or a LAN is in Kubo's LAN DHT and in
        /// go-libp2p's (and p2pd's) DHT at once, and answers each from the same records.
        public var protocols = [KadDHT.protocolID, KadDHT.lanProtocolID]
        /// Queries in flight per lookup (α).
        public var alpha = 3
        /// How long one request may take, dial included.
        public var requestTimeout: Duration = .seconds(10)
        /// An inbound stream idle this long is closed (go-libp2p-kad-dht: one minute).
        public var streamIdleTimeout: Duration = .seconds(60)
        /// How often stores are expired, provided keys announced again when due, and the
        /// routing table refreshed by a lookup of the own ID.
        public var maintenanceInterval: Duration = .seconds(10 * 60)

        public init() {}
    }

    public nonisolated let host: Libp2pHost
    public nonisolated let configuration: Configuration
    let log: @Sendable (String) -> Void
    private let origin = ContinuousClock.now
    var node: KadNode
    private var maintenance: Task<Void, Never>?

    public init(
        host: Libp2pHost, configuration: Configuration = Configuration(),
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.host = host
        self.configuration = configuration
        self.log = log
        node = KadNode(ownPeer: host.peerID, configuration: configuration.node, now: .zero)
    }

    var now: KademliaTime { ContinuousClock.now - origin }

    /// Serves the protocol (server mode), watches new connections, and runs maintenance.
    public func start() {
        if configuration.node.server {
            for name in configuration.protocols {
                host.handle(name) { [weak self] stream in try await self?.serve(stream) }
            }
        }
        host.onConnection { [weak self] connection in
            Task { await self?.identify(connection) }
        }
        let interval = configuration.maintenanceInterval
        maintenance = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.maintain()
            }
        }
    }

    /// Stops maintenance (the host's handler stays until the host closes).
    public func stop() {
        maintenance?.cancel()
        maintenance = nil
    }

    /// Peers in the routing table.
    public var routingTableSize: Int { node.routing.count }
    public var routingTablePeers: [PeerID] { node.routing.contacts.map(\.address) }

    // MARK: Peers

    /// Connects to `peers` (multiaddrs with `/p2p/<id>`), adds those that speak the DHT, and
    /// looks up the own ID to fill the routing table. Returns how many joined the table.
    @discardableResult
    public func bootstrap(_ peers: [Multiaddr]) async -> Int {
        await withTaskGroup(of: Void.self) { group in
            for address in peers {
                group.addTask { [host] in
                    do {
                        let connection = try await host.connect(address)
                        await self.identify(connection)
                    } catch {
                        self.log("DHT bootstrap: \(address): \(error)")
                    }
                }
            }
        }
        _ = await lookup(node.ownPeer.multihash.bytes, kind: .findNode) { _, _ in false }
        return node.routing.count
    }

    /// Identifies the peer on `connection`; a DHT server joins the routing table.
    func identify(_ connection: Libp2pConnection) async {
        let info: Identify
        if let known = host.peerInfo(connection.remotePeer) {
            info = known
        } else {
            do {
                info = try await withDeadline(configuration.requestTimeout, "identify") { [host] in
                    try await host.identify(connection)
                }
            } catch {
                log("DHT: identify of \(connection.remotePeer) failed: \(error)")
                return
            }
        }
        var addresses = info.listenAddresses
        if addresses.isEmpty, connection.isOutbound, let remote = connection.remoteAddress {
            addresses = [remote]
        }
        node.learned(connection.remotePeer, addresses: addresses, server: speaksDHT(info), now: now)
    }

    /// Whether identify lists one of the DHT's protocols (the peer is a DHT server).
    func speaksDHT(_ info: Identify) -> Bool {
        configuration.protocols.contains { info.protocols.contains($0) }
    }

    /// A connection to `peer`: an open one, or one dialled at an address the DHT knows.
    func connection(to peer: PeerID) async throws -> Libp2pConnection {
        if let open = host.connections.first(where: { $0.remotePeer == peer && $0.isActive }) { return open }
        var last: (any Error)?
        for address in node.addresses[peer] ?? [] {
            let withPeer = Multiaddr(
                address.components.filter { if case .p2p = $0 { false } else { true } }
                    + [.p2p(peer.multihash.bytes)])
            guard (try? withPeer.tcpEndpoint()) != nil else { continue }
            do {
                return try await host.connect(withPeer)
            } catch {
                last = error
            }
        }
        throw last ?? KadError.unreachable("no address of \(peer) is known")
    }

    /// One request to `peer`, and its response (none for ADD_PROVIDER).
    func request(_ peer: PeerID, _ message: KadMessage) async throws -> KadMessage? {
        let limits = configuration.message
        return try await withDeadline(configuration.requestTimeout, "a DHT request to \(peer)") {
            let connection = try await self.connection(to: peer)
            let stream = try await connection.openStream(self.configuration.protocols)
            defer { stream.closeWrite() }
            try await stream.writeDelimited(message.encoded())
            guard message.kind != .addProvider else { return nil }
            guard let bytes = try await stream.readDelimited(limit: limits.maxMessage) else {
                throw KadError.unreachable("\(peer) closed the stream without answering")
            }
            let response = try KadMessage(decoding: bytes, limits: limits)
            guard response.kind == message.kind else {
                throw KadError.malformed("a \(response.kind) response to a \(message.kind)", offset: 0)
            }
            return response
        }
    }

    // MARK: Lookups

    /// An iterative lookup of `key` with `kind` requests (FIND_NODE, GET_PROVIDERS, GET_VALUE):
    /// each response goes to `visit`, which returns true to stop early. Returns the closest
    /// peers that answered, nearest first.
    func lookup(
        _ key: [UInt8], kind: KadMessage.Kind, visit: (PeerID, KadMessage) -> Bool
    ) async -> [PeerID] {
        let target = KadID.kad(key)
        var settings = LookupConfiguration()
        settings.k = configuration.node.k
        settings.alpha = configuration.alpha
        settings.timeout = configuration.requestTimeout + .seconds(1)
        var lookup = Lookup<Bits256, PeerID>(
            target: target, seeds: node.seeds(for: target, now: now), configuration: settings, now: now)
        let request = KadMessage(kind: kind, key: key)
        return await withTaskGroup(of: (PeerID, KadMessage?).self) { group in
            func launch(_ actions: [LookupAction<Bits256, PeerID>]) {
                for case .query(let contact) in actions {
                    let peer = contact.address
                    group.addTask { (peer, try? await self.request(peer, request)) }
                }
            }
            launch(lookup.start(now: now))
            while !lookup.isFinished, let result = await group.next() {
                let (peer, response) = result
                guard let response else {
                    node.failed(peer, now: now)
                    launch(lookup.failed(.kad(peer), now: now))
                    continue
                }
                node.learned(peer, addresses: [], server: true, answered: true, now: now)
                let named = response.closerPeers.filter { $0.id != node.ownPeer && !$0.addresses.isEmpty }
                node.heard(of: named)
                if visit(peer, response) {
                    group.cancelAll()
                    break
                }
                let contacts = named.map { KadNode.Contact(id: .kad($0.id), address: $0.id, lastSeen: now) }
                launch(lookup.answered(by: .kad(peer), nodes: contacts, now: now))
            }
            group.cancelAll()
            return lookup.closest.map(\.address)
        }
    }

    /// The DHT servers closest to `key` (at most k), by a FIND_NODE lookup.
    public func closestPeers(_ key: [UInt8]) async -> [PeerID] {
        await lookup(key, kind: .findNode) { _, _ in false }
    }

    /// Where `peer` can be reached: known addresses, or a FIND_NODE lookup for it.
    public func findPeer(_ peer: PeerID) async throws -> [Multiaddr] {
        if let known = node.addresses[peer], !known.isEmpty { return known }
        var found: [Multiaddr] = []
        _ = await lookup(peer.multihash.bytes, kind: .findNode) { _, response in
            guard let match = response.closerPeers.first(where: { $0.id == peer && !$0.addresses.isEmpty })
            else { return false }
            found = match.addresses
            return true
        }
        guard !found.isEmpty else { throw KadError.unreachable("no DHT peer knows where \(peer) is") }
        return found
    }

    /// Providers of `key` (a multihash), this node's own records first; stops at `limit`.
    public func findProviders(_ key: Multihash, limit: Int = 20) async -> [KadMessage.Peer] {
        var found = node.providers(of: key.bytes, now: now).filter { $0.id != node.ownPeer }
        if found.count >= limit { return Array(found.prefix(limit)) }
        _ = await lookup(key.bytes, kind: .getProviders) { _, response in
            for provider in response.providerPeers {
                if let index = found.firstIndex(where: { $0.id == provider.id }) {
                    // Named again, perhaps with addresses the first answer lacked.
                    for address in provider.addresses where !found[index].addresses.contains(address) {
                        found[index].addresses.append(address)
                    }
                } else {
                    found.append(provider)
                }
            }
            return found.count >= limit
        }
        node.heard(of: found)
        return Array(found.prefix(limit))
    }

    /// Announces this node as a provider of `key` to the k closest DHT servers (ADD_PROVIDER),
    /// and again every republish interval. Returns how many were told.
    @discardableResult
    public func provide(_ key: Multihash) async -> Int {
        node.provide(key.bytes, now: now)
        return await announce(key.bytes)
    }

    private func announce(_ key: [UInt8]) async -> Int {
        let closest = await closestPeers(key)
        let me = KadMessage.Peer(id: node.ownPeer, addresses: host.listenAddresses.map(\.withoutPeer))
        let message = KadMessage(kind: .addProvider, key: key, providerPeers: [me])
        return await withTaskGroup(of: Bool.self) { group in
            for peer in closest {
                group.addTask {
                    do {
                        _ = try await self.request(peer, message)
                        return true
                    } catch {
                        return false
                    }
                }
            }
            var told = 0
            for await ok in group where ok { told += 1 }
            return told
        }
    }

    /// The record under `key` (validated), from this node or a GET_VALUE lookup.
    public func getValue(_ key: [UInt8]) async throws -> KadMessage.Record {
        if let local = node.record(key, now: now) { return local }
        var found: KadMessage.Record?
        _ = await lookup(key, kind: .getValue) { peer, response in
            guard let record = response.record, record.key == key else { return false }
            do {
                try KadRecordValidator.validate(key: record.key, value: record.value)
            } catch {
                self.log("DHT: \(peer) sent a bad record: \(error)")
                return false
            }
            found = record
            return true
        }
        guard let found else { throw KadError.unreachable("no DHT peer has a value for this key") }
        return found
    }

    /// Validates and stores `record` here and at the k closest DHT servers (PUT_VALUE).
    /// Returns how many accepted it.
    @discardableResult
    public func putValue(_ record: KadMessage.Record) async throws -> Int {
        try node.store(record, now: now)
        let closest = await closestPeers(record.key)
        let message = KadMessage(kind: .putValue, key: record.key, record: record)
        return await withTaskGroup(of: Bool.self) { group in
            for peer in closest {
                group.addTask { (try? await self.request(peer, message))?.record?.value == record.value }
            }
            var stored = 0
            for await ok in group where ok { stored += 1 }
            return stored
        }
    }

    func maintain() async {
        node.expire(now: now)
        for key in node.dueForRepublish(now: now) { _ = await announce(key) }
        if node.routing.count > 0 { _ = await closestPeers(node.ownPeer.multihash.bytes) }
    }

    // MARK: Serving

    /// An inbound stream: requests answered in order until the peer closes it or idles.
    nonisolated func serve(_ stream: Libp2pStream) async throws {
        let limits = configuration.message
        let idle = configuration.streamIdleTimeout
        var source: [UInt8] = []
        if let remote = stream.connection.remoteAddress, let endpoint = try? remote.tcpEndpoint() {
            source = endpoint.ip.bytes
        }
        defer { stream.closeWrite() }
        while true {
            let frame: [UInt8]?
            do {
                frame = try await withDeadline(idle, "an idle DHT stream") {
                    try await stream.readDelimited(limit: limits.maxMessage)
                }
            } catch Libp2pError.timedOut {
                return  // idle: closed, as go-libp2p-kad-dht closes its own after a minute
            }
            guard let frame else { return }
            let response: KadMessage?
            do {
                let request = try KadMessage(decoding: frame, limits: limits)
                response = try await respond(to: request, from: stream.connection, source: source)
            } catch {
                log("DHT request from \(stream.remotePeer) refused: \(error)")
                stream.reset()
                return
            }
            if let response { try await stream.writeDelimited(response.encoded()) }
        }
    }

    func respond(to request: KadMessage, from connection: Libp2pConnection, source: [UInt8]) throws(KadError)
        -> KadMessage?
    {
        let peer = connection.remotePeer
        if let info = host.peerInfo(peer) {
            node.learned(peer, addresses: info.listenAddresses, server: speaksDHT(info), now: now)
        }
        node.ownAddresses = host.listenAddresses.map(\.withoutPeer)
        return try node.respond(to: request, from: peer, source: source, now: now)
    }
}

import PeerNet

/// A connection of a servent, named by its driver.
public struct ConnectionID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let value: Int
    public init(_ value: Int) { self.value = value }
    public static func < (a: ConnectionID, b: ConnectionID) -> Bool { a.value < b.value }
    public var description: String { "#\(value)" }
}

/// A file a servent shares: the index a `GET /get/<index>/<name>` names, and its SHA-1 URN.
public struct SharedFile: Sendable, Equatable {
    public var index: UInt32
    public var name: String
    public var size: UInt64
    public var sha1: [UInt8]

    public init(index: UInt32, name: String, size: UInt64, sha1: [UInt8]) {
        self.index = index
        self.name = name
        self.size = size
        self.sha1 = sha1
    }

    /// Whether `query` names this file: its URN, or every keyword of its text in the name.
    func matches(_ query: Query, keywords: Set<String>) -> Bool {
        if let wanted = query.extensions.sha1 { return wanted == sha1 }
        let words = QRPHash.keywords(query.text)
        return !words.isEmpty && words.allSatisfy { keywords.contains($0) }
    }
}

/// What a ``Servent`` asks its driver to do.
public enum ServentAction: Sendable, Equatable {
    case send(ConnectionID, Descriptor)
    case close(ConnectionID, reason: String)
    /// A hit for a query this servent started.
    case result(query: GUID, hit: QueryHit)
    /// A Push naming this servent: connect to `push.endpoint` and offer file `push.index` (GIV).
    case pushRequested(Push)
    /// A Pong for this servent: a host to remember.
    case discovered(Pong)
}

/// A Gnutella 0.6 servent's routing, as a state machine: descriptors in, descriptors out.
///
/// Flooding with duplicate suppression (a seen-GUID table with expiry), TTL decremented and
/// hops incremented with TTL + hops capped at `maxTTL` (section 2.3), Pongs and QueryHits sent
/// back along the connection their Ping or Query came from, Pushes routed by servent GUID along
/// the path the servent's QueryHits came, Byes closing. As an ultrapeer it keeps each leaf's
/// QRP table and forwards a query to a leaf only when the table matches, floods between
/// ultrapeers, and runs **dynamic querying** for its own and its leaves' queries: a probe to a
/// few ultrapeers with a low TTL, then one connection at a time with a TTL chosen from the
/// results so far, until `targetResults` arrive or no connection is left. As a leaf it sends
/// its table to its ultrapeers and its queries to them, and forwards nothing.
///
/// No sockets, clock or randomness inside: time comes with each call, GUIDs from the seeded
/// generator given at creation.
public struct Servent: Sendable {
    public let configuration: ServentConfiguration
    public let guid: GUID
    public private(set) var files: [SharedFile] = []
    private var fileKeywords: [Set<String>] = []
    private var table: QueryRouteTable

    struct Connection: Sendable {
        var kind: ConnectionKind
        /// A leaf's table, rebuilt from its updates (ultrapeers keep one per leaf).
        var routeTable = QueryRouteTableReceiver()
    }
    private var connections: [ConnectionID: Connection] = [:]

    /// Where a GUID's replies go back: a connection, or us (nil connection).
    enum Route: Sendable, Equatable {
        case ours
        case connection(ConnectionID)
    }
    private var seen: ExpiringMap<[UInt8], Bool>
    private var pingRoutes: ExpiringMap<GUID, Route>
    private var queryRoutes: ExpiringMap<GUID, Route>
    private var pushRoutes: ExpiringMap<GUID, ConnectionID>

    /// A query being widened step by step (dynamic querying, for us or for a leaf).
    struct DynamicQuery: Sendable {
        var descriptor: Descriptor
        var results = 0
        var queried: Set<ConnectionID> = []
        var nextStep: Duration
        var ends: Duration
    }
    private var dynamicQueries: [GUID: DynamicQuery] = [:]
    /// Pongs seen lately (pong caching, as LimeWire's ultrapeers do it): a ping is answered
    /// from here instead of being flooded once enough are fresh; refreshed by pinging the
    /// ultrapeer neighbours when they run low.
    private var pongCache: [(pong: Pong, at: Duration)] = []
    private var lastCachePing: Duration?
    public static let pongCacheSize = 100
    public static let pongsPerPing = 10
    public var pongLifetime: Duration = .seconds(30)
    private var random: SplitMix64

    /// Dynamic querying stops once this many results came back (LimeWire: 150; leaves 50).
    public var targetResults = 50
    /// Time between widening steps (LimeWire waits ~2.4 s per TTL step).
    public var stepInterval: Duration = .milliseconds(2_400)
    public var queryLifetime: Duration = .seconds(120)
    /// Dynamic queries widened at once (each lives `queryLifetime`); past it a new one gets its
    /// probe only, so leaves' queries cannot grow this table without bound.
    public static let maxDynamicQueries = 500

    public init(configuration: ServentConfiguration, seed: UInt64, now: Duration = .zero) {
        self.configuration = configuration
        table = QueryRouteTable(bits: configuration.qrpBits)
        var random = SplitMix64(seed: seed)
        guid = GUID(random: (0..<16).map { _ in UInt8.random(in: 0...255, using: &random) })
        self.random = random
        seen = ExpiringMap(lifetime: .seconds(600), capacity: 200_000, now: now)
        pingRoutes = ExpiringMap(lifetime: .seconds(600), capacity: 50_000, now: now)
        queryRoutes = ExpiringMap(lifetime: .seconds(600), capacity: 200_000, now: now)
        pushRoutes = ExpiringMap(lifetime: .seconds(600), capacity: 50_000, now: now)
    }

    public var connectionCount: Int { connections.count }
    public func kind(of id: ConnectionID) -> ConnectionKind? { connections[id]?.kind }
    public var queryRouteTable: QueryRouteTable { table }

    /// Connections free by kind, for the handshake of a new one.
    public var freeSlots: Handshake.Slots {
        let peers = connections.values.filter { $0.kind == .ultrapeerToUltrapeer }.count
        let leaves = connections.values.filter { $0.kind == .ultrapeerToLeaf }.count
        return Handshake.Slots(
            ultrapeers: configuration.maxUltrapeerPeers - peers, leaves: configuration.maxLeaves - leaves)
    }

    /// Replaces what this servent shares (and its QRP table; ultrapeers it leafs under get the
    /// new table on their next connection).
    public mutating func share(_ files: [SharedFile]) {
        self.files = files
        fileKeywords = files.map { Set(QRPHash.keywords($0.name)) }
        var table = QueryRouteTable(bits: configuration.qrpBits)
        for file in files { table.add(fileName: file.name) }
        self.table = table
    }

    private mutating func newGUID() -> GUID {
        GUID(random: (0..<16).map { _ in UInt8.random(in: 0...255, using: &random) })
    }

    // MARK: Connections

    public mutating func connectionOpened(_ id: ConnectionID, kind: ConnectionKind, now: Duration)
        -> [ServentAction]
    {
        connections[id] = Connection(kind: kind)
        guard kind == .leafToUltrapeer else { return [] }
        // A leaf sends its table to its new ultrapeer (QRP: RESET, then the PATCHes).
        return table.updates().map {
            .send(id, Descriptor(guid: newGUID(), ttl: 1, .routeTableUpdate($0)))
        }
    }

    public mutating func connectionClosed(_ id: ConnectionID) {
        connections[id] = nil
        for key in dynamicQueries.keys { dynamicQueries[key]?.queried.remove(id) }
    }

    // MARK: Searching

    /// Starts a search for `text` (and/or a SHA-1): a leaf sends it to its ultrapeers, an
    /// ultrapeer queries its matching leaves and starts dynamic querying. Hits come back as
    /// `.result` actions.
    public mutating func search(_ text: String, sha1: [UInt8]? = nil, now: Duration) -> (
        GUID, [ServentAction]
    ) {
        let id = newGUID()
        var extensions = ExtensionBlock()
        if let sha1 { extensions.urns = [SHA1URN.string(sha1)] }
        let query = Query(text: text, extensions: extensions)
        let descriptor = Descriptor(guid: id, ttl: configuration.maxTTL, .query(query))
        _ = seen.insertIfAbsent(seenKey(descriptor), true, now: now)
        queryRoutes.set(id, .ours, now: now)
        if !configuration.ultrapeer {
            var out = descriptor
            out.header.ttl = 1
            return (id, ultrapeerConnections().map { .send($0, out) })
        }
        return (id, startDynamicQuery(descriptor, now: now))
    }

    private func ultrapeerConnections() -> [ConnectionID] {
        connections.filter { $0.value.kind == .ultrapeerToUltrapeer || $0.value.kind == .leafToUltrapeer }
            .map(\.key).sorted()
    }

    private func leafConnections() -> [ConnectionID] {
        connections.filter { $0.value.kind == .ultrapeerToLeaf }.map(\.key).sorted()
    }

    /// The query to each leaf whose table matches (TTL 1), then a probe with TTL 2 to up to 3
    /// ultrapeers; later steps come from `tick`.
    private mutating func startDynamicQuery(
        _ descriptor: Descriptor, except origin: ConnectionID? = nil, now: Duration
    )
        -> [ServentAction]
    {
        guard case .query(let query) = descriptor.payload else { return [] }
        var actions = leafActions(descriptor, query: query, except: origin)
        guard configuration.dynamicQuerying else {
            // Plain flooding: every ultrapeer at once, with the TTL the query has left.
            let ttl = configuration.maxTTL &- min(descriptor.header.hops, configuration.maxTTL)
            guard ttl > 0 else { return actions }
            var flood = descriptor
            flood.header.ttl = ttl
            for peer in ultrapeerConnections() where peer != origin { actions.append(.send(peer, flood)) }
            return actions
        }
        var dynamic = DynamicQuery(
            descriptor: descriptor, nextStep: now + stepInterval, ends: now + queryLifetime)
        for peer in ultrapeerConnections().filter({ $0 != origin }).prefix(3) {
            var probe = descriptor
            probe.header.ttl = 2
            actions.append(.send(peer, probe))
            dynamic.queried.insert(peer)
        }
        if let origin { dynamic.queried.insert(origin) }
        if dynamicQueries.count < Self.maxDynamicQueries { dynamicQueries[descriptor.header.guid] = dynamic }
        return actions
    }

    /// The query to each leaf whose QRP table matches, with TTL 1 (and one more hop when it is
    /// passed on from another ultrapeer).
    private func leafActions(
        _ descriptor: Descriptor, query: Query, except origin: ConnectionID?, passedOn: Bool = false
    )
        -> [ServentAction]
    {
        var out = descriptor
        out.header.ttl = 1
        if passedOn { out.header.hops &+= 1 }
        return leafConnections().filter { id in
            id != origin && (connections[id]?.routeTable.table?.matches(query) ?? false)
        }.map { .send($0, out) }
    }

    // MARK: Descriptors in

    public mutating func received(_ descriptor: Descriptor, from id: ConnectionID, now: Duration)
        -> [ServentAction]
    {
        guard connections[id] != nil else { return [] }
        var descriptor = descriptor
        let header = descriptor.header
        // TTL + hops capped (0.6, section 2.3): trim the TTL, drop what has nothing left.
        if Int(header.ttl) + Int(header.hops) > Int(configuration.maxTTL) {
            descriptor.header.ttl = configuration.maxTTL &- min(header.hops, configuration.maxTTL)
        }
        switch descriptor.payload {
        case .ping: return receivedPing(descriptor, from: id, now: now)
        case .pong(let pong):
            cache(pong, now: now)
            return routeBack(descriptor, table: pingRoutes, ours: [.discovered(pong)], now: now)
        case .query(let query): return receivedQuery(descriptor, query: query, from: id, now: now)
        case .queryHit(let hit): return receivedHit(descriptor, hit: hit, from: id, now: now)
        case .push(let push): return receivedPush(descriptor, push: push, now: now)
        case .bye(let bye): return [.close(id, reason: "Bye \(bye.code): \(bye.message)")]
        case .routeTableUpdate(let update):
            guard connections[id]?.kind == .ultrapeerToLeaf else { return [] }
            do {
                try connections[id]?.routeTable.apply(update)
                return []
            } catch {
                return [.close(id, reason: "bad route table update: \(error)")]
            }
        case .other: return []
        }
    }

    private func seenKey(_ descriptor: Descriptor) -> [UInt8] {
        descriptor.header.guid.bytes + [descriptor.header.type]
    }

    /// The descriptor one hop further: TTL down, hops up; nil when its TTL is spent.
    private func forwarded(_ descriptor: Descriptor) -> Descriptor? {
        guard descriptor.header.ttl > 1 else { return nil }
        var out = descriptor
        out.header.ttl -= 1
        out.header.hops &+= 1
        return out
    }

    private mutating func receivedPing(_ descriptor: Descriptor, from id: ConnectionID, now: Duration)
        -> [ServentAction]
    {
        guard seen.insertIfAbsent(seenKey(descriptor), true, now: now) else { return [] }
        pingRoutes.set(descriptor.header.guid, .connection(id), now: now)
        var actions: [ServentAction] = []
        if let listen = configuration.listen {
            let kilobytes = files.reduce(UInt64(0)) { $0 + $1.size } / 1024
            let pong = Pong(
                endpoint: listen, files: UInt32(clamping: files.count), kilobytes: UInt32(clamping: kilobytes)
            )
            actions.append(
                .send(
                    id, Descriptor(guid: descriptor.header.guid, ttl: descriptor.header.hops + 1, .pong(pong))
                ))
        }
        // Enough fresh pongs cached: answer from the cache, flood nothing.
        let fresh = pongCache.filter {
            now - $0.at < pongLifetime && $0.pong.endpoint != configuration.listen
        }
        if configuration.ultrapeer, fresh.count >= Self.pongsPerPing {
            for entry in fresh.suffix(Self.pongsPerPing) {
                let reply = Descriptor(
                    guid: descriptor.header.guid, ttl: descriptor.header.hops + 1, .pong(entry.pong))
                actions.append(.send(id, reply))
            }
            return actions
        }
        // Ultrapeers pass pings on to other ultrapeers only (leaves are shielded).
        if configuration.ultrapeer, let next = forwarded(descriptor) {
            for peer in connections.filter({ $0.key != id && $0.value.kind == .ultrapeerToUltrapeer }).keys
                .sorted()
            {
                actions.append(.send(peer, next))
            }
        }
        return actions
    }

    private mutating func receivedQuery(
        _ descriptor: Descriptor, query: Query, from id: ConnectionID, now: Duration
    )
        -> [ServentAction]
    {
        guard seen.insertIfAbsent(seenKey(descriptor), true, now: now) else { return [] }
        queryRoutes.set(descriptor.header.guid, .connection(id), now: now)
        var actions = answer(descriptor, query: query, to: id)
        guard configuration.ultrapeer else { return actions }
        if connections[id]?.kind == .ultrapeerToLeaf {
            // A leaf's query: this ultrapeer queries for it, dynamically.
            var own = descriptor
            own.header.ttl = configuration.maxTTL
            own.header.hops = 1
            return actions + startDynamicQuery(own, except: id, now: now)
        }
        actions += leafActions(descriptor, query: query, except: id, passedOn: true)
        if let next = forwarded(descriptor) {
            for peer in connections.filter({ $0.key != id && $0.value.kind == .ultrapeerToUltrapeer }).keys
                .sorted()
            {
                actions.append(.send(peer, next))
            }
        }
        return actions
    }

    /// A QueryHit for our matching files, back along the query's path.
    private func answer(_ descriptor: Descriptor, query: Query, to id: ConnectionID) -> [ServentAction] {
        guard let listen = configuration.listen else { return [] }
        let results = zip(files, fileKeywords).filter { $0.0.matches(query, keywords: $0.1) }.prefix(
            QueryHit.maxResults
        )
        .map { file, _ in
            QueryHit.Result(
                index: file.index, size: UInt32(clamping: file.size), name: file.name,
                extensions: ExtensionBlock(urns: [SHA1URN.string(file.sha1)]))
        }
        guard !results.isEmpty else { return [] }
        let hit = QueryHit(
            endpoint: listen, speed: 1_000, results: Array(results),
            trailer: .init(vendor: "PSTK", push: false, busy: false, uploaded: false, measuredSpeed: false),
            servent: guid)
        return [
            .send(
                id, Descriptor(guid: descriptor.header.guid, ttl: descriptor.header.hops + 1, .queryHit(hit)))
        ]
    }

    private mutating func receivedHit(
        _ descriptor: Descriptor, hit: QueryHit, from id: ConnectionID, now: Duration
    )
        -> [ServentAction]
    {
        // Pushes to the responding servent go back the way its hit came.
        pushRoutes.set(hit.servent, id, now: now)
        let queryID = descriptor.header.guid
        if dynamicQueries[queryID] != nil { dynamicQueries[queryID]?.results += hit.results.count }
        return routeBack(descriptor, table: queryRoutes, ours: [.result(query: queryID, hit: hit)], now: now)
    }

    private mutating func receivedPush(_ descriptor: Descriptor, push: Push, now: Duration) -> [ServentAction]
    {
        guard seen.insertIfAbsent(seenKey(descriptor), true, now: now) else { return [] }
        if push.servent == guid { return [.pushRequested(push)] }
        guard let route = pushRoutes[push.servent], connections[route] != nil,
            let next = forwarded(descriptor)
        else {
            return []
        }
        return [.send(route, next)]
    }

    /// A reply routed back by its GUID: to the connection its request came from, or ours.
    private func routeBack(
        _ descriptor: Descriptor, table: ExpiringMap<GUID, Route>, ours: [ServentAction], now: Duration
    ) -> [ServentAction] {
        switch table[descriptor.header.guid] {
        case .ours: return ours
        case .connection(let back):
            // A reply leaves its responder with TTL = the request's hops + 1: enough to get back.
            guard connections[back] != nil, let out = forwarded(descriptor) else { return [] }
            return [.send(back, out)]
        case nil: return []
        }
    }

    private mutating func cache(_ pong: Pong, now: Duration) {
        guard pong.endpoint != configuration.listen else { return }
        pongCache.removeAll { $0.pong.endpoint == pong.endpoint }
        pongCache.append((pong, now))
        if pongCache.count > Self.pongCacheSize {
            pongCache.removeFirst(pongCache.count - Self.pongCacheSize)
        }
    }

    /// Hosts the pong cache knows, freshest last.
    public var cachedHosts: [Endpoint] { pongCache.map(\.pong.endpoint) }

    // MARK: Time

    /// Widens dynamic queries that are due; ends finished ones; expires routes.
    public mutating func tick(now: Duration) -> [ServentAction] {
        var actions: [ServentAction] = []
        for id in dynamicQueries.keys.sorted(by: { $0.bytes.lexicographicallyPrecedes($1.bytes) }) {
            guard var query = dynamicQueries[id] else { continue }
            if query.results >= targetResults || now >= query.ends {
                dynamicQueries[id] = nil
                continue
            }
            guard now >= query.nextStep else { continue }
            let left = connections.filter {
                $0.value.kind == .ultrapeerToUltrapeer && !query.queried.contains($0.key)
            }
            .map(\.key).sorted()
            guard let peer = left.first else {
                dynamicQueries[id] = nil
                continue
            }
            // Few results so far: reach further with this connection.
            var step = query.descriptor
            step.header.ttl = query.results == 0 ? 3 : query.results < targetResults / 4 ? 2 : 1
            step.header.ttl = min(step.header.ttl, configuration.maxTTL)
            query.queried.insert(peer)
            query.nextStep = now + stepInterval * Int(step.header.ttl)
            dynamicQueries[id] = query
            actions.append(.send(peer, step))
        }
        // An ultrapeer low on fresh pongs pings its ultrapeer neighbours (every 3 s at most).
        if configuration.ultrapeer,
            pongCache.filter({ now - $0.at < pongLifetime }).count < Self.pongsPerPing,
            lastCachePing.map({ now - $0 >= .seconds(3) }) ?? true,
            connections.values.contains(where: { $0.kind == .ultrapeerToUltrapeer })
        {
            lastCachePing = now
            let id = newGUID()
            let ping = Descriptor(guid: id, ttl: 3, .ping(Ping()))
            _ = seen.insertIfAbsent(seenKey(ping), true, now: now)
            pingRoutes.set(id, .ours, now: now)
            for peer in connections.filter({ $0.value.kind == .ultrapeerToUltrapeer }).keys.sorted() {
                actions.append(.send(peer, ping))
            }
        }
        seen.rotate(now: now)
        pingRoutes.rotate(now: now)
        queryRoutes.rotate(now: now)
        pushRoutes.rotate(now: now)
        return actions
    }

    /// A Ping to every connection (TTL 1 to leaves' ultrapeers, the cap between ultrapeers).
    public mutating func ping(now: Duration) -> [ServentAction] {
        let id = newGUID()
        let descriptor = Descriptor(guid: id, ttl: configuration.ultrapeer ? 3 : 1, .ping(Ping()))
        _ = seen.insertIfAbsent(seenKey(descriptor), true, now: now)
        pingRoutes.set(id, .ours, now: now)
        return connections.keys.sorted().map { .send($0, descriptor) }
    }

    /// A Push asking `servent` (firewalled, found in a hit) to connect to `endpoint` and upload
    /// file `index`, routed along its hit's path.
    public mutating func push(to servent: GUID, index: UInt32, endpoint: Endpoint, now: Duration)
        -> [ServentAction]
    {
        guard let route = pushRoutes[servent], connections[route] != nil else { return [] }
        let descriptor = Descriptor(
            guid: newGUID(), ttl: configuration.maxTTL,
            .push(Push(servent: servent, index: index, endpoint: endpoint)))
        _ = seen.insertIfAbsent(seenKey(descriptor), true, now: now)
        return [.send(route, descriptor)]
    }
}

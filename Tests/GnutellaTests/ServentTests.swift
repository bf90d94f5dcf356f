import Gnutella
import PeerNet
import Testing

/// Servents wired in memory: every descriptor goes through its bytes (encoded, then decoded by
/// the receiver), virtual time advances by ticks. No sockets.
struct ServentNetwork {
    var servents: [Servent] = []
    /// (node, connection) → (remote node, remote connection).
    var links: [Pair: Pair] = [:]
    var queue: [(node: Int, action: ServentAction)] = []
    var now: Duration = .zero
    var nextConnection = 1
    /// What arrived where: node → descriptors received.
    var received: [Int: [Descriptor]] = [:]
    var results: [Int: [QueryHit]] = [:]
    var pushes: [Int: [Push]] = [:]

    struct Pair: Hashable {
        let node: Int
        let connection: ConnectionID
    }

    /// Adds a servent; `files` are names shared (SHA-1 from the name).
    mutating func add(ultrapeer: Bool, files: [String] = []) -> Int {
        var configuration = ServentConfiguration()
        configuration.ultrapeer = ultrapeer
        configuration.listen = Endpoint(
            ip: IPAddress(v4: 0x0A00_0000 | UInt32(servents.count + 1)), port: 6346)
        var servent = Servent(configuration: configuration, seed: UInt64(servents.count + 1))
        servent.share(
            files.enumerated().map {
                SharedFile(
                    index: UInt32($0.offset), name: $0.element, size: 1_000,
                    sha1: Array($0.element.utf8.prefix(20))
                        + [UInt8](repeating: 0, count: max(0, 20 - $0.element.utf8.count)))
            })
        servents.append(servent)
        return servents.count - 1
    }

    /// Connects `a` to `b` (ultrapeer–ultrapeer, or leaf `a` under ultrapeer `b`).
    mutating func connect(_ a: Int, _ b: Int) {
        let ca = ConnectionID(nextConnection)
        let cb = ConnectionID(nextConnection + 1)
        nextConnection += 2
        links[Pair(node: a, connection: ca)] = Pair(node: b, connection: cb)
        links[Pair(node: b, connection: cb)] = Pair(node: a, connection: ca)
        let aUltrapeer = servents[a].configuration.ultrapeer
        let bUltrapeer = servents[b].configuration.ultrapeer
        let kindA: ConnectionKind =
            aUltrapeer ? (bUltrapeer ? .ultrapeerToUltrapeer : .ultrapeerToLeaf) : .leafToUltrapeer
        let kindB: ConnectionKind =
            bUltrapeer ? (aUltrapeer ? .ultrapeerToUltrapeer : .ultrapeerToLeaf) : .leafToUltrapeer
        enqueue(a, servents[a].connectionOpened(ca, kind: kindA, now: now))
        enqueue(b, servents[b].connectionOpened(cb, kind: kindB, now: now))
        deliverAll()
    }

    mutating func enqueue(_ node: Int, _ actions: [ServentAction]) { queue += actions.map { (node, $0) } }

    mutating func deliverAll() {
        var steps = 0
        while !queue.isEmpty, steps < 100_000 {
            steps += 1
            let (node, action) = queue.removeFirst()
            switch action {
            case .send(let connection, let descriptor):
                guard let remote = links[Pair(node: node, connection: connection)] else { continue }
                guard let decoded = try? Descriptor(parsing: descriptor.encoded()) else {
                    Issue.record("undecodable descriptor \(descriptor)")
                    continue
                }
                received[remote.node, default: []].append(decoded)
                enqueue(
                    remote.node, servents[remote.node].received(decoded, from: remote.connection, now: now))
            case .result(_, let hit): results[node, default: []].append(hit)
            case .pushRequested(let push): pushes[node, default: []].append(push)
            case .close, .discovered: break
            }
        }
    }

    /// Advances time a second at a time, delivering as it goes.
    mutating func run(seconds: Int) {
        for _ in 0..<seconds {
            now += .seconds(1)
            for node in servents.indices { enqueue(node, servents[node].tick(now: now)) }
            deliverAll()
        }
    }

    func queries(at node: Int, _ guid: GUID) -> [Descriptor] {
        (received[node] ?? []).filter { $0.header.guid == guid && $0.header.payloadType == .query }
    }
}

@Suite("The servent's routing")
struct ServentTests {
    @Test("a leaf's search finds a file shared by a leaf three ultrapeers away; a push gets back to it")
    func searchThroughUltrapeers() throws {
        var net = ServentNetwork()
        let searcher = net.add(ultrapeer: false)
        let ups = (0..<3).map { _ in net.add(ultrapeer: true) }
        let sharer = net.add(ultrapeer: false, files: ["free music collection.mp3", "other.txt"])
        let bystander = net.add(ultrapeer: false, files: ["unrelated.iso"])
        net.connect(searcher, ups[0])
        net.connect(ups[0], ups[1])
        net.connect(ups[1], ups[2])
        net.connect(sharer, ups[2])
        net.connect(bystander, ups[2])
        let (query, actions) = net.servents[searcher].search("music", now: net.now)
        net.enqueue(searcher, actions)
        net.deliverAll()
        net.run(seconds: 10)
        let hits = try #require(net.results[searcher])
        #expect(hits.count == 1)
        #expect(hits.first?.results.map(\.name) == ["free music collection.mp3"])
        #expect(hits.first?.servent == net.servents[sharer].guid)
        // QRP kept the query away from the leaf whose table does not match.
        #expect(net.queries(at: bystander, query).isEmpty)
        #expect(net.queries(at: sharer, query).count == 1)
        // A push for the file goes back along the hit's path to the sharer.
        let pushActions = net.servents[searcher].push(
            to: net.servents[sharer].guid, index: 0, endpoint: Endpoint("10.0.0.1:6346")!, now: net.now)
        #expect(!pushActions.isEmpty)
        net.enqueue(searcher, pushActions)
        net.deliverAll()
        #expect(net.pushes[sharer]?.map(\.index) == [0])
    }

    @Test("a flood reaches each ultrapeer once: duplicates are dropped")
    func duplicates() {
        var net = ServentNetwork()
        let ups = (0..<4).map { _ in net.add(ultrapeer: true) }
        for a in ups { for b in ups where a < b { net.connect(a, b) } }  // a full mesh
        let origin = net.add(ultrapeer: true)
        net.connect(origin, ups[0])
        let guid = GUID(random: Array(200..<216))
        net.enqueue(
            origin,
            [
                .send(
                    ConnectionID(net.nextConnection - 2),
                    Descriptor(guid: guid, ttl: 7, .query(Query(text: "x y z"))))
            ])
        net.deliverAll()
        // Every ultrapeer forwarded it at most once to each other connection; each one's first
        // copy was the only one acted on, so none got it more than from each neighbour once.
        for up in ups { #expect(net.queries(at: up, guid).count <= 4) }
        let forwards = ups.map { up in net.queries(at: up, guid).count }.reduce(0, +)
        #expect(forwards <= 1 + 4 * 3)
        #expect(ups.allSatisfy { !net.queries(at: $0, guid).isEmpty })
    }

    @Test("TTL ends a flood: TTL 3 from the end of a line reaches three ultrapeers")
    func ttl() {
        var net = ServentNetwork()
        let line = (0..<8).map { _ in net.add(ultrapeer: true) }
        for index in 1..<line.count { net.connect(line[index - 1], line[index]) }
        let guid = GUID(random: Array(50..<66))
        // Injected as if from a neighbour of line[0].
        let outside = net.add(ultrapeer: true)
        net.connect(outside, line[0])
        net.enqueue(
            outside,
            [
                .send(
                    ConnectionID(net.nextConnection - 2),
                    Descriptor(guid: guid, ttl: 3, .query(Query(text: "abc"))))
            ])
        net.deliverAll()
        let reached = line.filter { !net.queries(at: $0, guid).isEmpty }
        #expect(reached == [line[0], line[1], line[2]])
        let last = net.queries(at: line[2], guid).first
        #expect(last?.header.ttl == 1 && last?.header.hops == 2)
    }

    @Test("TTL + hops over 7 is trimmed before forwarding")
    func ttlCap() {
        var net = ServentNetwork()
        let a = net.add(ultrapeer: true)
        let b = net.add(ultrapeer: true)
        let c = net.add(ultrapeer: true)
        net.connect(a, b)
        net.connect(b, c)
        let guid = GUID(random: Array(70..<86))
        var descriptor = Descriptor(guid: guid, ttl: 20, .query(Query(text: "abc")))
        descriptor.header.hops = 2
        net.enqueue(a, [.send(ConnectionID(1), descriptor)])
        net.deliverAll()
        let atC = net.queries(at: c, guid).first
        // Trimmed to 7 - 2 = 5 at b, then one hop on: TTL 4, hops 3.
        #expect(atC?.header.hops == 3 && atC?.header.ttl == 4)
    }

    @Test("dynamic querying widens one ultrapeer at a time and stops at the target")
    func dynamicQuerying() {
        var net = ServentNetwork()
        let hub = net.add(ultrapeer: true)
        // Ten ultrapeers around the hub, each with two leaves sharing a match.
        var spokes: [Int] = []
        for _ in 0..<10 {
            let up = net.add(ultrapeer: true)
            net.connect(hub, up)
            for _ in 0..<2 { net.connect(net.add(ultrapeer: false, files: ["common song.mp3"]), up) }
            spokes.append(up)
        }
        net.servents[hub].targetResults = 10
        let (query, actions) = net.servents[hub].search("song", now: net.now)
        net.enqueue(hub, actions)
        net.deliverAll()
        // The probe: three ultrapeers, TTL 2.
        #expect(spokes.filter { !net.queries(at: $0, query).isEmpty }.count == 3)
        net.run(seconds: 60)
        let asked = spokes.filter { !net.queries(at: $0, query).isEmpty }.count
        let results = net.results[hub]?.count ?? 0
        // 6 hits from the probe, then one ultrapeer at a time (2 hits each) until 10.
        #expect(results >= 10)
        #expect(asked == 5, "asked \(asked) of 10")
    }
}

@Suite("Pong caching")
struct PongCacheTests {
    @Test(
        "an ultrapeer low on pongs pings its neighbours, then answers pings from its cache without flooding")
    func cache() {
        var net = ServentNetwork()
        let hub = net.add(ultrapeer: true)
        let neighbours = (0..<12).map { _ in net.add(ultrapeer: true) }
        for neighbour in neighbours { net.connect(hub, neighbour) }
        net.run(seconds: 1)  // the hub's tick pings its neighbours; their pongs fill its cache
        #expect(net.servents[hub].cachedHosts.count == 12)
        let outsider = net.add(ultrapeer: true)
        net.connect(outsider, hub)
        let guid = GUID(random: Array(120..<136))
        net.enqueue(
            outsider,
            [.send(ConnectionID(net.nextConnection - 2), Descriptor(guid: guid, ttl: 7, .ping(Ping())))])
        net.deliverAll()
        let pongs = (net.received[outsider] ?? []).filter {
            $0.header.guid == guid && $0.header.payloadType == .pong
        }
        // Its own pong and ten cached ones; the ping went no further.
        #expect(pongs.count == 11)
        #expect(
            neighbours.allSatisfy { node in !(net.received[node] ?? []).contains { $0.header.guid == guid } })
    }
}

@Suite("Flow control and rate limits")
struct FlowControlTests {
    @Test(
        "a full queue drops pings and pongs first, then far-travelled queries, never hits while others remain"
    )
    func priorities() {
        var queue = OutgoingQueue(budget: 2_000)
        let hit = Descriptor(
            guid: GUID(random: [1]), ttl: 3,
            .queryHit(
                QueryHit(
                    endpoint: Endpoint("10.0.0.1:6346")!, speed: 1,
                    results: [.init(index: 1, size: 2, name: "x")],
                    trailer: nil, servent: GUID(random: [2]))))
        for n in 0..<40 { queue.push(Descriptor(guid: GUID(random: [UInt8(n)]), ttl: 1, .ping(Ping()))) }
        var near = Descriptor(guid: GUID(random: [90]), ttl: 5, .query(Query(text: "near")))
        near.header.hops = 1
        var far = Descriptor(guid: GUID(random: [91]), ttl: 1, .query(Query(text: "far")))
        far.header.hops = 6
        queue.push(far)
        queue.push(near)
        queue.push(hit)
        for n in 0..<60 {
            queue.push(
                Descriptor(
                    guid: GUID(random: [UInt8(100 + n)]), ttl: 1,
                    .pong(Pong(endpoint: Endpoint("10.0.0.2:1")!, files: 0, kilobytes: 0))))
        }
        #expect(queue.bytes <= 2_000)
        #expect(queue.dropped > 0)
        // Out first: the hit, then the near query, then the far one.
        #expect(queue.pop() == hit.encoded())
        #expect(queue.pop() == near.encoded())
        #expect(queue.pop() == far.encoded())
        // What is left is pongs (pings went first when the budget ran out).
        var rest: [[UInt8]] = []
        while let next = queue.pop() { rest.append(next) }
        #expect(rest.allSatisfy { $0[16] == PayloadType.pong.rawValue })
        #expect(queue.isEmpty)
    }

    @Test("a token bucket: a burst, then the rate")
    func rateLimit() {
        var limit = RateLimit(perSecond: 10, burst: 20)
        let burst = (0..<50).filter { _ in limit.allow(now: .zero) }.count
        #expect(burst == 20)
        #expect(limit.refused == 30)
        let later = (0..<50).filter { _ in limit.allow(now: .seconds(2)) }.count
        #expect(later == 20)  // 2 s at 10/s, capped at the burst
    }
}

@Suite("Servent bounds")
struct ServentBoundsTests {
    @Test("a leaf's stream of queries gets probes, but at most maxDynamicQueries are widened later")
    func dynamicQueryBound() {
        var configuration = ServentConfiguration()
        configuration.ultrapeer = true
        var servent = Servent(configuration: configuration, seed: 1)
        _ = servent.connectionOpened(ConnectionID(1), kind: .ultrapeerToLeaf, now: .zero)
        _ = servent.connectionOpened(ConnectionID(2), kind: .ultrapeerToUltrapeer, now: .zero)
        _ = servent.connectionOpened(ConnectionID(3), kind: .ultrapeerToUltrapeer, now: .zero)
        var probes = 0
        for n in 0..<(Servent.maxDynamicQueries + 100) {
            let query = Descriptor(
                guid: GUID(
                    random: (0..<16).map { UInt8(truncatingIfNeeded: n >> ($0 % 2 * 8)) &+ UInt8($0) }),
                ttl: 1,
                .query(Query(text: "words \(n)")))
            probes += servent.received(query, from: ConnectionID(1), now: .zero).count
        }
        // Every query was probed (two ultrapeers each) ...
        #expect(probes == 2 * (Servent.maxDynamicQueries + 100))
        // ... but only the bounded number are widened: a third ultrapeer, connected later, is
        // asked once for each query kept.
        _ = servent.connectionOpened(ConnectionID(4), kind: .ultrapeerToUltrapeer, now: .zero)
        let widened = servent.tick(now: .seconds(3)).filter {
            if case .send(ConnectionID(4), let d) = $0 { d.header.payloadType == .query } else { false }
        }.count
        #expect(widened == Servent.maxDynamicQueries)
    }
}

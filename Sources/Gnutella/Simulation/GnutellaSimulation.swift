import PeerNet
import PeerSim

/// What a Gnutella simulation runs: the unchanged ``Servent`` state machines, their descriptors
/// as bytes over PeerSim's ``SimulatedNetwork``. It lives here, not in PeerSim, so that the
/// simulator stays below the application layer and imports no protocol (DESIGN.md).
public struct GnutellaSimulationConfiguration: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        /// Gnutella 0.4: every node an equal, every query flooded with TTL 7.
        case flooding
        /// Ultrapeers (a tenth of the nodes) flood between themselves with TTL 7; leaves (three
        /// ultrapeers each) get a query only when their QRP table matches.
        case ultrapeers
        /// The same topology, with dynamic querying instead of a flood.
        case dynamic
    }

    public var nodes = 10_000
    public var mode = Mode.flooding
    /// Queries, half for a rare file, half for a popular one.
    public var queries = 100
    /// Fraction of ultrapeers in the two-tier modes.
    public var ultrapeerFraction = 0.1
    /// Edges each new node adds in the power-law (preferential attachment) graph of the flat
    /// network, and of the ultrapeer mesh.
    public var attach = 3
    public var ultrapeerAttach = 5
    /// Ultrapeers each leaf connects to (LimeWire: 3).
    public var leafUltrapeers = 3
    /// Copies of a rare file (at least one) and a popular one, as fractions of the nodes.
    public var rareFraction = 0.001
    public var popularFraction = 0.05
    /// Files each node shares besides the ones searched for (their words fill QRP tables).
    public var filesPerNode = 10
    /// QRP table size in the simulation (2^bits slots; memory for 100,000 nodes).
    public var qrpBits = 12
    public var links = LinkModel()
    public var seed: UInt64 = 1
    /// Virtual time each query is given.
    public var queryTime: Duration = .seconds(60)

    public init() {}
}

/// What a Gnutella simulation measured, per query averaged.
public struct GnutellaSimulationReport: Sendable {
    public var mode = GnutellaSimulationConfiguration.Mode.flooding
    public var nodes = 0
    public var ultrapeers = 0
    public var queries = 0
    /// Query descriptors delivered per query (and all descriptors: queries and hits).
    public var queryMessages: [Int] = []
    public var allMessages: [Int] = []
    /// Queries for the rare and the popular file, and how many got at least one hit.
    public var rareQueries = 0
    public var rareFound = 0
    public var popularQueries = 0
    public var popularFound = 0
    /// Hops of the first hit of each successful query.
    public var firstHitHops: [Int] = []
    /// Results per query.
    public var results: [Int] = []
    /// The most descriptors any one node received for one query, per query.
    public var busiest: [Int] = []
    /// Nodes that received each query (reach).
    public var reach: [Int] = []

    public static func mean(_ values: [Int]) -> Double {
        values.isEmpty ? 0 : Double(values.reduce(0, +)) / Double(values.count)
    }
}

/// Runs Gnutella searches in a simulated network of servents.
public enum GnutellaSimulation {
    public enum Progress: Sendable {
        case building(nodes: Int)
        case connecting(done: Int, total: Int)
        case queries(done: Int, total: Int)
    }

    public static func run(
        _ configuration: GnutellaSimulationConfiguration, progress: (Progress) -> Void = { _ in }
    ) -> GnutellaSimulationReport {
        var random = SplitMix64(seed: configuration.seed)
        var network = SimulatedNetwork<[UInt8]>(links: configuration.links, seed: configuration.seed)
        let count = configuration.nodes
        let twoTier = configuration.mode != .flooding
        let ultrapeerCount = twoTier ? max(2, Int(Double(count) * configuration.ultrapeerFraction)) : count
        progress(.building(nodes: count))

        // Files: a rare and a popular one per query, plus background files from a vocabulary.
        let queryCount = configuration.queries
        var shared = [[String]](repeating: [], count: count)
        for node in 0..<count {
            for _ in 0..<configuration.filesPerNode {
                shared[node].append("word\(random.below(50_000)) word\(random.below(50_000)).mp3")
            }
        }
        var targets: [(words: String, rare: Bool)] = []
        for query in 0..<queryCount {
            let rare = query % 2 == 0
            let words = rare ? "rarezzq\(query) recording" : "popularqq\(query) hit"
            let copies = max(
                1, Int(Double(count) * (rare ? configuration.rareFraction : configuration.popularFraction)))
            for _ in 0..<copies { shared[random.below(count)].append("\(words).flac") }
            targets.append((words, rare))
        }

        // Servents: the first `ultrapeerCount` are ultrapeers.
        var servents: [Servent] = []
        servents.reserveCapacity(count)
        for node in 0..<count {
            _ = network.addNode()
            var settings = ServentConfiguration()
            settings.ultrapeer = node < ultrapeerCount
            settings.dynamicQuerying = configuration.mode == .dynamic
            settings.qrpBits = configuration.qrpBits
            settings.maxUltrapeerPeers = 10_000
            settings.maxLeaves = 10_000
            settings.listen = Endpoint(ip: IPAddress(v4: 0x0A00_0000 | UInt32(node)), port: 6346)
            var servent = Servent(
                configuration: settings, seed: configuration.seed &* 1_000_003 &+ UInt64(node))
            servent.share(
                shared[node].enumerated().map {
                    SharedFile(
                        index: UInt32($0.offset), name: $0.element, size: 1_000_000,
                        sha1: [UInt8](repeating: 0, count: 20))
                })
            servents.append(servent)
        }
        shared = []

        // Links: preferential attachment among ultrapeers (all nodes when flat); leaves to a
        // few random ultrapeers. Connection IDs are per node; `peer[node][id]` is the far end.
        var peer = [[Int: (node: Int, id: Int)]](repeating: [:], count: count)
        var ends: [Int] = []  // every edge's endpoints, for preferential attachment
        var pending: [(Int, [ServentAction])] = []
        func link(_ a: Int, _ b: Int) {
            let idA = peer[a].count + 1
            let idB = peer[b].count + 1
            peer[a][idA] = (b, idB)
            peer[b][idB] = (a, idA)
            let aUp = a < ultrapeerCount
            let bUp = b < ultrapeerCount
            let kindA: ConnectionKind =
                aUp ? (bUp ? .ultrapeerToUltrapeer : .ultrapeerToLeaf) : .leafToUltrapeer
            let kindB: ConnectionKind =
                bUp ? (aUp ? .ultrapeerToUltrapeer : .ultrapeerToLeaf) : .leafToUltrapeer
            pending.append(
                (a, servents[a].connectionOpened(ConnectionID(idA), kind: kindA, now: network.now)))
            pending.append(
                (b, servents[b].connectionOpened(ConnectionID(idB), kind: kindB, now: network.now)))
        }
        let attach = twoTier ? configuration.ultrapeerAttach : configuration.attach
        for node in 0..<ultrapeerCount {
            if node == 0 { continue }
            var chosen = Set<Int>()
            let wanted = min(attach, node)
            while chosen.count < wanted {
                let candidate =
                    ends.isEmpty || random.unit() < 0.1 ? random.below(node) : ends[random.below(ends.count)]
                if candidate != node { chosen.insert(candidate) }
            }
            for other in chosen.sorted() {
                link(node, other)
                ends += [node, other]
            }
            if node % 10_000 == 0 { progress(.connecting(done: node, total: count)) }
        }
        if twoTier {
            for leaf in ultrapeerCount..<count {
                var chosen = Set<Int>()
                while chosen.count < min(configuration.leafUltrapeers, ultrapeerCount) {
                    chosen.insert(random.below(ultrapeerCount))
                }
                for up in chosen.sorted() { link(leaf, up) }
                if leaf % 10_000 == 0 { progress(.connecting(done: leaf, total: count)) }
            }
        }
        // Deliver the QRP tables (leaves to their ultrapeers) before any query.
        var report = GnutellaSimulationReport()
        var received = [Int](repeating: 0, count: count)
        var touched: [Int] = []
        var queryGUID: GUID?
        var firstHit: Int?
        var resultsThisQuery = 0
        var queryMessages = 0
        var allMessages = 0

        func send(_ node: Int, _ actions: [ServentAction]) {
            for action in actions {
                switch action {
                case .send(let id, let descriptor):
                    guard let far = peer[node][id.value] else { continue }
                    network.send(
                        descriptor.encoded() + withUnsafeBytes(of: UInt32(far.id)) { Array($0) }, from: node,
                        to: far.node)
                case .result(let query, let hit):
                    if query == queryGUID {
                        resultsThisQuery += hit.results.count
                        if firstHit == nil { firstHit = -1 }
                    }
                case .close, .pushRequested, .discovered: break
                }
            }
        }
        for (node, actions) in pending { send(node, actions) }
        pending = []
        /// Runs events until `limit`; the origin's ultrapeers tick each second.
        func drain(until limit: Duration, ticking: [Int]) {
            var nextTick = network.now + .seconds(1)
            while true {
                let horizon = min(limit, nextTick)
                while let event = network.next(until: horizon) {
                    guard case .packet(_, let bytes) = event.payload, bytes.count >= 4 else { continue }
                    let id = bytes.suffix(4).withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
                    guard let descriptor = try? Descriptor(parsing: Array(bytes.dropLast(4))) else {
                        continue
                    }
                    if let guid = queryGUID, descriptor.header.guid == guid {
                        allMessages += 1
                        if descriptor.header.payloadType == .query {
                            queryMessages += 1
                            if received[event.node] == 0 { touched.append(event.node) }
                            received[event.node] += 1
                        }
                    }
                    let node = event.node
                    var actions = servents[node].received(
                        descriptor, from: ConnectionID(Int(id)), now: network.now)
                    if case .queryHit = descriptor.payload, let guid = queryGUID,
                        descriptor.header.guid == guid,
                        firstHit == nil || firstHit == -1,
                        actions.contains(where: { if case .result = $0 { true } else { false } })
                    {
                        firstHit = Int(descriptor.header.hops) + 1
                    }
                    send(node, actions)
                    actions = []
                }
                if nextTick > limit { break }
                network.advance(to: nextTick)
                for node in ticking { send(node, servents[node].tick(now: network.now)) }
                nextTick = network.now + .seconds(1)
                if network.pending == 0 && ticking.isEmpty { break }
            }
        }
        drain(until: network.now + .seconds(5), ticking: [])

        // Queries, one at a time, each from a random leaf (any node in the flat network).
        report.mode = configuration.mode
        report.nodes = count
        report.ultrapeers = twoTier ? ultrapeerCount : 0
        for (index, target) in targets.enumerated() {
            let origin = twoTier ? ultrapeerCount + random.below(count - ultrapeerCount) : random.below(count)
            resultsThisQuery = 0
            firstHit = nil
            queryMessages = 0
            allMessages = 0
            let (guid, actions) = servents[origin].search(target.words, now: network.now)
            queryGUID = guid
            send(origin, actions)
            let ticking = twoTier ? peer[origin].values.map(\.node).sorted() : [origin]
            drain(until: network.now + configuration.queryTime, ticking: ticking)
            report.queries += 1
            report.queryMessages.append(queryMessages)
            report.allMessages.append(allMessages)
            report.results.append(resultsThisQuery)
            report.reach.append(touched.count)
            report.busiest.append(touched.map { received[$0] }.max() ?? 0)
            for node in touched { received[node] = 0 }
            touched = []
            if target.rare {
                report.rareQueries += 1
                if resultsThisQuery > 0 { report.rareFound += 1 }
            } else {
                report.popularQueries += 1
                if resultsThisQuery > 0 { report.popularFound += 1 }
            }
            if resultsThisQuery > 0, let hops = firstHit, hops > 0 { report.firstHitHops.append(hops) }
            progress(.queries(done: index + 1, total: targets.count))
        }
        return report
    }
}

extension SplitMix64 {
    mutating func below(_ bound: Int) -> Int { Int(next() % UInt64(max(bound, 1))) }
}

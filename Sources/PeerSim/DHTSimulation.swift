import Crypto
import Kademlia
import MainlineDHT
import PeerNet

/// What a DHT simulation runs.
public struct DHTSimulationConfiguration: Sendable {
    /// How nodes get their first routing tables.
    public enum Join: String, Sendable, CaseIterable {
        /// Each node bootstraps through an earlier one with a real lookup of its own ID (BEP 5).
        case bootstrap
        /// Tables are filled directly with nodes from every distance (fast, for large networks);
        /// nodes that join later still bootstrap.
        case oracle
    }

    public var nodes = 1_000
    public var lookups = 1_000
    /// Fraction of nodes that leave silently after the network formed (still in others'
    /// tables), replaced by as many newcomers that bootstrap.
    public var churn = 0.0
    public var links = LinkModel()
    public var seed: UInt64 = 1
    public var join = Join.bootstrap
    public var lookup = LookupConfiguration()
    /// Operations run at once (joins and lookups go in waves of this many).
    public var concurrency = 200

    public init() {}
}

/// What a simulation measured.
public struct DHTSimulationReport: Sendable {
    public var nodes = 0
    public var departed = 0
    public var joinedLater = 0
    public var lookups = 0
    /// Lookups whose closest answering node was the live node closest to the target.
    public var succeeded = 0
    public var hops: [Int] = []
    public var rpcs: [Int] = []
    public var times: [Duration] = []
    /// Datagrams delivered while the network formed.
    public var joinPackets = 0
    public var packetsDelivered = 0
    public var packetsLost = 0
    public var virtualTime: Duration = .zero
    public var k = 8

    public var successRate: Double { lookups == 0 ? 0 : Double(succeeded) / Double(lookups) }
    /// Hops as Kademlia predicts them for this size: log2(N) / log2(k).
    public var predictedHops: Double { log2(Double(max(nodes, 2))) / log2(Double(max(k, 2))) }

    public static func percentile<T: Comparable>(_ values: [T], _ fraction: Double) -> T? {
        guard !values.isEmpty else { return nil }
        let sorted = values.sorted()
        return sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * fraction + 0.5))]
    }

    private func log2(_ value: Double) -> Double {
        var x = value
        var result = 0.0
        while x >= 2 {
            x /= 2
            result += 1
        }
        // x in [1, 2): ln(x)/ln(2) by the series of atanh, enough for a printed figure.
        let y = (x - 1) / (x + 1)
        var term = y
        var sum = 0.0
        var n = 1.0
        for _ in 0..<20 {
            sum += term / n
            term *= y * y
            n += 2
        }
        return result + 2 * sum / 0.693_147_180_559_945_3
    }
}

/// Where a running simulation is.
public enum DHTSimulationProgress: Sendable, Hashable {
    case fillingTables(nodes: Int)
    case joining(done: Int, of: Int)
    case churn(left: Int)
    case lookups(done: Int, of: Int)
}

/// The mainline DHT at scale: `nodes` unchanged ``DHTNode`` state machines exchanging real KRPC
/// datagrams over a ``SimulatedNetwork`` (virtual time, latency, loss), with churn. Same
/// configuration, same report.
public struct DHTSimulation {
    public let configuration: DHTSimulationConfiguration
    private var network: SimulatedNetwork
    private var nodes: [DHTNode] = []
    private var alive: [Bool] = []
    private var timerAt: [Duration?] = []
    private var finished: [Int: DHTResult] = [:]
    private var random: SplitMix64
    private var report = DHTSimulationReport()

    public init(_ configuration: DHTSimulationConfiguration) {
        self.configuration = configuration
        network = SimulatedNetwork(links: configuration.links, seed: configuration.seed)
        random = SplitMix64(seed: configuration.seed)
        report.k = configuration.lookup.k
    }

    /// Node `index` lives at 10.x.y.z:6881.
    static func address(of index: Int) -> Endpoint {
        Endpoint(ip: IPAddress(v4: 0x0A00_0000 | UInt32(truncatingIfNeeded: index) & 0xFF_FFFF), port: 6881)
    }

    static func index(of address: Endpoint) -> Int? {
        guard let ip = address.ip.v4, ip >> 24 == 10, address.port == 6881 else { return nil }
        return Int(ip & 0xFF_FFFF)
    }

    /// Runs the whole experiment: the network forms, churn strikes, then the lookups run.
    /// `progress` is told of each phase and of every tenth of the joins and lookups.
    public static func run(
        _ configuration: DHTSimulationConfiguration, progress: (DHTSimulationProgress) -> Void = { _ in }
    )
        -> DHTSimulationReport
    {
        var simulation = DHTSimulation(configuration)
        return simulation.execute(progress: progress)
    }

    private mutating func execute(progress: (DHTSimulationProgress) -> Void) -> DHTSimulationReport {
        let count = max(2, configuration.nodes)
        for _ in 0..<count { addNode() }
        report.nodes = count
        switch configuration.join {
        case .oracle:
            progress(.fillingTables(nodes: count))
            fillTables()
        case .bootstrap:
            join(Array(1..<count), through: Array(0..<1), progress: progress)
        }
        report.joinPackets = network.delivered

        // Churn: some nodes vanish without a word, as many new ones arrive.
        let leaving = Int(Double(count) * configuration.churn)
        if leaving > 0 {
            var candidates = Array(0..<count)
            shuffle(&candidates)
            for index in candidates.prefix(leaving) { alive[index] = false }
            report.departed = leaving
            let newcomers = (0..<leaving).map { _ in addNode() }
            progress(.churn(left: leaving))
            join(newcomers, through: (0..<count).filter { alive[$0] }, progress: progress)
            report.joinedLater = leaving
        }

        // The lookups, from random live nodes towards random targets.
        let live = alive.indices.filter { alive[$0] }
        let sortedLive = live.map { (nodes[$0].ownID, $0) }.sorted { $0.0 < $1.0 }
        var started = 0
        progress(.lookups(done: 0, of: configuration.lookups))
        var reported = 0
        while started < configuration.lookups {
            let wave = min(configuration.concurrency, configuration.lookups - started)
            var waiting: [(key: Int, target: NodeID)] = []
            for _ in 0..<wave {
                let from = live[Int(random.next() % UInt64(live.count))]
                let target = NodeID.random(using: &random)
                let (id, actions) = nodes[from].run(.findNode(target), now: network.now)
                waiting.append((key: Self.key(from, id), target: target))
                perform(actions, of: from)
            }
            runUntil { simulation in waiting.allSatisfy { simulation.finished[$0.key] != nil } }
            for entry in waiting {
                guard let result = finished.removeValue(forKey: entry.key) else { continue }
                report.lookups += 1
                report.hops.append(result.hops)
                report.rpcs.append(result.queries)
                report.times.append(result.elapsed)
                // The initiator never finds itself: the truth is the closest of the others.
                var truth = Self.closest(to: entry.target, in: sortedLive)
                if truth == nodes[entry.key >> 24].ownID {
                    truth = Self.closest(to: entry.target, in: sortedLive.filter { $0.1 != entry.key >> 24 })
                }
                if let found = result.closest.first?.id, found == truth {
                    report.succeeded += 1
                }
            }
            started += wave
            if started * 10 / max(1, configuration.lookups) > reported {
                reported = started * 10 / max(1, configuration.lookups)
                progress(.lookups(done: started, of: configuration.lookups))
            }
        }
        report.packetsDelivered = network.delivered
        report.packetsLost = network.lost
        report.virtualTime = network.now
        return report
    }

    private static func key(_ node: Int, _ id: DHTOperationID) -> Int { node << 24 | id.value }

    @discardableResult
    private mutating func addNode() -> Int {
        let index = network.addNode()
        var settings = DHTNode.Settings()
        settings.lookup = configuration.lookup
        settings.maintenance = false
        var dht = DHTConfiguration()
        dht.routing.k = configuration.lookup.k
        var secret = [UInt8](repeating: 0, count: 32)
        for position in secret.indices { secret[position] = UInt8.random(in: 0...255, using: &random) }
        nodes.append(
            DHTNode(
                ownID: NodeID.random(using: &random), secret: SymmetricKey(data: secret), configuration: dht,
                settings: settings, now: network.now))
        alive.append(true)
        timerAt.append(nil)
        return index
    }

    /// Joins `joiners` in waves, each through a random node of `entry` or of those that joined
    /// before it.
    private mutating func join(
        _ joiners: [Int], through entry: [Int], progress: (DHTSimulationProgress) -> Void
    ) {
        var known = entry
        var position = 0
        var reported = 0
        progress(.joining(done: 0, of: joiners.count))
        while position < joiners.count {
            let wave = Array(joiners[position..<min(joiners.count, position + configuration.concurrency)])
            var waiting: [Int] = []
            for joiner in wave {
                let via = known[Int(random.next() % UInt64(known.count))]
                let (id, actions) = nodes[joiner].bootstrap(from: [Self.address(of: via)], now: network.now)
                waiting.append(Self.key(joiner, id))
                perform(actions, of: joiner)
            }
            runUntil { simulation in waiting.allSatisfy { simulation.finished[$0] != nil } }
            for key in waiting { finished[key] = nil }
            known += wave
            position += wave.count
            if position * 10 / max(1, joiners.count) > reported {
                reported = position * 10 / max(1, joiners.count)
                progress(.joining(done: position, of: joiners.count))
            }
        }
    }

    /// Ready-made tables: for every bucket depth a few nodes at that distance, and the nodes
    /// nearest in ID order.
    private mutating func fillTables() {
        let sorted = nodes.indices.map { (nodes[$0].ownID, $0) }.sorted { $0.0 < $1.0 }
        let k = configuration.lookup.k
        var depth = 0
        while 1 << depth < nodes.count { depth += 1 }
        for (rank, entry) in sorted.enumerated() {
            let own = entry.0
            var chosen: [Int] = []
            for neighbour in max(0, rank - k)..<min(sorted.count, rank + k + 1) where neighbour != rank {
                chosen.append(sorted[neighbour].1)
            }
            for bucket in 0..<(depth + 2) {
                let target = own.randomInBucket(bucket, using: &random)
                let position = Self.insertionPoint(of: target, in: sorted)
                for candidate in max(0, position - k)..<min(sorted.count, position + k)
                where own.commonPrefixLength(with: sorted[candidate].0) == bucket {
                    chosen.append(sorted[candidate].1)
                }
            }
            for other in chosen {
                nodes[entry.1].addContact(
                    NodeInfo(id: nodes[other].ownID, address: Self.address(of: other)), now: network.now)
            }
        }
    }

    private static func insertionPoint(of target: NodeID, in sorted: [(NodeID, Int)]) -> Int {
        var low = 0
        var high = sorted.count
        while low < high {
            let middle = (low + high) / 2
            if sorted[middle].0 < target { low = middle + 1 } else { high = middle }
        }
        return low
    }

    /// The live node closest to `target` by XOR: among the IDs sharing the longest prefix with
    /// it, which sit together around its place in sorted order.
    static func closest(to target: NodeID, in sorted: [(NodeID, Int)]) -> NodeID? {
        guard !sorted.isEmpty else { return nil }
        let position = insertionPoint(of: target, in: sorted)
        let prefix =
            [position - 1, position].filter { sorted.indices.contains($0) }
            .map { target.commonPrefixLength(with: sorted[$0].0) }.max() ?? 0
        var low = position
        while low > 0 && target.commonPrefixLength(with: sorted[low - 1].0) >= prefix { low -= 1 }
        var high = position
        while high < sorted.count && target.commonPrefixLength(with: sorted[high].0) >= prefix { high += 1 }
        return sorted[low..<high].map(\.0).min { target.isCloser($0, than: $1) }
    }

    private mutating func shuffle(_ values: inout [Int]) {
        guard values.count > 1 else { return }
        for index in stride(from: values.count - 1, to: 0, by: -1) {
            values.swapAt(index, Int(random.next() % UInt64(index + 1)))
        }
    }

    /// Delivers events until `done` holds or nothing is left (bounded by a virtual hour).
    private mutating func runUntil(_ done: (DHTSimulation) -> Bool) {
        let limit = network.now + .seconds(3_600)
        var checked = 0
        while let event = network.next(until: limit) {
            process(event)
            checked += 1
            if checked % 64 == 0 && done(self) { return }
        }
    }

    private mutating func process(_ event: SimulatedNetwork.Event) {
        let node = event.node
        guard alive[node] else { return }  // a departed node hears nothing
        let now = event.time
        let actions: [DHTAction]
        switch event.payload {
        case .packet(let from, let bytes):
            actions = nodes[node].received(bytes, from: Self.address(of: from), now: now)
        case .timer:
            timerAt[node] = nil
            actions = nodes[node].timerFired(now: now, random: &random)
        }
        perform(actions, of: node)
    }

    private mutating func perform(_ actions: [DHTAction], of node: Int) {
        for action in actions {
            switch action {
            case .send(let bytes, let address):
                if let target = Self.index(of: address) { network.send(bytes, from: node, to: target) }
            case .finished(let id, let result):
                finished[Self.key(node, id)] = result
            }
        }
        if let deadline = nodes[node].nextDeadline, timerAt[node].map({ deadline < $0 }) ?? true {
            timerAt[node] = deadline
            network.wake(node, at: deadline)
        }
    }
}

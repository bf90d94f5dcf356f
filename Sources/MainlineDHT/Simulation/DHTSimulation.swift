import Crypto
import Kademlia
import PeerNet
import PeerSim

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

/// One DHT node in the simulator: PeerStack's unchanged ``DHTNode``, with node numbers for
/// addresses (node i is 10.x.y.z:6881) and the results of its operations kept for the caller.
public struct SimulatedDHTNode: SimulatedNode, Sendable {
    public var dht: DHTNode
    /// Finished operations, by operation number.
    public var finished: [Int: DHTResult] = [:]
    private var random: SplitMix64

    public init(_ dht: DHTNode, seed: UInt64) {
        self.dht = dht
        random = SplitMix64(seed: seed)
    }

    public mutating func receive(_ message: [UInt8], from: Int, context: inout SimulationContext<[UInt8]>) {
        perform(dht.received(message, from: DHTSimulation.address(of: from), now: context.now), &context)
    }

    public mutating func wake(context: inout SimulationContext<[UInt8]>) {
        perform(dht.timerFired(now: context.now, random: &random), &context)
    }

    /// Does what the DHT asked: datagrams out, results kept, the next deadline as a wake-up.
    public mutating func perform(_ actions: [DHTAction], _ context: inout SimulationContext<[UInt8]>) {
        for action in actions {
            switch action {
            case .send(let bytes, let address):
                if let target = DHTSimulation.index(of: address) { context.send(bytes, to: target) }
            case .finished(let id, let result):
                finished[id.value] = result
            }
        }
        if let deadline = dht.nextDeadline { context.wake(at: deadline) }
    }
}

/// The mainline DHT at scale: `nodes` unchanged ``DHTNode`` state machines exchanging real KRPC
/// datagrams in PeerSim's ``Simulation`` (virtual time, latency, loss), with churn. Same
/// configuration, same report. It lives here, not in PeerSim, so that the simulator imports no
/// protocol.
public struct DHTSimulation {
    public let configuration: DHTSimulationConfiguration
    private var simulation: Simulation<SimulatedDHTNode>
    private var random: SplitMix64
    private var report = DHTSimulationReport()

    public init(_ configuration: DHTSimulationConfiguration) {
        self.configuration = configuration
        simulation = Simulation(links: configuration.links, seed: configuration.seed)
        random = SplitMix64(seed: configuration.seed)
        report.k = configuration.lookup.k
    }

    /// Node `index` lives at 10.x.y.z:6881.
    public static func address(of index: Int) -> Endpoint {
        Endpoint(ip: IPAddress(v4: 0x0A00_0000 | UInt32(truncatingIfNeeded: index) & 0xFF_FFFF), port: 6881)
    }

    public static func index(of address: Endpoint) -> Int? {
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
        report.joinPackets = simulation.network.delivered

        // Churn: some nodes vanish without a word, as many new ones arrive.
        let leaving = Int(Double(count) * configuration.churn)
        if leaving > 0 {
            var candidates = Array(0..<count)
            shuffle(&candidates)
            for index in candidates.prefix(leaving) { simulation.remove(index) }
            report.departed = leaving
            let newcomers = (0..<leaving).map { _ in addNode() }
            progress(.churn(left: leaving))
            join(newcomers, through: (0..<count).filter { simulation.alive[$0] }, progress: progress)
            report.joinedLater = leaving
        }

        // The lookups, from random live nodes towards random targets.
        let live = simulation.alive.indices.filter { simulation.alive[$0] }
        let sortedLive = live.map { (simulation.nodes[$0].dht.ownID, $0) }.sorted { $0.0 < $1.0 }
        var started = 0
        progress(.lookups(done: 0, of: configuration.lookups))
        var reported = 0
        while started < configuration.lookups {
            let wave = min(configuration.concurrency, configuration.lookups - started)
            var waiting: [(node: Int, id: Int, target: NodeID)] = []
            for _ in 0..<wave {
                let from = live[Int(random.next() % UInt64(live.count))]
                let target = NodeID.random(using: &random)
                let id = simulation.act(on: from) { node, context in
                    let (id, actions) = node.dht.run(.findNode(target), now: context.now)
                    node.perform(actions, &context)
                    return id.value
                }
                waiting.append((from, id, target))
            }
            runUntil { simulation in waiting.allSatisfy { simulation.nodes[$0.node].finished[$0.id] != nil } }
            for entry in waiting {
                guard let result = simulation.nodes[entry.node].finished.removeValue(forKey: entry.id) else {
                    continue
                }
                report.lookups += 1
                report.hops.append(result.hops)
                report.rpcs.append(result.queries)
                report.times.append(result.elapsed)
                // The initiator never finds itself: the truth is the closest of the others.
                var truth = Self.closest(to: entry.target, in: sortedLive)
                if truth == simulation.nodes[entry.node].dht.ownID {
                    truth = Self.closest(to: entry.target, in: sortedLive.filter { $0.1 != entry.node })
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
        report.packetsDelivered = simulation.network.delivered
        report.packetsLost = simulation.network.lost
        report.virtualTime = simulation.now
        return report
    }

    @discardableResult
    private mutating func addNode() -> Int {
        var settings = DHTNode.Settings()
        settings.lookup = configuration.lookup
        settings.maintenance = false
        var dht = DHTConfiguration()
        dht.routing.k = configuration.lookup.k
        var secret = [UInt8](repeating: 0, count: 32)
        for position in secret.indices { secret[position] = UInt8.random(in: 0...255, using: &random) }
        let node = DHTNode(
            ownID: NodeID.random(using: &random), secret: SymmetricKey(data: secret), configuration: dht,
            settings: settings, now: simulation.now)
        return simulation.add(SimulatedDHTNode(node, seed: random.next()))
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
            var waiting: [(node: Int, id: Int)] = []
            for joiner in wave {
                let via = known[Int(random.next() % UInt64(known.count))]
                let id = simulation.act(on: joiner) { node, context in
                    let (id, actions) = node.dht.bootstrap(from: [Self.address(of: via)], now: context.now)
                    node.perform(actions, &context)
                    return id.value
                }
                waiting.append((joiner, id))
            }
            runUntil { simulation in waiting.allSatisfy { simulation.nodes[$0.node].finished[$0.id] != nil } }
            for entry in waiting { simulation.nodes[entry.node].finished[entry.id] = nil }
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
        let sorted = simulation.nodes.indices.map { (simulation.nodes[$0].dht.ownID, $0) }.sorted {
            $0.0 < $1.0
        }
        let k = configuration.lookup.k
        var depth = 0
        while 1 << depth < simulation.nodes.count { depth += 1 }
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
                let contact = NodeInfo(
                    id: simulation.nodes[other].dht.ownID, address: Self.address(of: other))
                simulation.nodes[entry.1].dht.addContact(contact, now: simulation.now)
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
    private mutating func runUntil(_ done: (Simulation<SimulatedDHTNode>) -> Bool) {
        simulation.run(until: simulation.now + .seconds(3_600), done: done)
    }
}

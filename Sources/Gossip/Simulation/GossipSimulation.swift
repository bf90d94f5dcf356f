import Foundation
import PeerNet
import PeerSim

/// What a gossip simulation runs.
public struct GossipSimulationConfiguration: Sendable {
    public var nodes = 10_000
    /// Push gossip: peers each informed node pushes to per round (uniformly random nodes).
    public var fanout = 1
    /// Flooding and GossipSub: each node dials this many random others (an overlay of about
    /// twice this degree).
    public var degree = 8
    /// Messages published (from random nodes) for flooding and GossipSub.
    public var messages = 5
    public var links = LinkModel()
    public var seed: UInt64 = 1
    /// GossipSub's parameters (go-libp2p's defaults; anonymous messages, IDs by content).
    public var gossipSub: GossipSubConfiguration = {
        var configuration = GossipSubConfiguration()
        configuration.signaturePolicy = .strictNoSign
        configuration.messageID = { $0.data }
        return configuration
    }()

    public init() {}
}

/// How one way of spreading did.
public struct SpreadReport: Sendable, Hashable, Codable {
    public var name: String
    public var nodes: Int
    /// Mean fraction of nodes each message reached.
    public var reach: Double
    /// Virtual time for a message to reach 50 %, 90 % and 100 % of nodes (means over messages;
    /// nil when some message never reached them all).
    public var timeTo50: Double?
    public var timeTo90: Double?
    public var timeTo100: Double?
    /// Push gossip only: rounds until every node knew the message, and the prediction.
    public var rounds: Double?
    public var predictedRounds: Double?
    /// Messages (payload copies) each node sent, per published message.
    public var messagesPerNode: Double
    /// Control messages (IHAVE, IWANT, GRAFT, PRUNE) each node sent per second (GossipSub).
    public var controlPerNodeSecond: Double?
}

/// Spreading a message to 10,000 nodes three ways, in PeerSim: push gossip (the epidemic of
/// Demers et al.; rounds against log₍f+1₎N + (ln N)/f, which is log₂N + ln N for fanout 1),
/// flooding over a random overlay, and GossipSub v1.1 (PeerStack's own router, unchanged) over
/// the same overlay.
public enum GossipSimulation {
    public enum Progress: Sendable {
        case running(String)
    }

    public static func run(
        _ configuration: GossipSimulationConfiguration, progress: (Progress) -> Void = { _ in }
    ) -> [SpreadReport] {
        progress(.running("push gossip"))
        let push = pushGossip(configuration)
        progress(.running("flooding"))
        let flood = flooding(configuration)
        progress(.running("GossipSub"))
        let gossip = gossipSub(configuration)
        return [push, flood, gossip]
    }

    /// Predicted rounds of push gossip with fanout `f` until all of `n` nodes know a rumour
    /// (Pittel 1987 for f = 1; Frieze and Grimmett's form for larger fanouts).
    public static func predictedRounds(nodes n: Int, fanout f: Int) -> Double {
        let count = Double(max(n, 2))
        let fanout = Double(max(f, 1))
        return log(count) / log(fanout + 1) + log(count) / fanout
    }

    /// A random overlay: node i dials `degree` distinct random others; links are undirected.
    static func overlay(_ count: Int, degree: Int, random: inout SplitMix64) -> [[Int]] {
        var neighbours = [Set<Int>](repeating: [], count: count)
        for node in 0..<count {
            var dialled = 0
            var attempts = 0
            while dialled < min(degree, count - 1), attempts < degree * 20 {
                attempts += 1
                let other = Int(random.next() % UInt64(count))
                guard other != node, neighbours[node].insert(other).inserted else { continue }
                neighbours[other].insert(node)
                dialled += 1
            }
        }
        return neighbours.map { $0.sorted() }
    }

    /// The times at which `fractions` of the nodes had the message, from the sorted arrival times.
    static func quantiles(_ arrivals: [Duration], nodes: Int, start: Duration) -> [Double?] {
        let sorted = arrivals.sorted()
        return [0.5, 0.9, 1.0].map { fraction in
            let needed = Int((Double(nodes) * fraction).rounded(.up))
            guard needed >= 1, sorted.count >= needed else { return nil }
            return (sorted[needed - 1] - start).seconds
        }
    }

    // MARK: Push gossip

    struct PushNode: SimulatedNode, Sendable {
        var informedAt: Duration?
        var informedRound: Int?
        var sent = 0
        var random: SplitMix64
        let fanout: Int
        let count: Int
        let round: Duration

        mutating func receive(_ message: Int, from: Int, context: inout SimulationContext<Int>) {
            guard informedAt == nil else { return }
            informedAt = context.now
            informedRound = message
            // Pushes start at the next round boundary.
            context.wake(at: round * (Int((context.now / round).rounded(.down)) + 1))
        }

        mutating func wake(context: inout SimulationContext<Int>) {
            guard informedAt != nil else { return }
            let roundNumber = Int((context.now / round).rounded())
            for _ in 0..<fanout {
                var target = Int(random.next() % UInt64(count))
                if target == context.node { target = (target + 1) % count }
                context.send(roundNumber, to: target)
                sent += 1
            }
            context.wake(at: context.now + round)
        }
    }

    static func pushGossip(_ configuration: GossipSimulationConfiguration) -> SpreadReport {
        let count = configuration.nodes
        var simulation = Simulation<PushNode>(links: configuration.links, seed: configuration.seed)
        var random = SplitMix64(seed: configuration.seed)
        for _ in 0..<count {
            simulation.add(
                PushNode(
                    random: SplitMix64(seed: random.next()), fanout: configuration.fanout, count: count,
                    round: .seconds(1)))
        }
        simulation.act(on: 0) { node, context in node.receive(0, from: 0, context: &context) }
        // Rounds go on until everyone knows (informed nodes keep pushing: bounded by time).
        let limit = Duration.seconds(
            Int64(predictedRounds(nodes: count, fanout: configuration.fanout) * 4 + 20))
        simulation.run(until: limit, checkEvery: 4_096) { simulation in
            simulation.nodes.allSatisfy { $0.informedAt != nil }
        }
        let arrivals = simulation.nodes.compactMap(\.informedAt)
        let rounds = simulation.nodes.compactMap(\.informedRound).max().map(Double.init)
        let informedAll = arrivals.count == count
        // Pushes are counted until the run noticed that every node knew (within a round).
        let times = quantiles(arrivals, nodes: count, start: .zero)
        let sent = simulation.nodes.map(\.sent).reduce(0, +)
        return SpreadReport(
            name: "push gossip (fanout \(configuration.fanout))", nodes: count,
            reach: Double(arrivals.count) / Double(count), timeTo50: times[0], timeTo90: times[1],
            timeTo100: informedAll ? times[2] : nil, rounds: informedAll ? rounds : nil,
            predictedRounds: predictedRounds(nodes: count, fanout: configuration.fanout),
            messagesPerNode: Double(sent) / Double(count), controlPerNodeSecond: nil)
    }

    // MARK: Flooding

    struct FloodNode: SimulatedNode, Sendable {
        let neighbours: [Int]
        var seen: [Int: Duration] = [:]
        var sent = 0

        mutating func receive(_ message: Int, from: Int, context: inout SimulationContext<Int>) {
            guard seen[message] == nil else { return }
            seen[message] = context.now
            for neighbour in neighbours where neighbour != from {
                context.send(message, to: neighbour)
                sent += 1
            }
        }

        mutating func wake(context: inout SimulationContext<Int>) {}
    }

    static func flooding(_ configuration: GossipSimulationConfiguration) -> SpreadReport {
        let count = configuration.nodes
        var random = SplitMix64(seed: configuration.seed ^ 0xF100D)
        let neighbours = overlay(count, degree: configuration.degree, random: &random)
        var simulation = Simulation<FloodNode>(links: configuration.links, seed: configuration.seed)
        for node in 0..<count { simulation.add(FloodNode(neighbours: neighbours[node])) }
        var reports: [(reach: Double, times: [Double?])] = []
        for message in 0..<configuration.messages {
            let source = Int(random.next() % UInt64(count))
            let start = simulation.now
            simulation.act(on: source) { node, context in
                node.receive(message, from: source, context: &context)
            }
            simulation.run(until: start + .seconds(60), checkEvery: 4_096)
            let arrivals = simulation.nodes.compactMap { $0.seen[message] }
            reports.append(
                (Double(arrivals.count) / Double(count), quantiles(arrivals, nodes: count, start: start)))
        }
        let sent = simulation.nodes.map(\.sent).reduce(0, +)
        return summary(
            "flooding (overlay degree \(2 * configuration.degree))", count, reports,
            messagesPerNode: Double(sent) / Double(count) / Double(max(1, configuration.messages)))
    }

    static func summary(
        _ name: String, _ count: Int, _ reports: [(reach: Double, times: [Double?])], messagesPerNode: Double,
        control: Double? = nil
    ) -> SpreadReport {
        func mean(_ index: Int) -> Double? {
            let values = reports.compactMap { $0.times[index] }
            return values.count == reports.count && !values.isEmpty
                ? values.reduce(0, +) / Double(values.count) : nil
        }
        return SpreadReport(
            name: name, nodes: count,
            reach: reports.map(\.reach).reduce(0, +) / Double(max(1, reports.count)),
            timeTo50: mean(0), timeTo90: mean(1), timeTo100: mean(2), rounds: nil, predictedRounds: nil,
            messagesPerNode: messagesPerNode, controlPerNodeSecond: control)
    }

    // MARK: GossipSub

    /// A GossipSub node in the simulator: PeerStack's router, RPCs passed as values.
    public struct SimulatedGossipNode: SimulatedNode, Sendable {
        public var router: GossipSubRouter<NodeNumber>
        /// When each message (by ID) was first delivered here.
        public var delivered: [[UInt8]: Duration] = [:]
        public let heartbeat: Duration
        var started = false

        public init(router: GossipSubRouter<NodeNumber>) {
            self.router = router
            heartbeat = router.configuration.heartbeatInterval
        }

        public mutating func receive(
            _ message: PubSubRPC, from: Int, context: inout SimulationContext<PubSubRPC>
        ) {
            perform(router.receive(message, from: NodeNumber(from), now: context.now), &context)
        }

        public mutating func wake(context: inout SimulationContext<PubSubRPC>) {
            perform(router.heartbeat(now: context.now), &context)
            context.wake(at: context.now + heartbeat)
        }

        public mutating func perform(
            _ actions: [GossipAction<NodeNumber>], _ context: inout SimulationContext<PubSubRPC>
        ) {
            for action in actions {
                switch action {
                case .send(let peer, let rpc): context.send(rpc, to: peer.value)
                case .deliver(_, let id, _): if delivered[id] == nil { delivered[id] = context.now }
                case .connect: break
                }
            }
        }
    }

    static func gossipSub(_ configuration: GossipSimulationConfiguration) -> SpreadReport {
        let count = configuration.nodes
        var random = SplitMix64(seed: configuration.seed ^ 0xF100D)
        let neighbours = overlay(count, degree: configuration.degree, random: &random)
        var simulation = Simulation<SimulatedGossipNode>(links: configuration.links, seed: configuration.seed)
        for node in 0..<count {
            simulation.add(
                SimulatedGossipNode(
                    router: GossipSubRouter(configuration: configuration.gossipSub, seed: random.next())))
        }
        // Connections (the lower number dialled), subscriptions, heartbeats at random phases.
        let topic = "sim"
        for node in 0..<count {
            simulation.act(on: node) { gossip, context in
                for peer in neighbours[node] {
                    gossip.perform(
                        gossip.router.addPeer(
                            NodeNumber(peer), protocol: .meshsub11, outbound: node < peer, now: context.now),
                        &context)
                }
                gossip.perform(gossip.router.subscribe(topic, now: context.now), &context)
                let phase = Double(random.next() % 1_000) / 1_000
                context.wake(at: context.now + gossip.heartbeat * phase)
            }
        }
        // Meshes form over a few heartbeats.
        simulation.advance(to: simulation.now + .seconds(10))
        let controlBefore = simulation.nodes.map { $0.router.statistics.rpcsSent }.reduce(0, +)
        let sentBefore = simulation.nodes.map { $0.router.statistics.messagesSent }.reduce(0, +)
        let measureStart = simulation.now
        var reports: [(reach: Double, times: [Double?])] = []
        for message in 0..<configuration.messages {
            let source = Int(random.next() % UInt64(count))
            let start = simulation.now
            let id = Array("message \(message)".utf8)
            simulation.act(on: source) { gossip, context in
                gossip.perform(
                    gossip.router.publish(.anonymous(topic: topic, data: id), now: context.now), &context)
                gossip.delivered[id] = context.now
            }
            // Gossip repairs over heartbeats: a message is followed for 10 s.
            simulation.advance(to: start + .seconds(10))
            let arrivals = simulation.nodes.compactMap { $0.delivered[id] }
            reports.append(
                (Double(arrivals.count) / Double(count), quantiles(arrivals, nodes: count, start: start)))
        }
        let seconds = (simulation.now - measureStart).seconds
        let sent = simulation.nodes.map { $0.router.statistics.messagesSent }.reduce(0, +) - sentBefore
        let rpcs = simulation.nodes.map { $0.router.statistics.rpcsSent }.reduce(0, +) - controlBefore
        let d = configuration.gossipSub.d
        return summary(
            "GossipSub v1.1 (D = \(d), same overlay)", count, reports,
            messagesPerNode: Double(sent) / Double(count) / Double(max(1, configuration.messages)),
            control: Double(max(0, rpcs - sent)) / Double(count) / max(seconds, 1))
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

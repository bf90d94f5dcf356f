import Foundation
import PeerNet
import PeerSim

/// What the SWIM measurement runs: a cluster of memberlist members in PeerSim, crashes one at a
/// time, and counts members wrongly declared failed under packet loss.
public struct SWIMSimulationConfiguration: Sendable {
    public var nodes = 500
    /// One run per loss rate.
    public var losses: [Double] = [0.01, 0.05]
    /// Members crashed (one at a time) per run; the detection times are averaged.
    public var crashes = 3
    /// How long each crash is followed.
    public var followCrash: Duration = .seconds(150)
    /// A quiet time before the crashes, when any member declared failed is a false positive.
    public var quiet: Duration = .seconds(60)
    public var links = LinkModel()
    public var seed: UInt64 = 1
    /// memberlist's LAN defaults; the simulated members' names and addresses are set per node.
    public var probeInterval: Duration = .seconds(1)
    public var suspicionMultiplier = 4

    public init() {}
}

/// One run's figures.
public struct SWIMReport: Sendable, Hashable, Codable {
    public var nodes: Int
    public var loss: Double
    /// Mean seconds from a crash until the first member declares it failed.
    public var detectionFirst: Double?
    /// Mean seconds until every live member holds it failed.
    public var detectionAll: Double?
    /// SWIM's expected time to first detection: a first probe (T·e/(e−1) on average, SWIM
    /// §3.1), the probe round (T), then memberlist's minimum suspicion timeout.
    public var predictedDetection: Double
    /// Crashes detected by every member within the follow-up time, of those made.
    public var detected: Int
    public var crashes: Int
    /// Live members declared failed (false positives), counted at every member that did.
    public var falseFailures: Int
    /// Suspicions of live members a member saw, on average (news of one suspicion reaches all).
    public var falseSuspicionsPerMember: Double
    /// False failure declarations per member per hour.
    public var falsePositivesPerMemberHour: Double
    /// Packets sent per member per second.
    public var packetsPerMemberSecond: Double
    /// Times a live member refuted a suspicion of itself: one per wrong suspicion episode.
    public var refutations: Int
}

/// SWIM (memberlist's member, unchanged) in PeerSim.
public enum SWIMSimulation {
    /// A message between simulated members: one packet's messages, or a push-pull.
    public enum Message: Sendable {
        case packet([[UInt8]])
        case pushPull(PushPull, reply: Bool)
    }

    /// Member number `index` lives at 10.x.y.z:7946.
    public static func endpoint(_ index: Int) -> Endpoint {
        Endpoint(ip: IPAddress(v4: 0x0A00_0000 | UInt32(index & 0xFF_FFFF)), port: 7946)
    }

    static func index(_ endpoint: Endpoint) -> Int? { endpoint.ip.v4.map { Int($0 & 0xFF_FFFF) } }

    public static func name(_ index: Int) -> String { "m\(index)" }

    /// A memberlist member in the simulator.
    public struct Node: SimulatedNode, Sendable {
        public var member: SWIMMember
        /// When this member first declared each other member failed (or saw it leave).
        public var failedAt: [String: Duration] = [:]
        public var suspectedAt: [String: [Duration]] = [:]
        public var malformed = 0

        public init(member: SWIMMember) { self.member = member }

        public mutating func receive(_ message: Message, from: Int, context: inout SimulationContext<Message>)
        {
            switch message {
            case .packet(let parts):
                var messages: [MemberlistMessage] = []
                for part in parts {
                    if let decoded = try? MemberlistCodec.decode(part) {
                        messages.append(decoded)
                    } else {
                        malformed += 1
                    }
                }
                perform(
                    member.receive(messages, from: SWIMSimulation.endpoint(from), now: context.now), &context)
            case .pushPull(let remote, let reply):
                if !reply {
                    context.send(
                        .pushPull(member.localState(join: remote.join, now: context.now), reply: true),
                        to: from)
                }
                perform(member.merge(remote, now: context.now), &context)
            }
            context.wake(at: member.nextDeadline)
        }

        public mutating func wake(context: inout SimulationContext<Message>) {
            perform(member.tick(now: context.now), &context)
            context.wake(at: member.nextDeadline)
        }

        public mutating func perform(_ actions: [SWIMAction], _ context: inout SimulationContext<Message>) {
            for action in actions {
                switch action {
                case .send(let messages, let to, _):
                    if let target = SWIMSimulation.index(to) { context.send(.packet(messages), to: target) }
                case .pushPull(let to, let join):
                    if let target = SWIMSimulation.index(to) {
                        context.send(
                            .pushPull(member.localState(join: join, now: context.now), reply: false),
                            to: target)
                    }
                case .event(.failed(let record)), .event(.left(let record)):
                    if failedAt[record.name] == nil { failedAt[record.name] = context.now }
                case .event(.joined(let record)):
                    failedAt[record.name] = nil
                case .event(.suspected(let record)):
                    suspectedAt[record.name, default: []].append(context.now)
                case .event(.updated), .streamPing:
                    // The simulated network carries datagrams only: no TCP fallback.
                    break
                }
            }
        }
    }

    /// A converged cluster of `count` members (each given everyone's alive state, as after a
    /// round of push-pulls), their timers at random phases.
    public static func cluster(
        _ count: Int, links: LinkModel, seed: UInt64, configure: (inout SWIMConfiguration) -> Void = { _ in }
    ) -> Simulation<Node> {
        var simulation = Simulation<Node>(links: links, seed: seed)
        var random = SplitMix64(seed: seed ^ 0x5717)
        var configurations: [SWIMConfiguration] = []
        for index in 0..<count {
            var configuration = SWIMConfiguration(name: name(index), advertise: endpoint(index))
            configure(&configuration)
            configurations.append(configuration)
        }
        let everyone = PushPull(
            join: true,
            nodes: configurations.map {
                PushNodeState(
                    name: $0.name, address: $0.advertise.ip.bytes, port: $0.advertise.port, meta: $0.meta,
                    incarnation: 1,
                    state: .alive, versions: $0.versions)
            })
        for index in 0..<count {
            // A random phase: members do not probe in lockstep.
            let phase = Duration.milliseconds(Int(random.next() % 1000))
            var member = SWIMMember(
                configuration: configurations[index], now: .zero - phase, seed: random.next())
            _ = member.merge(everyone, now: .zero)
            simulation.add(Node(member: member))
        }
        for index in 0..<count {
            simulation.act(on: index) { node, context in context.wake(at: node.member.nextDeadline) }
        }
        return simulation
    }

    /// memberlist's expected detection time for a crash in a cluster of `nodes`.
    public static func predictedDetection(nodes: Int, probeInterval: Duration, suspicionMultiplier: Int)
        -> Double
    {
        let interval = probeInterval.seconds
        let firstProbe = interval * M_E / (M_E - 1)
        let suspicion = Double(suspicionMultiplier) * max(1, log10(Double(max(1, nodes)))) * interval
        return firstProbe + interval + suspicion
    }

    public static func run(
        _ configuration: SWIMSimulationConfiguration, progress: (String) -> Void = { _ in }
    ) -> [SWIMReport] {
        configuration.losses.map { loss in
            progress("SWIM at \(Int((loss * 100).rounded())) % loss")
            return run(configuration, loss: loss)
        }
    }

    static func run(_ configuration: SWIMSimulationConfiguration, loss: Double) -> SWIMReport {
        let count = configuration.nodes
        var links = configuration.links
        links.loss = loss
        var simulation = cluster(count, links: links, seed: configuration.seed) { member in
            member.probeInterval = configuration.probeInterval
            member.suspicionMultiplier = configuration.suspicionMultiplier
        }
        var random = SplitMix64(seed: configuration.seed ^ 0xC4A5)
        // Settle: the first probes and gossip.
        simulation.advance(to: .seconds(10))
        let start = simulation.now
        let packetsBefore = simulation.nodes.map(\.member.statistics.packetsSent).reduce(0, +)
        simulation.advance(to: start + configuration.quiet)
        var crashed: [Int] = []
        var first: [Double] = []
        var all: [Double] = []
        var detected = 0
        for _ in 0..<min(configuration.crashes, count - 2) {
            var victim = Int(random.next() % UInt64(count))
            while crashed.contains(victim) { victim = (victim + 1) % count }
            crashed.append(victim)
            let victimName = name(victim)
            let crashTime = simulation.now
            simulation.remove(victim)
            let everyone = simulation.run(until: crashTime + configuration.followCrash, checkEvery: 4096) {
                simulation in
                simulation.nodes.indices.allSatisfy {
                    !simulation.alive[$0] || simulation.nodes[$0].failedAt[victimName] != nil
                }
            }
            let times = simulation.nodes.indices.filter { simulation.alive[$0] }.compactMap {
                simulation.nodes[$0].failedAt[victimName]
            }
            if let earliest = times.min() { first.append((earliest - crashTime).seconds) }
            if everyone, let latest = times.max() {
                all.append((latest - crashTime).seconds)
                detected += 1
            }
            // Let the news settle before the next crash.
            simulation.advance(to: simulation.now + .seconds(5))
        }
        let elapsed = (simulation.now - start).seconds
        let crashedNames = Set(crashed.map(name))
        var falseFailures = 0
        var falseSuspicions = 0
        var refutations = 0
        for index in simulation.nodes.indices where simulation.alive[index] {
            let node = simulation.nodes[index]
            falseFailures += node.failedAt.keys.filter { !crashedNames.contains($0) }.count
            falseSuspicions += node.suspectedAt.filter { !crashedNames.contains($0.key) }.map(\.value.count)
                .reduce(0, +)
            refutations += node.member.statistics.refutations
        }
        let live = Double(count - crashed.count)
        let packets = simulation.nodes.map(\.member.statistics.packetsSent).reduce(0, +) - packetsBefore
        func mean(_ values: [Double]) -> Double? {
            values.isEmpty ? nil : values.reduce(0, +) / Double(values.count)
        }
        return SWIMReport(
            nodes: count, loss: loss, detectionFirst: mean(first), detectionAll: mean(all),
            predictedDetection: predictedDetection(
                nodes: count, probeInterval: configuration.probeInterval,
                suspicionMultiplier: configuration.suspicionMultiplier),
            detected: detected, crashes: crashed.count, falseFailures: falseFailures,
            falseSuspicionsPerMember: Double(falseSuspicions) / live,
            falsePositivesPerMemberHour: Double(falseFailures) / live / max(elapsed / 3600, 1e-9),
            packetsPerMemberSecond: Double(packets) / Double(count) / max(elapsed, 1e-9),
            refutations: refutations)
    }
}

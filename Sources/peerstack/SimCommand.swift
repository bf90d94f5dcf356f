import ArgumentParser
import Blockchain
import Foundation
import Gnutella
import Gossip
import MainlineDHT
import PeerSim

struct SimCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run protocols at scale in a deterministic simulator (virtual time, latency, loss, churn).",
        subcommands: [SimDHT.self, SimGnutella.self, SimGossip.self, SimChain.self]
    )
}

struct SimDHT: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dht",
        abstract: "Simulate a mainline DHT: N nodes running PeerStack's own DHT state machines.",
        discussion: """
            The nodes exchange real KRPC datagrams over a simulated network: each node has an \
            access delay of 5-100 ms, packets are lost with --loss, and --churn of the nodes leave \
            silently after the network forms while as many new ones join. A lookup succeeds when \
            the closest node it found is the live node closest to its target. The same --seed \
            gives the same numbers.
            """
    )

    @Option(help: "Nodes in the network.")
    var nodes = 1_000

    @Option(help: "Lookups (find_node of random targets from random live nodes).")
    var lookups = 1_000

    @Option(help: "Fraction of nodes that leave silently (and are replaced by newcomers).")
    var churn = 0.0

    @Option(help: "Probability that a packet is lost.")
    var loss = 0.0

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Option(
        help:
            "How tables are first filled: bootstrap (real lookups) or oracle (direct; for big N). Default: bootstrap up to 20000 nodes."
    )
    var join: DHTSimulationConfiguration.Join?

    @Option(help: "Bucket size and lookup width k.")
    var k = 8

    @Option(help: "Queries in flight per lookup (alpha).")
    var alpha = 3

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (2...1_000_000).contains(nodes) else { throw ValidationError("--nodes: 2 to 1000000") }
        guard (0...1_000_000).contains(lookups) else { throw ValidationError("--lookups: 0 to 1000000") }
        guard (0..<1).contains(churn), (0..<1).contains(loss) else {
            throw ValidationError("--churn and --loss are fractions in [0, 1)")
        }
        guard (1...64).contains(k), (1...16).contains(alpha) else {
            throw ValidationError("--k 1-64, --alpha 1-16")
        }
    }

    func run() async throws {
        var configuration = DHTSimulationConfiguration()
        configuration.nodes = nodes
        configuration.lookups = lookups
        configuration.churn = churn
        configuration.links.loss = loss
        configuration.seed = seed
        configuration.join = join ?? (nodes <= 20_000 ? .bootstrap : .oracle)
        configuration.lookup.k = k
        configuration.lookup.alpha = alpha
        let started = ContinuousClock.now
        var lookupsStarted: ContinuousClock.Instant?
        let report = DHTSimulation.run(configuration) { progress in
            switch progress {
            case .fillingTables(let count):
                Terminal.status("filling \(count) routing tables")
            case .joining(let done, let total):
                Terminal.status("joining: \(done)/\(total) nodes bootstrapped")
            case .churn(let left):
                Terminal.status("churn: \(left) nodes left silently; as many new ones join")
            case .lookups(let done, let total):
                if lookupsStarted == nil { lookupsStarted = .now }
                Terminal.status("lookups: \(done)/\(total)")
            }
        }
        let ended = ContinuousClock.now
        let wall = ProgressBar.seconds(ended - started)
        // What came before the lookups formed the network.
        let lookupWall = ProgressBar.seconds(ended - (lookupsStarted ?? started))
        let hops50 = DHTSimulationReport.percentile(report.hops, 0.5) ?? 0
        let hops95 = DHTSimulationReport.percentile(report.hops, 0.95) ?? 0
        let rpcs50 = DHTSimulationReport.percentile(report.rpcs, 0.5) ?? 0
        let meanRPCs = report.rpcs.isEmpty ? 0 : Double(report.rpcs.reduce(0, +)) / Double(report.rpcs.count)
        let time50 = ProgressBar.seconds(DHTSimulationReport.percentile(report.times, 0.5) ?? .zero)
        let time95 = ProgressBar.seconds(DHTSimulationReport.percentile(report.times, 0.95) ?? .zero)
        let memory = Self.peakMemoryMiB()
        if json {
            try printJSON(
                SimJSON(
                    nodes: report.nodes, lookups: report.lookups, churn: churn, loss: loss, seed: seed,
                    join: configuration.join.rawValue, successRate: report.successRate, medianHops: hops50,
                    p95Hops: hops95, predictedHops: report.predictedHops, medianRPCs: rpcs50,
                    meanRPCs: meanRPCs,
                    medianSeconds: time50, p95Seconds: time95, packets: report.packetsDelivered,
                    lost: report.packetsLost, wallSeconds: wall, lookupWallSeconds: lookupWall,
                    peakMemoryMiB: memory))
            return
        }
        print(
            """
            nodes \(report.nodes) (join: \(configuration.join.rawValue)), \(report.departed) left, \(report.joinedLater) joined later
            lookups \(report.lookups): success \(String(format: "%.2f", report.successRate * 100)) %
            hops: median \(hops50), p95 \(hops95); predicted log2(N)/log2(k) = \(String(format: "%.2f", report.predictedHops))
            RPCs per lookup: median \(rpcs50), mean \(String(format: "%.1f", meanRPCs))
            virtual time per lookup: median \(String(format: "%.3f", time50)) s, p95 \(String(format: "%.3f", time95)) s
            packets: \(report.packetsDelivered) delivered, \(report.packetsLost) lost; virtual time \(String(format: "%.1f", ProgressBar.seconds(report.virtualTime))) s
            wall \(String(format: "%.1f", wall)) s (lookups \(String(format: "%.1f", lookupWall)) s), peak memory \(memory) MiB
            """)
    }

    static func peakMemoryMiB() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss / 1_024
    }
}

extension DHTSimulationConfiguration.Join: ExpressibleByArgument {}

struct SimJSON: Codable {
    var nodes: Int
    var lookups: Int
    var churn: Double
    var loss: Double
    var seed: UInt64
    var join: String
    var successRate: Double
    var medianHops: Int
    var p95Hops: Int
    var predictedHops: Double
    var medianRPCs: Int
    var meanRPCs: Double
    var medianSeconds: Double
    var p95Seconds: Double
    var packets: Int
    var lost: Int
    var wallSeconds: Double
    var lookupWallSeconds: Double
    var peakMemoryMiB: Int
}

struct SimGnutella: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gnutella",
        abstract: "Simulate Gnutella searches: flooding against ultrapeers with QRP and dynamic querying.",
        discussion: """
            N nodes run PeerStack's own servent state machines; their descriptors travel as bytes \
            over a simulated network (5-100 ms access delays). flooding: every node an equal in a \
            power-law graph (3 edges per newcomer), queries flooded with TTL 7. ultrapeers: a \
            tenth of the nodes are ultrapeers in a power-law mesh (5 edges per newcomer), each \
            leaf under 3 of them, QRP tables keep queries from leaves that lack the words, \
            ultrapeers flood with TTL 7. dynamic: the same, with dynamic querying. Half the \
            queries look for a rare file (0.1 % of nodes have it), half for a popular one (5 %). \
            The same --seed gives the same numbers.
            """
    )

    @Option(help: "Nodes in the network.")
    var nodes = 10_000

    @Option(help: "flooding, ultrapeers, dynamic or all.")
    var mode = "all"

    @Option(help: "Queries per mode.")
    var queries = 40

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (10...200_000).contains(nodes) else { throw ValidationError("--nodes: 10 to 200000") }
        guard (1...10_000).contains(queries) else { throw ValidationError("--queries: 1 to 10000") }
        guard mode == "all" || GnutellaSimulationConfiguration.Mode(rawValue: mode) != nil else {
            throw ValidationError("--mode: flooding, ultrapeers, dynamic or all")
        }
    }

    struct Row: Codable {
        var mode: String
        var nodes: Int
        var ultrapeers: Int
        var queries: Int
        var queryMessagesPerQuery: Double
        var messagesPerQuery: Double
        var nodesReachedPerQuery: Double
        var rareSuccess: Double
        var popularSuccess: Double
        var resultsPerQuery: Double
        var meanFirstHitHops: Double
        var busiestNodePerQuery: Double
        var wallSeconds: Double
    }

    func run() async throws {
        let modes =
            mode == "all"
            ? GnutellaSimulationConfiguration.Mode.allCases
            : [GnutellaSimulationConfiguration.Mode(rawValue: mode)].compactMap { $0 }
        var rows: [Row] = []
        for mode in modes {
            var configuration = GnutellaSimulationConfiguration()
            configuration.nodes = nodes
            configuration.queries = queries
            configuration.seed = seed
            configuration.mode = mode
            let started = ContinuousClock.now
            let report = GnutellaSimulation.run(configuration) { progress in
                switch progress {
                case .building(let count): Terminal.status("\(mode.rawValue): building \(count) servents")
                case .connecting(let done, let total):
                    Terminal.status("\(mode.rawValue): connecting \(done)/\(total)")
                case .queries(let done, let total):
                    if done % max(1, total / 5) == 0 {
                        Terminal.status("\(mode.rawValue): queries \(done)/\(total)")
                    }
                }
            }
            let mean = GnutellaSimulationReport.mean
            rows.append(
                Row(
                    mode: mode.rawValue, nodes: report.nodes, ultrapeers: report.ultrapeers,
                    queries: report.queries,
                    queryMessagesPerQuery: mean(report.queryMessages),
                    messagesPerQuery: mean(report.allMessages),
                    nodesReachedPerQuery: mean(report.reach),
                    rareSuccess: Double(report.rareFound) / Double(max(report.rareQueries, 1)),
                    popularSuccess: Double(report.popularFound) / Double(max(report.popularQueries, 1)),
                    resultsPerQuery: mean(report.results), meanFirstHitHops: mean(report.firstHitHops),
                    busiestNodePerQuery: mean(report.busiest),
                    wallSeconds: ProgressBar.seconds(ContinuousClock.now - started)))
        }
        if json {
            for row in rows { try printJSON(row) }
            return
        }
        print(
            "nodes \(nodes), \(queries) queries per mode (half rare: 0.1 % of nodes; half popular: 5 %), seed \(seed)"
        )
        print(
            "mode        query msgs/query  all msgs/query  nodes reached  rare found  popular found  results  1st-hit hops  busiest node  wall s"
        )
        for row in rows {
            print(
                row.mode.padding(toLength: 11, withPad: " ", startingAt: 0)
                    + String(
                        format: " %16.0f %15.0f %14.0f %10.0f%% %13.0f%% %8.1f %13.2f %13.1f %7.1f",
                        row.queryMessagesPerQuery, row.messagesPerQuery, row.nodesReachedPerQuery,
                        row.rareSuccess * 100, row.popularSuccess * 100, row.resultsPerQuery,
                        row.meanFirstHitHops,
                        row.busiestNodePerQuery, row.wallSeconds))
        }
        Terminal.status("peak memory \(SimDHT.peakMemoryMiB()) MiB")
    }
}

struct SimGossip: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gossip",
        abstract:
            "Spread messages to N nodes by push gossip, flooding and GossipSub; compare with the theory.",
        discussion: """
            Push gossip: each informed node pushes to --fanout random nodes per 1 s round; the \
            rounds until all know are set against log_(f+1)(N) + ln(N)/f (log2 N + ln N for \
            fanout 1). Flooding and GossipSub run over the same random overlay (each node dials \
            --degree others); GossipSub is PeerStack's own router with go-libp2p's parameters. \
            Links have 5-100 ms access delays and --loss. The same --seed gives the same numbers. \
            Then SWIM (memberlist's member, LAN settings) on --swim-nodes members: crashes are \
            detected (first member, every member) against SWIM's expected time, and live members \
            wrongly declared failed are counted, at each of --swim-loss.
            """
    )

    @Option(help: "Nodes in the network.")
    var nodes = 10_000

    @Option(help: "SWIM: members in the cluster (0: skip SWIM).")
    var swimNodes = 500

    @Option(help: "SWIM: packet loss rates, one run each (comma-separated fractions).")
    var swimLoss = "0.01,0.05"

    @Option(help: "SWIM: members crashed one after another in each run.")
    var swimCrashes = 3

    @Option(help: "Push gossip: random nodes each informed node pushes to per round.")
    var fanout = 1

    @Option(help: "Flooding and GossipSub: random peers each node dials.")
    var degree = 8

    @Option(help: "Messages published from random nodes (flooding and GossipSub).")
    var messages = 5

    @Option(help: "Probability that a packet is lost.")
    var loss = 0.0

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (10...200_000).contains(nodes) else { throw ValidationError("--nodes: 10 to 200000") }
        guard (1...32).contains(fanout), (1...64).contains(degree), (1...100).contains(messages) else {
            throw ValidationError("--fanout 1-32, --degree 1-64, --messages 1-100")
        }
        guard (0..<1).contains(loss) else { throw ValidationError("--loss is a fraction in [0, 1)") }
        guard swimNodes == 0 || (5...5_000).contains(swimNodes), (1...20).contains(swimCrashes) else {
            throw ValidationError("--swim-nodes 0 or 5-5000, --swim-crashes 1-20")
        }
        guard swimLosses != nil else {
            throw ValidationError("--swim-loss: fractions in [0, 0.5), comma-separated")
        }
    }

    var swimLosses: [Double]? {
        let values = swimLoss.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil && (0..<0.5).contains($0!) }) else { return nil }
        return values.compactMap { $0 }
    }

    struct Output: Encodable {
        var spread: [SpreadReport]
        var swim: [SWIMReport]
    }

    func run() async throws {
        var configuration = GossipSimulationConfiguration()
        configuration.nodes = nodes
        configuration.fanout = fanout
        configuration.degree = degree
        configuration.messages = messages
        configuration.links.loss = loss
        configuration.seed = seed
        let started = ContinuousClock.now
        let reports = GossipSimulation.run(configuration) { progress in
            if case .running(let what) = progress { Terminal.status("running \(what) on \(nodes) nodes") }
        }
        var swim: [SWIMReport] = []
        if swimNodes > 0 {
            var swimConfiguration = SWIMSimulationConfiguration()
            swimConfiguration.nodes = swimNodes
            swimConfiguration.losses = swimLosses ?? []
            swimConfiguration.crashes = swimCrashes
            swimConfiguration.seed = seed
            swim = SWIMSimulation.run(swimConfiguration) {
                Terminal.status("running \($0) on \(swimNodes) members")
            }
        }
        if json {
            try printJSON(Output(spread: reports, swim: swim))
            return
        }
        func time(_ value: Double?) -> String { value.map { String(format: "%.2f s", $0) } ?? "-" }
        for report in reports {
            print(report.name)
            print(String(format: "  reach %.2f%%", report.reach * 100))
            if let predicted = report.predictedRounds {
                print(
                    "  rounds until all knew: \(report.rounds.map { String(format: "%.0f", $0) } ?? "-") (predicted "
                        + String(format: "%.1f", predicted) + ")")
            }
            print(
                "  time to 50% \(time(report.timeTo50)), 90% \(time(report.timeTo90)), 100% \(time(report.timeTo100))"
            )
            print(String(format: "  messages sent per node and message: %.2f", report.messagesPerNode))
            if let control = report.controlPerNodeSecond {
                print(String(format: "  control RPCs per node per second: %.2f", control))
            }
        }
        for report in swim {
            print(String(format: "SWIM, %d members, %.0f%% loss", report.nodes, report.loss * 100))
            print(
                "  crash detected: first member \(time(report.detectionFirst)), every member \(time(report.detectionAll))"
                    + String(format: " (predicted first %.2f s)", report.predictedDetection))
            print("  crashes detected by every member: \(report.detected) of \(report.crashes)")
            print(
                "  live members declared failed: \(report.falseFailures)"
                    + String(format: " (%.4f per member-hour)", report.falsePositivesPerMemberHour)
                    + ", wrong suspicions refuted: \(report.refutations)"
                    + String(format: " (seen %.1f times per member)", report.falseSuspicionsPerMember))
            print(String(format: "  packets per member per second: %.2f", report.packetsPerMemberSecond))
        }
        let wall = ContinuousClock.now - started
        print("wall \(wall.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1))))")
    }
}

struct SimChain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chain",
        abstract:
            "Relay a transaction and a block through Bitcoin nodes by inv/getdata; compare with the real network.",
        discussion: """
            Each node is the chain node's own NodeCore (handshake, inv/getdata, validation), on a \
            random overlay where each dials --outbound others; links have 5-100 ms access delays, \
            and each node's sends queue behind one another at --upload-kbps. The block (one \
            transaction) is sent as if it were --block-kb large. The times to 50/90/95/100 % of \
            nodes are set beside Decker and Wattenhofer's measurement of the real network in \
            2012 (blocks: median 6.5 s, 95 % after about 40 s).
            """
    )

    @Option(help: "Nodes in the network.")
    var nodes = 1_000

    @Option(help: "Outbound connections per node.")
    var outbound = 8

    @Option(help: "The block's simulated size in kB (1 kB = 1000 bytes).")
    var blockKb = 200

    @Option(help: "Each node's upload rate in kB/s (the median).")
    var uploadKbps = 125.0

    @Option(help: "Upload rates vary by up to this factor either way (log-uniform; 1: all alike).")
    var uploadSpread = 4.0

    @Option(help: "Random seed.")
    var seed: UInt64 = 1

    @Flag(help: "Print JSON.")
    var json = false

    func validate() throws {
        guard (10...20_000).contains(nodes), (1...64).contains(outbound) else {
            throw ValidationError("--nodes 10-20000, --outbound 1-64")
        }
        guard (1...4_000).contains(blockKb), uploadKbps > 0, (1...100).contains(uploadSpread) else {
            throw ValidationError("--block-kb 1-4000, --upload-kbps > 0, --upload-spread 1-100")
        }
    }

    func run() async throws {
        var configuration = RelaySimulationConfiguration()
        configuration.nodes = nodes
        configuration.outbound = outbound
        configuration.blockBytes = blockKb * 1_000
        configuration.uploadBytesPerSecond = uploadKbps * 1_000
        configuration.uploadSpread = uploadSpread
        configuration.seed = seed
        let started = ContinuousClock.now
        let report = try RelaySimulation.run(configuration) { Terminal.status($0) }
        if json {
            try printJSON(report)
            return
        }
        func time(_ value: Double?) -> String { value.map { String(format: "%.2f s", $0) } ?? "-" }
        print(
            "\(nodes) nodes, \(outbound) outbound each, upload \(uploadKbps) kB/s, block sent as \(blockKb) kB"
        )
        for spread in [report.transaction, report.block] {
            print(spread.name)
            print(String(format: "  reach %.2f%%", spread.reach * 100))
            print(
                "  time to 50% \(time(spread.timeTo50)), 90% \(time(spread.timeTo90)), 95% \(time(spread.timeTo95)), 100% \(time(spread.timeTo100))"
            )
        }
        print(
            "  measured on the real network (Decker and Wattenhofer 2013): blocks median 6.5 s, 95% about 40 s"
        )
        print(String(format: "messages sent per node: %.1f", report.messagesPerNode))
        let wall = ContinuousClock.now - started
        print("wall \(wall.formatted(.units(allowed: [.seconds], fractionalPart: .show(length: 1))))")
    }
}

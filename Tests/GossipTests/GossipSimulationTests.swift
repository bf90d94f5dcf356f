import Gossip
import PeerSim
import Testing

@Suite("Gossip in PeerSim: spreading against the epidemic prediction")
struct GossipSimulationTests {
    static func configuration(nodes: Int, loss: Double = 0) -> GossipSimulationConfiguration {
        var configuration = GossipSimulationConfiguration()
        configuration.nodes = nodes
        configuration.messages = 2
        configuration.degree = 8
        configuration.links.loss = loss
        configuration.seed = 7
        return configuration
    }

    @Test("the prediction: log_(f+1) N + ln N / f rounds")
    func prediction() {
        // f = 1, N = 1024: log2(1024) + ln(1024) = 10 + 6.93.
        #expect(abs(GossipSimulation.predictedRounds(nodes: 1024, fanout: 1) - 16.93) < 0.01)
        // More fanout, fewer rounds.
        #expect(
            GossipSimulation.predictedRounds(nodes: 1024, fanout: 3)
                < GossipSimulation.predictedRounds(nodes: 1024, fanout: 1))
    }

    @Test(
        "500 nodes: push gossip near the prediction, flooding and GossipSub reach all, GossipSub sends less")
    func spread() throws {
        let reports = GossipSimulation.run(Self.configuration(nodes: 500))
        #expect(reports.map(\.name).count == 3)
        let push = try #require(reports.first)
        let flood = reports[1]
        let gossip = reports[2]
        for report in reports { #expect(report.reach == 1, "\(report.name) reached \(report.reach)") }
        let rounds = try #require(push.rounds)
        let predicted = try #require(push.predictedRounds)
        #expect(abs(rounds - predicted) <= predicted * 0.5, "push: \(rounds) rounds, predicted \(predicted)")
        // Each informed node pushes once per round until the end: several messages per node.
        #expect(push.messagesPerNode > 1)
        // Flooding sends every message over every link once each way at most; GossipSub's mesh
        // (D = 6) sends fewer copies than flooding over degree ~16.
        #expect(gossip.messagesPerNode < flood.messagesPerNode)
        #expect(try #require(gossip.timeTo100) < 5)
        #expect(try #require(flood.timeTo50) <= #require(flood.timeTo90))
    }

    @Test("runs are a function of the seed")
    func deterministic() {
        let first = GossipSimulation.run(Self.configuration(nodes: 200))
        let second = GossipSimulation.run(Self.configuration(nodes: 200))
        #expect(first == second)
    }

    @Test("5 % loss: GossipSub's IHAVE/IWANT repair still reaches every node")
    func loss() throws {
        let reports = GossipSimulation.run(Self.configuration(nodes: 300, loss: 0.05))
        #expect(reports[2].reach == 1)
    }
}

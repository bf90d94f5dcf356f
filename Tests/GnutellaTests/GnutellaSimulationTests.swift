import Gnutella
import Testing

/// The Gnutella simulator runs the servent state machines; these check the run is deterministic
/// and that the three designs compare as the literature says they should.
struct GnutellaSimulationTests {
    static func run(_ mode: GnutellaSimulationConfiguration.Mode, seed: UInt64 = 3)
        -> GnutellaSimulationReport
    {
        var configuration = GnutellaSimulationConfiguration()
        configuration.nodes = 1_000
        configuration.queries = 8
        configuration.mode = mode
        configuration.seed = seed
        configuration.rareFraction = 0.005
        return GnutellaSimulation.run(configuration)
    }

    @Test("the same seed gives the same run")
    func deterministic() {
        let first = Self.run(.dynamic)
        let again = Self.run(.dynamic)
        #expect(first.allMessages == again.allMessages && first.results == again.results)
        #expect(first.firstHitHops == again.firstHitHops)
    }

    @Test(
        "flooding reaches everyone at the highest cost; ultrapeers with QRP cost less; dynamic querying least"
    )
    func comparison() {
        let flooding = Self.run(.flooding)
        let ultrapeers = Self.run(.ultrapeers)
        let dynamic = Self.run(.dynamic)
        let mean = GnutellaSimulationReport.mean
        // A TTL-7 flood in a power-law graph of 1,000 reaches (nearly) every node.
        #expect(mean(flooding.reach) > 950)
        #expect(
            flooding.rareFound == flooding.rareQueries && flooding.popularFound == flooding.popularQueries)
        #expect(mean(ultrapeers.queryMessages) < mean(flooding.queryMessages) / 2)
        #expect(mean(dynamic.queryMessages) < mean(ultrapeers.queryMessages) / 2)
        // Popular files are found by every design; dynamic querying stops early for them.
        #expect(ultrapeers.popularFound == ultrapeers.popularQueries)
        #expect(dynamic.popularFound == dynamic.popularQueries)
        #expect(mean(dynamic.busiest) < mean(flooding.busiest))
    }
}

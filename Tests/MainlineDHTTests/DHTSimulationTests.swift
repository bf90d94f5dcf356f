import MainlineDHT
import Testing

/// The simulator runs PeerStack's own DHT state machines; these check that it is deterministic
/// and that the DHT finds what it should under churn and loss.
struct DHTSimulationTests {
    static func configuration(seed: UInt64, churn: Double = 0.2, loss: Double = 0.01)
        -> DHTSimulationConfiguration
    {
        var configuration = DHTSimulationConfiguration()
        configuration.nodes = 300
        configuration.lookups = 150
        configuration.churn = churn
        configuration.links.loss = loss
        configuration.seed = seed
        return configuration
    }

    @Test("the same seed gives the same run; another seed another")
    func deterministic() {
        let first = DHTSimulation.run(Self.configuration(seed: 7))
        let again = DHTSimulation.run(Self.configuration(seed: 7))
        #expect(first.packetsDelivered == again.packetsDelivered && first.packetsLost == again.packetsLost)
        #expect(first.hops == again.hops && first.rpcs == again.rpcs && first.times == again.times)
        #expect(first.succeeded == again.succeeded && first.virtualTime == again.virtualTime)
        let other = DHTSimulation.run(Self.configuration(seed: 8))
        #expect(other.packetsDelivered != first.packetsDelivered || other.hops != first.hops)
    }

    @Test("lookups find the closest live node despite 20% churn and 1% loss")
    func churnAndLoss() {
        let report = DHTSimulation.run(Self.configuration(seed: 11))
        #expect(report.departed == 60 && report.joinedLater == 60 && report.lookups == 150)
        #expect(report.successRate >= 0.97, "success \(report.successRate)")
        #expect(report.packetsLost > 0)
        let median = DHTSimulationReport.percentile(report.hops, 0.5) ?? 0
        #expect((1...Int(report.predictedHops.rounded(.up)) + 2).contains(median), "median hops \(median)")
    }

    @Test("ready-made tables (oracle join) route as well as bootstrapped ones")
    func oracleJoin() {
        var configuration = Self.configuration(seed: 5, churn: 0, loss: 0)
        configuration.join = .oracle
        let report = DHTSimulation.run(configuration)
        #expect(report.successRate >= 0.99, "success \(report.successRate)")
    }
}

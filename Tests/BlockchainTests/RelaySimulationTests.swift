import Blockchain
import Testing

@Suite("Bitcoin relay (NodeCore) in PeerSim")
struct RelaySimulationTests {
    static func run(nodes: Int, upload: Double) throws -> RelayReport {
        var configuration = RelaySimulationConfiguration()
        configuration.nodes = nodes
        configuration.uploadBytesPerSecond = upload
        configuration.seed = 4
        return try RelaySimulation.run(configuration)
    }

    @Test(
        "a transaction and a block reach every node by inv/getdata; the block's size slows it; more upload speeds it"
    )
    func relay() throws {
        let slow = try Self.run(nodes: 60, upload: 125_000)
        #expect(slow.transaction.reach == 1)
        #expect(slow.block.reach == 1)
        let txAll = try #require(slow.transaction.timeTo100)
        let blockHalf = try #require(slow.block.timeTo50)
        // A 250-byte transaction crosses a hop in link latency; a 200 kB block needs 1.6 s per
        // upload at 125 kB/s, several uploads queued per hop.
        #expect(txAll < 3)
        #expect(blockHalf > 2 * txAll)
        let fast = try Self.run(nodes: 60, upload: 1_000_000)
        #expect(try #require(fast.block.timeTo50) < blockHalf / 2)
        // Every node announces each item to each peer that lacks it: tens of messages each.
        #expect(slow.messagesPerNode > 10 && slow.messagesPerNode < 200)
    }
}

import PeerSim
import Testing

/// A node that floods a rumour once to every neighbour and ticks every second until it heard it.
struct FloodNode: SimulatedNode, Sendable {
    var neighbours: [Int] = []
    var heardAt: Duration?
    var ticks = 0

    mutating func receive(_ message: String, from: Int, context: inout SimulationContext<String>) {
        guard heardAt == nil else { return }
        heardAt = context.now
        for neighbour in neighbours where neighbour != from { context.send(message, to: neighbour) }
    }

    mutating func wake(context: inout SimulationContext<String>) {
        ticks += 1
        if heardAt == nil { context.wake(at: context.now + .seconds(1)) }
    }
}

@Suite("PeerSim: the generic engine")
struct SimulationTests {
    static func ring(_ count: Int, loss: Double = 0, seed: UInt64 = 1) -> Simulation<FloodNode> {
        var links = LinkModel()
        links.loss = loss
        var simulation = Simulation<FloodNode>(links: links, seed: seed)
        for index in 0..<count {
            simulation.add(FloodNode(neighbours: [(index + count - 1) % count, (index + 1) % count]))
        }
        return simulation
    }

    @Test("a rumour flooded on a ring reaches every node, in latency order, and timers stop when asked")
    func flood() {
        var simulation = Self.ring(50)
        for index in 0..<50 { simulation.act(on: index) { _, context in context.wake(at: .seconds(1)) } }
        simulation.act(on: 0) { node, context in node.receive("rumour", from: 0, context: &context) }
        simulation.run(until: .seconds(60))
        #expect(simulation.nodes.allSatisfy { $0.heardAt != nil })
        // Half-way round the ring in both directions: at most 25 hops of at most 210 ms.
        #expect(simulation.nodes.compactMap(\.heardAt).max()! <= .milliseconds(25 * 210))
        // Nodes stop ticking once they heard it; node 0 heard at time 0, before its first tick.
        #expect(simulation.nodes.map(\.ticks).max()! <= 6)
        // Packets (timers are not packets): node 0 sends two, every other node forwards one.
        #expect(simulation.network.delivered == 2 + 49)
    }

    @Test("a removed node hears nothing and stops the rumour on its side")
    func removal() {
        var simulation = Self.ring(10)
        simulation.remove(5)
        simulation.act(on: 0) { node, context in node.receive("rumour", from: 0, context: &context) }
        simulation.run(until: .seconds(60))
        #expect(simulation.nodes[5].heardAt == nil)
        #expect(
            simulation.nodes.indices.filter { $0 != 5 }.allSatisfy { simulation.nodes[$0].heardAt != nil })
    }

    @Test("runs are a function of the seed; loss drops packets")
    func determinism() {
        func run(_ seed: UInt64) -> [Duration?] {
            var simulation = Self.ring(30, loss: 0.2, seed: seed)
            simulation.act(on: 0) { node, context in node.receive("rumour", from: 0, context: &context) }
            simulation.run(until: .seconds(60))
            return simulation.nodes.map(\.heardAt)
        }
        #expect(run(3) == run(3))
        #expect(run(3) != run(4))
        var lossy = Self.ring(30, loss: 0.5)
        lossy.act(on: 0) { node, context in node.receive("rumour", from: 0, context: &context) }
        lossy.run(until: .seconds(60))
        #expect(lossy.network.lost > 0)
    }
}

/// A node that answers each message once, after a delay of its own (a transmission time).
struct DelayedEcho: SimulatedNode, Sendable {
    var heardAt: Duration?

    mutating func receive(_ message: String, from: Int, context: inout SimulationContext<String>) {
        heardAt = context.now
        if message == "ping" { context.send("pong", to: from, after: .seconds(2)) }
    }

    mutating func wake(context: inout SimulationContext<String>) {}
}

@Suite("PeerSim: send delays")
struct SendDelayTests {
    @Test("a send's own delay adds to the link latency")
    func delayed() throws {
        var simulation = Simulation<DelayedEcho>(links: LinkModel(), seed: 2)
        simulation.add(DelayedEcho())
        simulation.add(DelayedEcho())
        simulation.act(on: 0) { _, context in context.send("ping", to: 1) }
        simulation.run(until: .seconds(10))
        let ping = try #require(simulation.nodes[1].heardAt)
        let pong = try #require(simulation.nodes[0].heardAt)
        // Latency at most 210 ms each way, plus the two seconds the answer waited.
        #expect(pong - ping >= .seconds(2))
        #expect(pong - ping <= .milliseconds(2_210))
    }
}

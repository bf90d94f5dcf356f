/// A sans-I/O node the simulator can run: it takes messages and timer wake-ups and answers
/// through its context. The protocol's own state machine sits inside (a DHT node, a GossipSub
/// router, a Bitcoin node's relay); the simulator never knows which, so it imports none of them.
public protocol SimulatedNode {
    associatedtype Message: Sendable
    /// `message` arrived from node `from`.
    mutating func receive(_ message: Message, from: Int, context: inout SimulationContext<Message>)
    /// The wake-up the node asked for came. At every event a node asks again for the next
    /// wake-up it needs (``SimulationContext/wake(at:)``); one asked for earlier is kept.
    mutating func wake(context: inout SimulationContext<Message>)
}

/// What a node sees and does during one event: the time, its own number, sends and the next
/// wake-up it wants.
public struct SimulationContext<Message: Sendable> {
    public let node: Int
    public let now: Duration
    var outbox: [(to: Int, message: Message, after: Duration)] = []
    var wakeAt: Duration?

    init(node: Int, now: Duration) {
        self.node = node
        self.now = now
    }

    /// Sends `message` to node `to` over the simulated link, leaving `after` from now (the
    /// sender's own queueing or transmission time, which the node models; zero by default).
    public mutating func send(_ message: Message, to: Int, after: Duration = .zero) {
        outbox.append((to, message, after))
    }

    /// Asks to be woken at `time` (the earliest request of the event counts).
    public mutating func wake(at time: Duration) { wakeAt = min(wakeAt ?? time, time) }
}

/// Runs numbered ``SimulatedNode``s over a ``SimulatedNetwork``: events in virtual time, each
/// handed to its node, whose sends and wake-ups are scheduled in turn. A node can be taken out
/// (it then hears nothing, as a crashed peer), and the caller acts on nodes between events
/// (a lookup starts, a message is published). Deterministic for a seed.
public struct Simulation<Node: SimulatedNode>: Sendable where Node: Sendable {
    public private(set) var network: SimulatedNetwork<Node.Message>
    public var nodes: [Node] = []
    public private(set) var alive: [Bool] = []
    private var timerAt: [Duration?] = []
    /// Events handed to nodes so far.
    public private(set) var events = 0

    public init(links: LinkModel, seed: UInt64) {
        network = SimulatedNetwork(links: links, seed: seed)
    }

    public var now: Duration { network.now }

    /// Adds a node; returns its number.
    @discardableResult
    public mutating func add(_ node: Node) -> Int {
        let index = network.addNode()
        nodes.append(node)
        alive.append(true)
        timerAt.append(nil)
        return index
    }

    /// Takes a node out: it receives nothing more and its timers stop (a crash, or a silent leave).
    public mutating func remove(_ node: Int) {
        guard alive.indices.contains(node) else { return }
        alive[node] = false
        timerAt[node] = nil
    }

    /// Lets the caller act on `node` now (start a lookup, publish); its sends and wake-up are
    /// scheduled as if an event had happened.
    public mutating func act<T>(
        on node: Int, _ body: (inout Node, inout SimulationContext<Node.Message>) -> T
    ) -> T {
        var context = SimulationContext<Node.Message>(node: node, now: network.now)
        let result = body(&nodes[node], &context)
        apply(context)
        return result
    }

    /// Handles events until `limit` (virtual time) or until `done` holds (checked every
    /// `checkEvery` events); true if `done` ended it. The clock ends at the last event handled.
    @discardableResult
    public mutating func run(
        until limit: Duration, checkEvery: Int = 64, done: (Simulation) -> Bool = { _ in false }
    ) -> Bool {
        var handled = 0
        while let event = network.next(until: limit) {
            handle(event)
            handled += 1
            if handled % max(1, checkEvery) == 0, done(self) { return true }
        }
        return done(self)
    }

    /// Moves the clock to `time` when nothing is due before it.
    public mutating func advance(to time: Duration) {
        run(until: time)
        network.advance(to: time)
    }

    private mutating func handle(_ event: SimulatedNetwork<Node.Message>.Event) {
        let node = event.node
        guard alive[node] else { return }
        events += 1
        var context = SimulationContext<Node.Message>(node: node, now: event.time)
        switch event.payload {
        case .packet(let from, let message):
            nodes[node].receive(message, from: from, context: &context)
        case .timer:
            // Only the wake-up still asked for: an earlier one may have replaced it.
            guard timerAt[node] == event.time else { return }
            timerAt[node] = nil
            nodes[node].wake(context: &context)
        }
        apply(context)
    }

    private mutating func apply(_ context: SimulationContext<Node.Message>) {
        for (to, message, after) in context.outbox {
            network.send(message, from: context.node, to: to, after: after)
        }
        if let asked = context.wakeAt, alive[context.node] {
            let time = max(asked, network.now)
            guard timerAt[context.node].map({ time < $0 }) ?? true else { return }
            timerAt[context.node] = time
            network.wake(context.node, at: time)
        }
    }
}

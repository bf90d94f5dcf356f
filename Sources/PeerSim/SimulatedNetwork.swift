import HeapModule
import PeerNet

/// How packets travel: per-link latency, loss.
public struct LinkModel: Sendable {
    /// Each node's access delay is drawn uniformly from this range (milliseconds); a packet
    /// takes the sum of both ends' delays plus up to `jitter`.
    public var accessDelay: ClosedRange<Double> = 5...100
    public var jitter: Double = 10
    /// Probability that any one packet is lost.
    public var loss: Double = 0

    public init() {}
}

/// A discrete-event network in virtual time: events (packet deliveries, timers) are kept in a
/// heap ordered by time and then by the order they were scheduled, so a run is a pure function
/// of its seed. Nodes are numbered; a packet is a `Message` (bytes, or a protocol's own message
/// value when encoding every hop would only cost time); what a node is, and what an event does,
/// is the caller's (see ``Simulation``).
public struct SimulatedNetwork<Message: Sendable>: Sendable {
    public enum Payload: Sendable {
        case packet(from: Int, message: Message)
        case timer
    }

    public struct Event: Comparable, Sendable {
        public let time: Duration
        let order: UInt64
        public let node: Int
        public let payload: Payload

        public static func < (lhs: Event, rhs: Event) -> Bool {
            (lhs.time, lhs.order) < (rhs.time, rhs.order)
        }
        public static func == (lhs: Event, rhs: Event) -> Bool { lhs.order == rhs.order }
    }

    public let links: LinkModel
    public private(set) var now: Duration = .zero
    public private(set) var delivered = 0
    public private(set) var lost = 0
    private var queue = Heap<Event>()
    private var order: UInt64 = 0
    private var accessDelay: [Double] = []
    private var random: SplitMix64

    public init(links: LinkModel, seed: UInt64) {
        self.links = links
        random = SplitMix64(seed: seed ^ 0x5EED)
    }

    /// Adds a node with its own access delay; returns its number.
    public mutating func addNode() -> Int {
        let range = links.accessDelay
        accessDelay.append(range.lowerBound + random.unit() * (range.upperBound - range.lowerBound))
        return accessDelay.count - 1
    }

    public var nodeCount: Int { accessDelay.count }
    public var pending: Int { queue.count }

    /// Sends `message` from one node to another: delivered after `after` plus the link's
    /// latency, unless lost.
    public mutating func send(_ message: Message, from: Int, to: Int, after: Duration = .zero) {
        guard accessDelay.indices.contains(to) else { return }
        if links.loss > 0 && random.unit() < links.loss {
            lost += 1
            return
        }
        let milliseconds = accessDelay[from] + accessDelay[to] + random.unit() * links.jitter
        schedule(
            .packet(from: from, message: message),
            at: now + after + .microseconds(Int64(milliseconds * 1_000)),
            node: to)
    }

    /// Wakes `node` at `time`.
    public mutating func wake(_ node: Int, at time: Duration) {
        schedule(.timer, at: max(time, now), node: node)
    }

    /// The next event, with the clock moved to its time; nil when nothing is left or the next
    /// event is after `limit`.
    public mutating func next(until limit: Duration) -> Event? {
        guard let first = queue.min, first.time <= limit else { return nil }
        let event = queue.removeMin()
        now = event.time
        if case .packet = event.payload { delivered += 1 }
        return event
    }

    /// Moves the clock forward (nothing happens in between but what is queued).
    public mutating func advance(to time: Duration) { now = max(now, time) }

    private mutating func schedule(_ payload: Payload, at time: Duration, node: Int) {
        order += 1
        queue.insert(Event(time: time, order: order, node: node, payload: payload))
    }
}

/// Descriptors waiting for a slow connection, by priority (Gnutella 0.6, section 2.4 "flow
/// control", as LimeWire's message queues do it): replies before requests, and within a kind
/// the ones that travelled least first. When the queue is over its byte budget, the
/// lowest-priority, oldest descriptors are dropped first, so a peer that reads slowly costs a
/// bounded amount of memory and loses pings before query hits.
public struct OutgoingQueue: Sendable {
    /// Lower is sent first, dropped last.
    static func priority(_ descriptor: Descriptor) -> Int {
        switch descriptor.payload {
        case .bye: 0
        case .routeTableUpdate: 1
        case .push: 2
        case .queryHit: 3
        case .query: 4 + min(Int(descriptor.header.hops), 7)
        case .pong: 12
        case .ping: 13
        case .other: 14
        }
    }

    private var lanes: [[([UInt8], Int)]] = Array(repeating: [], count: 15)
    private var heads = [Int](repeating: 0, count: 15)
    public private(set) var bytes = 0
    public private(set) var dropped = 0
    public let budget: Int

    public init(budget: Int = 512 * 1024) { self.budget = budget }

    public var isEmpty: Bool { bytes == 0 }

    /// Queues an encoded descriptor, dropping the lowest-priority ones while over budget (the
    /// new one too, if it is the lowest).
    public mutating func push(_ descriptor: Descriptor) {
        let encoded = descriptor.encoded()
        let lane = Self.priority(descriptor)
        lanes[lane].append((encoded, lane))
        bytes += encoded.count
        var worst = lanes.count - 1
        while bytes > budget, worst >= 0 {
            if heads[worst] < lanes[worst].count {
                bytes -= lanes[worst][heads[worst]].0.count
                heads[worst] += 1
                dropped += 1
                compact(worst)
            } else {
                worst -= 1
            }
        }
    }

    /// The next descriptor's bytes to send, highest priority first.
    public mutating func pop() -> [UInt8]? {
        for lane in lanes.indices where heads[lane] < lanes[lane].count {
            let (encoded, _) = lanes[lane][heads[lane]]
            heads[lane] += 1
            bytes -= encoded.count
            compact(lane)
            return encoded
        }
        return nil
    }

    private mutating func compact(_ lane: Int) {
        if heads[lane] == lanes[lane].count {
            lanes[lane].removeAll(keepingCapacity: true)
            heads[lane] = 0
        } else if heads[lane] > 64, heads[lane] * 2 > lanes[lane].count {
            lanes[lane].removeFirst(heads[lane])
            heads[lane] = 0
        }
    }
}

/// Per-connection rate limit on incoming queries and pings (a token bucket): what a flooding
/// peer gets past it is bounded, and a peer far over the rate is told so and dropped.
public struct RateLimit: Sendable {
    public let perSecond: Double
    public let burst: Double
    private var tokens: Double
    private var last: Duration
    public private(set) var refused = 0

    public init(perSecond: Double, burst: Double, now: Duration = .zero) {
        self.perSecond = perSecond
        self.burst = burst
        tokens = burst
        last = now
    }

    /// Whether one more is allowed now.
    public mutating func allow(now: Duration) -> Bool {
        let elapsed =
            Double((now - last).components.seconds) + Double((now - last).components.attoseconds) / 1e18
        tokens = min(burst, tokens + max(0, elapsed) * perSecond)
        last = now
        guard tokens >= 1 else {
            refused += 1
            return false
        }
        tokens -= 1
        return true
    }
}

/// The message cache of GossipSub (spec v1.0, "Message Cache"): the messages of the last
/// `length` heartbeats, by ID, of which the last `gossip` windows are advertised in IHAVE.
public struct MessageCache<Peer: Hashable & Sendable>: Sendable {
    public let length: Int
    public let gossip: Int
    private var windows: [[(id: [UInt8], topic: String)]]
    private var messages: [[UInt8]: PubSubMessage] = [:]
    /// How often each peer asked for each message (bounded by `GossipRetransmission`).
    private var requests: [[UInt8]: [Peer: Int]] = [:]

    public init(length: Int, gossip: Int) {
        self.length = max(1, length)
        self.gossip = min(max(1, gossip), max(1, length))
        windows = [[]]
    }

    public var count: Int { messages.count }

    public mutating func put(_ message: PubSubMessage, id: [UInt8]) {
        guard messages[id] == nil else { return }
        messages[id] = message
        windows[0].append((id, message.topic))
    }

    public func message(_ id: [UInt8]) -> PubSubMessage? { messages[id] }

    /// The message for an IWANT from `peer`, and how many times that peer has now asked for it.
    mutating func request(_ id: [UInt8], by peer: Peer) -> (PubSubMessage, Int)? {
        guard let message = messages[id] else { return nil }
        let count = (requests[id]?[peer] ?? 0) + 1
        requests[id, default: [:]][peer] = count
        return (message, count)
    }

    /// IDs to advertise for `topic`: those of the last `gossip` windows.
    public func gossipIDs(_ topic: String) -> [[UInt8]] {
        windows.prefix(gossip).flatMap { $0.filter { $0.topic == topic }.map(\.id) }
    }

    /// Starts a new window at each heartbeat; the oldest leaves the cache.
    public mutating func shift() {
        if windows.count >= length, let oldest = windows.popLast() {
            for entry in oldest {
                messages[entry.id] = nil
                requests[entry.id] = nil
            }
        }
        windows.insert([], at: 0)
    }
}

/// Message IDs seen recently (go-libp2p's `TimeCache`, 2 minutes by default), so a message is
/// delivered and forwarded once. Expired entries leave in insertion order.
public struct SeenCache: Sendable {
    public let ttl: Duration
    private var expiry: [[UInt8]: Duration] = [:]
    private var order: [([UInt8], Duration)] = []
    private var head = 0
    public let capacity: Int

    public init(ttl: Duration, capacity: Int = 1 << 20) {
        self.ttl = ttl
        self.capacity = capacity
    }

    public var count: Int { expiry.count }

    public func contains(_ id: [UInt8]) -> Bool { expiry[id] != nil }

    /// Adds `id`; false if it was already there.
    @discardableResult
    public mutating func insert(_ id: [UInt8], now: Duration) -> Bool {
        guard expiry[id] == nil else { return false }
        if expiry.count >= capacity { evict(count: 1) }
        expiry[id] = now + ttl
        order.append((id, now + ttl))
        return true
    }

    public mutating func expire(now: Duration) {
        while head < order.count, order[head].1 <= now {
            if expiry[order[head].0] == order[head].1 { expiry[order[head].0] = nil }
            head += 1
        }
        compact()
    }

    private mutating func evict(count: Int) {
        var left = count
        while left > 0, head < order.count {
            expiry[order[head].0] = nil
            head += 1
            left -= 1
        }
        compact()
    }

    private mutating func compact() {
        if head > 1_024, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}

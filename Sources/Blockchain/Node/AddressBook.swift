import PeerNet

/// The peers this node has heard of (Bitcoin Core's `AddrMan` in small), learned from
/// `addr`/`addrv2` gossip and from peers' own announcements, and chosen from for outbound
/// connections. Bounded; only addresses the node could use get in (public ones, and loopback
/// where the network allows it, as on regtest). Sans I/O: time comes in with each call; the
/// driver saves ``serialized()`` in the data directory and reads it back at start.
public struct AddressBook: Sendable {
    public struct Record: Sendable, Hashable {
        public var endpoint: Endpoint
        /// When the address was last heard of as active (seconds since 1970; relayed ones with
        /// Core's 2-hour penalty).
        public var time: UInt32
        public var services: UInt64
        /// Last outbound attempt and last success, 0 for never.
        public var lastTry: UInt32 = 0
        public var lastSuccess: UInt32 = 0
        public var failures = 0
    }

    public private(set) var records: [Endpoint: Record] = [:]
    /// Most addresses kept (the oldest go first).
    public let capacity: Int
    /// Whether loopback addresses are usable (regtest: every node is on 127.0.0.1).
    public let allowLoopback: Bool

    public init(capacity: Int = 5_000, allowLoopback: Bool) {
        self.capacity = capacity
        self.allowLoopback = allowLoopback
    }

    public var count: Int { records.count }

    /// Whether `endpoint` may enter the book and be gossiped.
    public func isUsable(_ endpoint: Endpoint) -> Bool {
        guard endpoint.port != 0 else { return false }
        return endpoint.ip.isPublic || (allowLoopback && endpoint.ip.isLoopback)
    }

    /// Adds or refreshes addresses heard of at `now`; `penalty` seconds are taken off their
    /// times (Core: 2 hours for addresses relayed by others, none for a peer's own). Returns
    /// those that were new or fresher, for relaying.
    @discardableResult
    public mutating func add(_ heard: [(Endpoint, UInt32, UInt64)], now: UInt32, penalty: UInt32 = 0)
        -> [Record]
    {
        var changed: [Record] = []
        for (endpoint, claimed, services) in heard where isUsable(endpoint) {
            // A time in the future or long past is not believed (Core: then 5 days ago).
            let sane = claimed > now &+ 600 || claimed < 100_000_000 ? now &- 5 * 86_400 : claimed
            let time = sane > penalty ? sane - penalty : 0
            if var known = records[endpoint] {
                guard time > known.time else { continue }
                known.time = time
                known.services |= services
                records[endpoint] = known
                changed.append(known)
            } else {
                let record = Record(endpoint: endpoint, time: time, services: services)
                records[endpoint] = record
                changed.append(record)
            }
        }
        if records.count > capacity {
            // Oldest first; failed ones before those that worked.
            let victims = records.values.sorted { ($0.lastSuccess, $0.time) < ($1.lastSuccess, $1.time) }
                .prefix(records.count - capacity)
            for victim in victims { records[victim.endpoint] = nil }
        }
        return changed
    }

    public mutating func attempted(_ endpoint: Endpoint, now: UInt32) {
        records[endpoint]?.lastTry = now
    }

    public mutating func failed(_ endpoint: Endpoint) {
        guard var record = records[endpoint] else { return }
        record.failures += 1
        // Core's IsTerrible in small: an address that never worked and failed three times goes.
        if record.lastSuccess == 0 && record.failures >= 3 {
            records[endpoint] = nil
        } else {
            records[endpoint] = record
        }
    }

    public mutating func connected(_ endpoint: Endpoint, now: UInt32) {
        guard var record = records[endpoint] else { return }
        record.lastSuccess = now
        record.time = max(record.time, now)
        record.failures = 0
        records[endpoint] = record
    }

    /// Up to `count` addresses to dial, freshest first, none tried in the last `retry`
    /// seconds and none in `excluding`.
    public func candidates(_ count: Int, excluding: Set<Endpoint>, now: UInt32, retry: UInt32 = 60)
        -> [Endpoint]
    {
        records.values.filter { !excluding.contains($0.endpoint) && now &- $0.lastTry >= retry }
            .sorted { ($0.lastSuccess, $0.time, $0.endpoint) > ($1.lastSuccess, $1.time, $1.endpoint) }
            .prefix(count).map(\.endpoint)
    }

    /// What to answer a `getaddr` with: Core's 23 % of the book, at most 1,000 (and, unlike
    /// Core, all of a book of up to 50, so that a small regtest network learns itself).
    public func sample(using random: inout some RandomNumberGenerator) -> [Record] {
        let size = records.count
        let count = min(P2PCodec.maxAddresses, max(size * 23 / 100, min(size, 50)))
        return Array(records.values.shuffled(using: &random).prefix(count))
    }

    // MARK: Persistence

    /// One line per address: `endpoint time services lastSuccess`.
    public func serialized() -> [UInt8] {
        let lines = records.values.sorted { $0.endpoint < $1.endpoint }.map {
            "\($0.endpoint) \($0.time) \($0.services) \($0.lastSuccess)\n"
        }
        return Array(lines.joined().utf8)
    }

    /// Reads ``serialized()`` text; lines that do not parse are skipped (the book is a cache).
    public mutating func load(_ bytes: [UInt8]) {
        for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n").prefix(capacity) {
            let fields = line.split(separator: " ")
            guard fields.count == 4, let endpoint = Endpoint(fields[0]), isUsable(endpoint),
                let time = UInt32(fields[1]), let services = UInt64(fields[2]),
                let success = UInt32(fields[3])
            else { continue }
            records[endpoint] = Record(
                endpoint: endpoint, time: time, services: services, lastSuccess: success)
        }
    }
}

/// Values stored at a Kademlia node (Maymounkov and Mazières, section 2.5): each expires after a
/// time to live unless stored again; values this node published are due for republishing at an
/// interval. Bounded in the number of keys; values per key are the caller's concern (a key's
/// value can be a set, as the mainline DHT's peer lists are). Pure state: time comes in.
public struct KeyValueStore<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private struct Entry: Sendable {
        var value: Value
        var storedAt: KademliaTime
        var ours: Bool
        var republishedAt: KademliaTime
    }

    public let capacity: Int
    public let timeToLive: Duration
    public let republishInterval: Duration
    private var entries: [Key: Entry] = [:]

    public init(capacity: Int, timeToLive: Duration, republishInterval: Duration) {
        self.capacity = capacity
        self.timeToLive = timeToLive
        self.republishInterval = republishInterval
    }

    public var count: Int { entries.count }

    /// Stores `value` under `key`; `ours` marks values this node publishes (and republishes).
    /// Returns false when the store is full and `key` is new.
    @discardableResult
    public mutating func put(_ key: Key, _ value: Value, ours: Bool = false, now: KademliaTime) -> Bool {
        if entries[key] == nil && entries.count >= capacity { return false }
        let wasOurs = entries[key]?.ours ?? false
        entries[key] = Entry(value: value, storedAt: now, ours: ours || wasOurs, republishedAt: now)
        return true
    }

    /// The live value under `key`.
    public func get(_ key: Key, now: KademliaTime) -> Value? {
        guard let entry = entries[key], entry.ours || now - entry.storedAt < timeToLive else { return nil }
        return entry.value
    }

    /// Changes the value under `key` in place, if present.
    public mutating func update(_ key: Key, _ body: (inout Value) -> Void) {
        guard var entry = entries[key] else { return }
        body(&entry.value)
        entries[key] = entry
    }

    public mutating func remove(_ key: Key) { entries[key] = nil }

    /// Drops values past their time to live (ours never expire); returns how many went.
    @discardableResult
    public mutating func expire(now: KademliaTime) -> Int {
        let before = entries.count
        entries = entries.filter { $0.value.ours || now - $0.value.storedAt < timeToLive }
        return before - entries.count
    }

    /// Our values whose republish time has come; they are marked republished at `now`.
    public mutating func dueForRepublish(now: KademliaTime) -> [(Key, Value)] {
        var due: [(Key, Value)] = []
        for (key, entry) in entries where entry.ours && now - entry.republishedAt >= republishInterval {
            due.append((key, entry.value))
            entries[key]?.republishedAt = now
        }
        return due
    }
}

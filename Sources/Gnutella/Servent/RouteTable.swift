/// A bounded map with expiry, kept as two generations: entries live between one and two
/// `lifetime`s, lookups check both, and the older generation is dropped whole when the newer
/// one is `lifetime` old or `capacity` full. What Gnutella's seen-GUID and reverse-path tables
/// need (LimeWire keeps routes about ten minutes), in O(1) per operation and bounded memory
/// however many descriptors a peer floods.
struct ExpiringMap<Key: Hashable & Sendable, Value: Sendable>: Sendable {
    private var current: [Key: Value] = [:]
    private var previous: [Key: Value] = [:]
    private var rotatedAt: Duration
    let lifetime: Duration
    let capacity: Int

    init(lifetime: Duration, capacity: Int, now: Duration = .zero) {
        self.lifetime = lifetime
        self.capacity = capacity
        rotatedAt = now
    }

    var count: Int { current.count + previous.count }

    subscript(key: Key) -> Value? { current[key] ?? previous[key] }

    /// Sets `key`, rotating first if the newer generation is full or old.
    mutating func set(_ key: Key, _ value: Value, now: Duration) {
        rotate(now: now)
        if current.count >= capacity { rotate(now: now, force: true) }
        current[key] = value
    }

    /// Inserts `key` unless present; whether it was new.
    mutating func insertIfAbsent(_ key: Key, _ value: Value, now: Duration) -> Bool {
        guard self[key] == nil else { return false }
        set(key, value, now: now)
        return true
    }

    mutating func rotate(now: Duration, force: Bool = false) {
        guard force || now - rotatedAt >= lifetime else { return }
        previous = current
        current = [:]
        rotatedAt = now
    }

    mutating func removeAll(where shouldRemove: (Value) -> Bool) {
        current = current.filter { !shouldRemove($0.value) }
        previous = previous.filter { !shouldRemove($0.value) }
    }
}

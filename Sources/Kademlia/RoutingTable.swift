/// Time in a Kademlia state machine: a duration since any fixed origin the driver chooses
/// (a monotonic clock in a real node, virtual time in the simulator).
public typealias KademliaTime = Duration

/// A known node: its ID, where to reach it, and what we know of its liveness.
public struct Contact<Width: IDWidth, Address: Hashable & Sendable>: Hashable, Sendable {
    public var id: KademliaID<Width>
    public var address: Address
    /// When it last answered a query of ours (or, failing that, when it was added).
    public var lastSeen: KademliaTime
    /// Queries in a row it did not answer.
    public var failures = 0
    /// Whether it has ever answered us (nodes heard of from others have not).
    public var answered = false

    public init(id: KademliaID<Width>, address: Address, lastSeen: KademliaTime) {
        self.id = id
        self.address = address
        self.lastSeen = lastSeen
    }
}

/// Liveness as BEP 5 defines it: good if it answered within the last 15 minutes, bad after
/// several failures in a row, questionable otherwise.
public enum Liveness: Sendable, Hashable {
    case good
    case questionable
    case bad
}

/// Routing table limits and timings.
public struct RoutingConfiguration: Sendable {
    /// Contacts per bucket (8 in the mainline DHT, 20 in libp2p).
    public var k = 8
    /// Spare contacts kept per bucket, used when a member goes bad.
    public var replacements = 8
    /// A contact silent this long is questionable.
    public var questionableAfter: Duration = .seconds(15 * 60)
    /// Failures in a row that make a contact bad.
    public var badAfterFailures = 2

    public init() {}
}

/// What ``RoutingTable/insert(_:now:)`` did with a contact.
public enum InsertOutcome<Width: IDWidth, Address: Hashable & Sendable>: Sendable, Hashable {
    /// Added to a bucket (possibly after splitting it).
    case added
    /// Already there: refreshed and moved to the most-recently-seen end.
    case refreshed
    /// The bucket is full of live contacts; kept as a replacement.
    case cached
    /// The bucket is full and its least recently seen member is questionable: ping it, and
    /// call ``RoutingTable/failed(_:now:)`` if it does not answer (the newcomer then takes its
    /// place from the replacement cache), ``RoutingTable/insert(_:now:)`` if it does.
    case pingBeforeEvicting(Contact<Width, Address>)
    /// Our own ID, or an address already held by another ID: not added.
    case ignored
}

/// A Kademlia routing table (Maymounkov and Mazières, section 2.4, with BEP 5's details): buckets
/// of up to k contacts kept least-recently-seen first; only the bucket covering our own ID splits;
/// a full bucket evicts bad contacts, pings questionable ones before evicting them, and keeps
/// newcomers in a bounded replacement cache. Pure state: the caller supplies the time.
public struct RoutingTable<Width: IDWidth, Address: Hashable & Sendable>: Sendable {
    public typealias ID = KademliaID<Width>
    public typealias Node = Contact<Width, Address>

    public struct Bucket: Sendable {
        /// Least recently seen first.
        public fileprivate(set) var contacts: [Node] = []
        /// Most recently heard of last.
        public fileprivate(set) var replacements: [Node] = []
        /// When a contact last joined, answered or left (for refresh, BEP 5: 15 minutes).
        public fileprivate(set) var lastChanged: KademliaTime
    }

    public let ownID: ID
    public let configuration: RoutingConfiguration
    /// Bucket `i` (for `i` < count − 1) holds contacts whose common prefix with our ID is exactly
    /// `i` bits; the last bucket holds all contacts with a longer common prefix.
    public private(set) var buckets: [Bucket]

    public init(
        ownID: ID, configuration: RoutingConfiguration = RoutingConfiguration(), now: KademliaTime = .zero
    ) {
        self.ownID = ownID
        self.configuration = configuration
        buckets = [Bucket(lastChanged: now)]
    }

    /// Contacts in all buckets.
    public var count: Int { buckets.reduce(0) { $0 + $1.contacts.count } }

    /// Every contact, nearest buckets last.
    public var contacts: [Node] { buckets.flatMap { $0.contacts } }

    @inlinable
    public func liveness(of contact: Node, now: KademliaTime) -> Liveness {
        if contact.failures >= configuration.badAfterFailures { return .bad }
        if contact.answered && now - contact.lastSeen < configuration.questionableAfter { return .good }
        return .questionable
    }

    /// The bucket index for `id`.
    public func bucketIndex(for id: ID) -> Int {
        min(ownID.commonPrefixLength(with: id), buckets.count - 1)
    }

    /// The contact with `id`, if known.
    public func contact(_ id: ID) -> Node? {
        buckets[bucketIndex(for: id)].contacts.first { $0.id == id }
    }

    /// Records that `contact` was heard from: `contact.answered` says whether it answered a query
    /// of ours (then it is good) or merely sent us something or was named by another node.
    @discardableResult
    public mutating func insert(_ contact: Node, now: KademliaTime) -> InsertOutcome<Width, Address> {
        guard contact.id != ownID else { return .ignored }
        while true {
            let index = bucketIndex(for: contact.id)
            if let position = buckets[index].contacts.firstIndex(where: { $0.id == contact.id }) {
                var existing = buckets[index].contacts.remove(at: position)
                guard existing.address == contact.address else {
                    // The same ID from another address: keep the one we know (BEP 42 territory).
                    buckets[index].contacts.insert(existing, at: position)
                    return .ignored
                }
                if contact.answered {
                    existing.answered = true
                    existing.failures = 0
                    existing.lastSeen = now
                }
                buckets[index].contacts.append(existing)
                return .refreshed
            }
            if buckets[index].contacts.count < configuration.k {
                var added = contact
                added.lastSeen = now
                buckets[index].contacts.append(added)
                buckets[index].lastChanged = now
                buckets[index].replacements.removeAll { $0.id == contact.id }
                return .added
            }
            if index == buckets.count - 1 && buckets.count < ID.bitWidth {
                split(now: now)
                continue
            }
            // Full: a bad member makes room at once; a questionable one is pinged first.
            if let bad = buckets[index].contacts.firstIndex(where: { liveness(of: $0, now: now) == .bad }) {
                buckets[index].contacts.remove(at: bad)
                var added = contact
                added.lastSeen = now
                buckets[index].contacts.append(added)
                buckets[index].lastChanged = now
                return .added
            }
            cache(contact, in: index, now: now)
            if let oldest = buckets[index].contacts.first, liveness(of: oldest, now: now) == .questionable {
                return .pingBeforeEvicting(oldest)
            }
            return .cached
        }
    }

    /// Records that `id` did not answer a query. Once bad it is replaced by the freshest
    /// replacement, if there is one.
    public mutating func failed(_ id: ID, now: KademliaTime) {
        let index = bucketIndex(for: id)
        guard let position = buckets[index].contacts.firstIndex(where: { $0.id == id }) else {
            buckets[index].replacements.removeAll { $0.id == id }
            return
        }
        buckets[index].contacts[position].failures += 1
        guard liveness(of: buckets[index].contacts[position], now: now) == .bad,
            let replacement = buckets[index].replacements.popLast()
        else { return }
        buckets[index].contacts.remove(at: position)
        var added = replacement
        added.lastSeen = now
        buckets[index].contacts.append(added)
        buckets[index].lastChanged = now
    }

    /// Replaces `id` by the freshest replacement at once (it was pinged before being evicted
    /// and did not answer); without a replacement it only counts as a failure.
    public mutating func evict(_ id: ID, now: KademliaTime) {
        let index = bucketIndex(for: id)
        guard let position = buckets[index].contacts.firstIndex(where: { $0.id == id }) else { return }
        guard let replacement = buckets[index].replacements.popLast() else {
            buckets[index].contacts[position].failures += 1
            return
        }
        buckets[index].contacts.remove(at: position)
        var added = replacement
        added.lastSeen = now
        buckets[index].contacts.append(added)
        buckets[index].lastChanged = now
    }

    /// Removes `id` (it misbehaved).
    public mutating func remove(_ id: ID) {
        let index = bucketIndex(for: id)
        buckets[index].contacts.removeAll { $0.id == id }
        buckets[index].replacements.removeAll { $0.id == id }
    }

    /// Up to `count` contacts closest to `target`, nearest first, bad ones left out.
    @inlinable
    public func closest(to target: ID, count: Int, now: KademliaTime) -> [Node] {
        guard count > 0 else { return [] }
        // Keep the best `count` by insertion into a short sorted list: no sort of the whole table.
        var best: [(distance: ID, contact: Node)] = []
        best.reserveCapacity(count + 1)
        for bucket in buckets {
            for contact in bucket.contacts where liveness(of: contact, now: now) != .bad {
                let distance = contact.id.distance(to: target)
                if best.count == count, let last = best.last, !(distance < last.distance) { continue }
                var position = best.count
                while position > 0 && distance < best[position - 1].distance { position -= 1 }
                best.insert((distance, contact), at: position)
                if best.count > count { best.removeLast() }
            }
        }
        return best.map { $0.contact }
    }

    /// Buckets not changed for `interval`: look up a random ID in each to refresh it (BEP 5).
    public func bucketsNeedingRefresh(now: KademliaTime, interval: Duration = .seconds(15 * 60)) -> [Int] {
        buckets.indices.filter { now - buckets[$0].lastChanged >= interval }
    }

    /// Marks bucket `index` as refreshed.
    public mutating func markRefreshed(_ index: Int, now: KademliaTime) {
        guard buckets.indices.contains(index) else { return }
        buckets[index].lastChanged = now
    }

    private mutating func cache(_ contact: Node, in index: Int, now: KademliaTime) {
        buckets[index].replacements.removeAll { $0.id == contact.id }
        var cached = contact
        cached.lastSeen = now
        buckets[index].replacements.append(cached)
        if buckets[index].replacements.count > configuration.replacements {
            buckets[index].replacements.removeFirst()
        }
    }

    /// Splits the last bucket: contacts sharing one more bit with our ID move to a new last one.
    private mutating func split(now: KademliaTime) {
        let depth = buckets.count - 1
        var near = Bucket(lastChanged: now)
        var far = Bucket(lastChanged: buckets[depth].lastChanged)
        for contact in buckets[depth].contacts {
            if ownID.commonPrefixLength(with: contact.id) > depth {
                near.contacts.append(contact)
            } else {
                far.contacts.append(contact)
            }
        }
        for contact in buckets[depth].replacements {
            if ownID.commonPrefixLength(with: contact.id) > depth {
                near.replacements.append(contact)
            } else {
                far.replacements.append(contact)
            }
        }
        buckets[depth] = far
        buckets.append(near)
    }
}

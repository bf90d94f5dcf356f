/// A peer's address in the compact form it is stored and sent in (BEP 23, BEP 7).
protocol CompactPeer: Hashable, Comparable, Sendable {
    /// 6 for IPv4, 18 for IPv6.
    static var compactLength: Int { get }
    func appendCompact(to out: inout [UInt8])
    /// A well-mixed hash, to spread peers over a table's buckets.
    var spread: UInt64 { get }
}

/// An IPv4 peer: the address in bits 47…16 and the port in the low 16, one word.
struct IPv4Peer: CompactPeer {
    let raw: UInt64

    init(ip: UInt32, port: UInt16) { raw = UInt64(ip) << 16 | UInt64(port) }
    init(raw: UInt64) { self.raw = raw }

    static var compactLength: Int { 6 }
    var spread: UInt64 { raw &* 0x9E37_79B9_7F4A_7C15 }
    static func < (lhs: Self, rhs: Self) -> Bool { lhs.raw < rhs.raw }

    func appendCompact(to out: inout [UInt8]) {
        out.appendBigEndian(UInt32(truncatingIfNeeded: raw >> 16))
        out.appendBigEndian(UInt16(truncatingIfNeeded: raw))
    }
}

/// An IPv6 peer.
struct IPv6Peer: CompactPeer {
    let high: UInt64
    let low: UInt64
    let port: UInt16

    static var compactLength: Int { 18 }
    var spread: UInt64 { (high ^ low.byteSwapped ^ UInt64(port)) &* 0x9E37_79B9_7F4A_7C15 }
    static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.high, lhs.low, lhs.port) < (rhs.high, rhs.low, rhs.port)
    }

    func appendCompact(to out: inout [UInt8]) {
        out.appendBigEndian(high)
        out.appendBigEndian(low)
        out.appendBigEndian(port)
    }
}

/// One stored peer: its address, whether it is a seed, and when it last announced, in 4-second
/// units modulo 2¹⁵ (36 hours; expiry runs far more often than that, so ages never wrap).
protocol PeerEntry: Sendable {
    associatedtype Peer: CompactPeer
    init(peer: Peer, stamp: UInt16)
    var peer: Peer { get }
    /// Bit 0: seed; bits 15…1: the time unit.
    var stamp: UInt16 { get set }
}

/// IPv4 entries are one word: 48 bits of address and port, 16 of stamp, so a million IPv4
/// peers take about 8 MB, as in opentracker.
struct IPv4Entry: PeerEntry {
    private var raw: UInt64

    init(peer: IPv4Peer, stamp: UInt16) { raw = peer.raw << 16 | UInt64(stamp) }
    var peer: IPv4Peer { IPv4Peer(raw: raw >> 16) }
    var stamp: UInt16 {
        get { UInt16(truncatingIfNeeded: raw) }
        set { raw = raw & ~0xFFFF | UInt64(newValue) }
    }
}

struct IPv6Entry: PeerEntry {
    let peer: IPv6Peer
    var stamp: UInt16
}

/// The peers of one torrent in one address family, in sorted runs (buckets) chosen by a hash
/// of the address: lookups are binary searches, insertions move at most a bucket, and there
/// is no index beside the entries, so memory is the entries themselves. Buckets double when
/// they average more than 256 entries.
struct PeerTable<Entry: PeerEntry>: Sendable {
    typealias Peer = Entry.Peer
    static var secondsPerUnit: UInt32 { 4 }

    private var buckets: [[Entry]] = [[]]
    private(set) var count = 0
    private(set) var seeds = 0

    var isEmpty: Bool { count == 0 }

    private static func stamp(now: UInt32, isSeed: Bool) -> UInt16 {
        UInt16(truncatingIfNeeded: (now / secondsPerUnit) << 1) | (isSeed ? 1 : 0)
    }

    private func bucket(of peer: Peer) -> Int {
        Int(truncatingIfNeeded: peer.spread >> 40) & (buckets.count - 1)
    }

    /// Where `peer` is or would go in its bucket.
    private func find(_ peer: Peer) -> (bucket: Int, index: Int, found: Bool) {
        let bucket = bucket(of: peer)
        return buckets[bucket].withUnsafeBufferPointer { entries in
            var low = 0
            var high = entries.count
            while low < high {
                let middle = (low + high) / 2
                if entries[middle].peer < peer { low = middle + 1 } else { high = middle }
            }
            return (bucket, low, low < entries.count && entries[low].peer == peer)
        }
    }

    /// Whether `peer` is listed, and whether as a seed.
    func status(_ peer: Peer) -> Bool? {
        let place = find(peer)
        return place.found ? buckets[place.bucket][place.index].stamp & 1 == 1 : nil
    }

    /// Adds or refreshes `peer`; returns whether it was listed as a seed before (nil: new).
    @discardableResult
    mutating func upsert(_ peer: Peer, isSeed: Bool, now: UInt32) -> Bool? {
        let place = find(peer)
        let stamp = Self.stamp(now: now, isSeed: isSeed)
        if place.found {
            let wasSeed = buckets[place.bucket][place.index].stamp & 1 == 1
            if wasSeed != isSeed { seeds += isSeed ? 1 : -1 }
            buckets[place.bucket][place.index].stamp = stamp
            return wasSeed
        }
        buckets[place.bucket].insert(Entry(peer: peer, stamp: stamp), at: place.index)
        count += 1
        if isSeed { seeds += 1 }
        if count > buckets.count * 256 && buckets.count < 4_096 { rehash(buckets.count * 2) }
        return nil
    }

    /// Removes `peer`; returns whether it was a seed, nil if it was not listed.
    @discardableResult
    mutating func remove(_ peer: Peer) -> Bool? {
        let place = find(peer)
        guard place.found else { return nil }
        let removed = buckets[place.bucket].remove(at: place.index)
        count -= 1
        let wasSeed = removed.stamp & 1 == 1
        if wasSeed { seeds -= 1 }
        return wasSeed
    }

    /// Drops every peer that has not announced for `timeout` seconds; returns how many peers
    /// and seeds went.
    mutating func expire(now: UInt32, timeout: UInt32) -> (peers: Int, seeds: Int) {
        let current = UInt16(truncatingIfNeeded: now / Self.secondsPerUnit) & 0x7FFF
        // Ages are read modulo 2¹⁵ units, so timeouts stop at about 32 hours.
        let limit = UInt16(min(0x7000, (timeout + Self.secondsPerUnit - 1) / Self.secondsPerUnit))
        let before = (count, seeds)
        for index in buckets.indices {
            buckets[index].removeAll { entry in
                let age = (current &- (entry.stamp >> 1)) & 0x7FFF
                guard age >= limit else { return false }
                count -= 1
                if entry.stamp & 1 == 1 { seeds -= 1 }
                return true
            }
        }
        if count == 0 { buckets = [[]] }
        return (before.0 - count, before.1 - seeds)
    }

    /// Appends up to `limit` peers in compact form, reading round the table from a position
    /// chosen by `start`: not `skipping` (the asker) and, for a seed asking, not other seeds.
    /// At most `4 × limit + 16` entries are looked at, so a seed in a swarm of seeds costs little.
    func sample(into out: inout [UInt8], limit: Int, start: UInt64, skipping: Peer?, leechersOnly: Bool)
        -> Int
    {
        guard limit > 0, count > 0 else { return 0 }
        var bucket = Int(truncatingIfNeeded: start) & (buckets.count - 1)
        var index = buckets[bucket].isEmpty ? 0 : Int((start >> 16) % UInt64(buckets[bucket].count))
        var taken = 0
        var looked = 0
        let budget = min(count, limit * 4 + 16)
        while taken < limit, looked < budget {
            if index >= buckets[bucket].count {
                bucket = (bucket + 1) & (buckets.count - 1)
                index = 0
                continue
            }
            let entry = buckets[bucket][index]
            if entry.peer != skipping, !(leechersOnly && entry.stamp & 1 == 1) {
                entry.peer.appendCompact(to: &out)
                taken += 1
            }
            looked += 1
            index += 1
        }
        return taken
    }

    private mutating func rehash(_ bucketCount: Int) {
        let old = buckets
        buckets = Array(repeating: [], count: bucketCount)
        for entries in old {
            for entry in entries { buckets[bucket(of: entry.peer)].append(entry) }
        }
        for index in buckets.indices { buckets[index].sort { $0.peer < $1.peer } }
    }
}

/// A peer's address in the compact form it is stored and sent in (BEP 23, BEP 7).
protocol CompactPeer: Hashable, Sendable {
    /// 6 for IPv4, 18 for IPv6.
    static var compactLength: Int { get }
    func appendCompact(to out: inout [UInt8])
    /// Text address, for the non-compact reply form.
    var ipText: String { get }
    var port: UInt16 { get }
}

/// An IPv4 peer: the address in the high bits and the port in the low 16, one word.
struct IPv4Peer: CompactPeer {
    let raw: UInt64

    init(ip: UInt32, port: UInt16) { raw = UInt64(ip) << 16 | UInt64(port) }

    static var compactLength: Int { 6 }
    var port: UInt16 { UInt16(truncatingIfNeeded: raw) }
    var ipText: String { TrackerIP.v4(UInt32(truncatingIfNeeded: raw >> 16)).description }

    func appendCompact(to out: inout [UInt8]) {
        withUnsafeBytes(of: (raw << 16).bigEndian) { out.append(contentsOf: $0.prefix(6)) }
    }
}

/// An IPv6 peer.
struct IPv6Peer: CompactPeer {
    let high: UInt64
    let low: UInt64
    let port: UInt16

    static var compactLength: Int { 18 }
    var ipText: String { TrackerIP.v6(high, low).description }

    func appendCompact(to out: inout [UInt8]) {
        out.appendBigEndian(high)
        out.appendBigEndian(low)
        out.appendBigEndian(port)
    }
}

/// The peers of one torrent in one address family: a dense array (so a random run of peers is
/// cheap to read) and an index from address to position. Removal swaps the last entry in.
struct PeerTable<Peer: CompactPeer>: Sendable {
    struct Entry: Sendable {
        var peer: Peer
        /// Seconds on the tracker's clock.
        var lastSeen: UInt32
        var isSeed: Bool
    }

    private(set) var entries: [Entry] = []
    private var positions: [Peer: Int32] = [:]
    private(set) var seeds = 0

    var count: Int { entries.count }
    var isEmpty: Bool { entries.isEmpty }

    /// Whether `peer` is listed, and whether as a seed.
    func status(_ peer: Peer) -> Bool? {
        positions[peer].map { entries[Int($0)].isSeed }
    }

    /// Adds or refreshes `peer` with one hash lookup; returns whether it was listed as a seed
    /// before (nil: it was new).
    @discardableResult
    mutating func upsert(_ peer: Peer, isSeed: Bool, now: UInt32) -> Bool? {
        let next = Int32(entries.count)
        let position = positions[peer, default: next]
        if position == next {
            positions[peer] = next
            entries.append(Entry(peer: peer, lastSeen: now, isSeed: isSeed))
            if isSeed { seeds += 1 }
            return nil
        }
        let index = Int(position)
        let wasSeed = entries[index].isSeed
        if wasSeed != isSeed { seeds += isSeed ? 1 : -1 }
        entries[index].isSeed = isSeed
        entries[index].lastSeen = now
        return wasSeed
    }

    /// Removes `peer`; returns its entry if it was listed.
    @discardableResult
    mutating func remove(_ peer: Peer) -> Entry? {
        guard let position = positions.removeValue(forKey: peer) else { return nil }
        let index = Int(position)
        let removed = entries[index]
        let last = entries.removeLast()
        if index < entries.count {
            entries[index] = last
            positions[last.peer] = position
        }
        if removed.isSeed { seeds -= 1 }
        return removed
    }

    /// Drops every peer last seen before `cutoff`; returns how many peers and seeds went.
    mutating func expire(before cutoff: UInt32) -> (peers: Int, seeds: Int) {
        let before = (entries.count, seeds)
        guard entries.contains(where: { $0.lastSeen < cutoff }) else { return (0, 0) }
        entries.removeAll { $0.lastSeen < cutoff }
        positions = [:]
        positions.reserveCapacity(entries.count)
        seeds = 0
        for (index, entry) in entries.enumerated() {
            positions[entry.peer] = Int32(index)
            if entry.isSeed { seeds += 1 }
        }
        return (before.0 - entries.count, before.1 - seeds)
    }

    /// Appends up to `limit` peers in compact form, reading from position `start` round the
    /// table: not `skipping` (the asker) and, for a seed asking, not other seeds. At most
    /// `4 × limit + 16` entries are looked at, so a seed in a swarm of seeds costs little.
    func sample(into out: inout [UInt8], limit: Int, start: UInt64, skipping: Peer?, leechersOnly: Bool)
        -> Int
    {
        guard limit > 0, !entries.isEmpty else { return 0 }
        var taken = 0
        var index = Int(start % UInt64(entries.count))
        var looked = 0
        let budget = min(entries.count, limit * 4 + 16)
        while taken < limit, looked < budget {
            let entry = entries[index]
            if entry.peer != skipping, !(leechersOnly && entry.isSeed) {
                entry.peer.appendCompact(to: &out)
                taken += 1
            }
            looked += 1
            index += 1
            if index == entries.count { index = 0 }
        }
        return taken
    }
}

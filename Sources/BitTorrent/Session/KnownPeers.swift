import PeerNet

/// The peers we may dial (from trackers, PEX, the DHT, the command line), with back-off: a
/// failed dial waits 2, 4, … up to 300 s before the next; a closed connection waits 5 s.
struct KnownPeers: Sendable {
    private struct Entry: Sendable {
        var failures = 0
        var nextAttempt: Moment = .zero
        /// Dialling or connected.
        var connected = false
    }

    private var entries: [Endpoint: Entry] = [:]

    var count: Int { entries.count }
    /// Dials under way or connected.
    var busyCount: Int { entries.values.filter(\.connected).count }

    /// Adds addresses not yet known, up to `limit` in all.
    mutating func add(_ addresses: [Endpoint], limit: Int, skip: (Endpoint) -> Bool) {
        for address in addresses where entries[address] == nil && !skip(address) {
            guard entries.count < limit else { return }
            entries[address] = Entry()
        }
    }

    mutating func forget(_ address: Endpoint) { entries[address] = nil }

    /// Forgets every address whose key matches (a ban).
    mutating func forget(where matches: (Endpoint) -> Bool) {
        for address in entries.keys where matches(address) { entries[address] = nil }
    }

    /// An outgoing connection completed its handshake.
    mutating func connected(_ address: Endpoint) { entries[address, default: Entry()].connected = true }

    /// A dial failed: back off exponentially.
    mutating func dialFailed(_ address: Endpoint, now: Moment) {
        guard var entry = entries[address] else { return }
        entry.connected = false
        entry.failures += 1
        entry.nextAttempt = now + .seconds(min(300, 1 << min(entry.failures, 8)))
        entries[address] = entry
    }

    /// An outgoing connection ended.
    mutating func disconnected(_ address: Endpoint, now: Moment) {
        guard var entry = entries[address] else { return }
        entry.connected = false
        entry.nextAttempt = now + .seconds(5)
        entries[address] = entry
    }

    /// Up to `budget` addresses to dial now, in a stable order; each is marked as dialling.
    mutating func dial(budget: Int, now: Moment, skip: (Endpoint) -> Bool) -> [Endpoint] {
        guard budget > 0 else { return [] }
        var chosen: [Endpoint] = []
        for address in entries.keys.sorted(by: { $0.description < $1.description }) {
            guard chosen.count < budget else { break }
            guard var entry = entries[address], !entry.connected, entry.nextAttempt <= now, !skip(address)
            else { continue }
            entry.connected = true
            entries[address] = entry
            chosen.append(address)
        }
        return chosen
    }
}

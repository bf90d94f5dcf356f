import PeerNet

/// BEP 11 (`ut_pex`): telling each peer which other peers we are connected to, as changes
/// since what it was last told, and learning peers from theirs.
///
/// Each peer's first list goes out `firstPEXDelay` after its handshake, then one every `pexInterval`
/// (BEP 11: not more often than once a minute); at most ``PEXMessage/maxPeers`` added and
/// dropped per message. No sockets or clock inside.
struct PeerExchange: Sendable {
    private struct Told: Sendable {
        var addresses: Set<Endpoint> = []
        var last: Moment
    }

    private var told: [PeerKey: Told] = [:]

    mutating func peerJoined(_ key: PeerKey, now: Moment, interval: Duration, firstDelay: Duration) {
        told[key] = Told(last: now - interval + firstDelay)
    }

    mutating func peerLeft(_ key: PeerKey) { told[key] = nil }

    /// Whether the peer's next list is due.
    func isDue(_ key: PeerKey, now: Moment, interval: Duration) -> Bool {
        told[key].map { now - $0.last >= interval } ?? false
    }

    /// The changes to tell this peer, given the listen addresses of the peers connected now
    /// (the peer itself left out); nil when nothing changed.
    mutating func message(for key: PeerKey, current: Set<Endpoint>, now: Moment) -> PEXMessage? {
        guard var entry = told[key] else { return nil }
        entry.last = now
        defer { told[key] = entry }
        let added = current.subtracting(entry.addresses).sorted { $0.description < $1.description }
        let dropped = entry.addresses.subtracting(current).sorted { $0.description < $1.description }
        guard !added.isEmpty || !dropped.isEmpty else { return nil }
        let message = PEXMessage(
            added: Array(added.prefix(PEXMessage.maxPeers)),
            dropped: Array(dropped.prefix(PEXMessage.maxPeers)))
        entry.addresses = entry.addresses.subtracting(message.dropped).union(message.added)
        return message
    }
}

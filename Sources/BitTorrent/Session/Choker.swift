/// Whom to unchoke (BEP 3 practice, as libtorrent's and Transmission's rate-based choker):
/// `slots` (from the configuration, per call) interested peers by the rate they give us while leeching, or take from us while
/// seeding, never a snubbed one; plus one optimistic unchoke chosen at random among the rest,
/// rotated every `optimisticInterval`. A round runs every `interval`.
///
/// No clock or randomness inside: the time and the generator are passed in.
struct Choker: Sendable {
    /// What a round needs to know of a peer.
    struct Candidate: Sendable {
        let key: PeerKey
        let interested: Bool
        let snubbed: Bool
        /// Bytes per second from the peer (leeching) or to it (seeding).
        let rate: Double
        let lastUnchoked: Moment
        /// The current optimistic unchoke.
        let optimistic: Bool
    }

    /// The outcome of a round.
    struct Decision: Equatable, Sendable {
        var unchoke: Set<PeerKey>
        var optimistic: PeerKey?
    }

    private var lastRound: Moment?
    private var lastOptimistic: Moment?

    /// Whether a round is due; if so, it is recorded as run, and `rotate` says whether the
    /// optimistic unchoke moves on.
    mutating func roundDue(now: Moment, interval: Duration, optimisticInterval: Duration)
        -> (due: Bool, rotate: Bool)
    {
        guard lastRound.map({ now - $0 >= interval }) ?? true else { return (false, false) }
        let rotate = lastOptimistic.map { now - $0 >= optimisticInterval } ?? true
        if rotate { lastOptimistic = now }
        lastRound = now
        return (true, rotate)
    }

    /// Chooses the unchoked peers. The optimistic one is kept unless `rotate` or it won a
    /// regular slot.
    func decide(
        _ candidates: [Candidate], slots: Int, rotate: Bool, using rng: inout some RandomNumberGenerator
    ) -> Decision {
        let interested = candidates.filter(\.interested)
        let ranked = interested.filter { !$0.snubbed }.sorted { lhs, rhs in
            if lhs.rate != rhs.rate { return lhs.rate > rhs.rate }
            return lhs.lastUnchoked < rhs.lastUnchoked  // round-robin among equals
        }
        var unchoke = Set(ranked.prefix(slots).map(\.key))
        var optimistic = interested.first { $0.optimistic }?.key
        if rotate || optimistic.map({ unchoke.contains($0) }) ?? true {
            let others = interested.filter { !unchoke.contains($0.key) }.map(\.key).sorted()
            optimistic = others.isEmpty ? nil : others[Int.random(in: 0..<others.count, using: &rng)]
        }
        if let optimistic { unchoke.insert(optimistic) }
        return Decision(unchoke: unchoke, optimistic: optimistic)
    }

    /// A newly interested peer is unchoked at once when a slot is free, not at the next round.
    func unchokesAtOnce(unchokedNow: Int, slots: Int) -> Bool { unchokedNow < slots + 1 }
}

import TestSupport
import Testing

@testable import BitTorrentTracker

/// The bucketed sorted peer table against a plain dictionary, through growth and expiry.
struct PeerTableTests {
    @Test func matchesAReferenceThroughGrowthRemovalAndExpiry() {
        var table = PeerTable<IPv4Entry>()
        var reference: [UInt64: (seed: Bool, seen: UInt32)] = [:]
        var generator = SeededGenerator(state: 4)
        for step in 0..<60_000 {
            let now = UInt32(step / 10)
            let peer = IPv4Peer(ip: UInt32.random(in: 0..<30_000, using: &generator), port: 6881)
            let seed = Bool.random(using: &generator)
            if step % 7 == 0 {
                #expect(table.remove(peer) == reference.removeValue(forKey: peer.raw)?.seed)
            } else {
                #expect(table.upsert(peer, isSeed: seed, now: now) == reference[peer.raw]?.seed)
                reference[peer.raw] = (seed, now)
            }
        }
        #expect(table.count == reference.count)
        #expect(table.seeds == reference.values.filter(\.seed).count)
        // Sampling: distinct peers, never the asker, only leechers for a seed.
        var out: [UInt8] = []
        let asker = IPv4Peer(raw: reference.keys.first!)
        let taken = table.sample(into: &out, limit: 200, start: 12_345, skipping: asker, leechersOnly: true)
        #expect(taken == 200 && out.count == 1_200)
        let listed = Set(
            stride(from: 0, to: out.count, by: 6).map { index in
                out[index..<index + 6].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            })
        #expect(listed.count == 200 && !listed.contains(asker.raw))
        #expect(listed.allSatisfy { reference[$0]?.seed == false })
        // Expiry: everything not seen in the last 400 s (at 4 s precision) goes.
        let gone = table.expire(now: 6_000, timeout: 400)
        let kept = reference.filter { 6_000 / 4 - $0.value.seen / 4 < 100 }
        #expect(table.count == kept.count && gone.peers == reference.count - kept.count)
        #expect(table.seeds == kept.values.filter(\.seed).count)
    }
}

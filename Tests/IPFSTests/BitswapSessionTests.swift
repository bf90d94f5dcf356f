import IPFS
import Multiformats
import Testing

@Suite("Bitswap session")
struct BitswapSessionTests {
    static func block(_ index: Int) -> BitswapMessage.Block {
        let data = Array("block \(index)".utf8)
        return .init(cid: CID(v1: .raw, Multihash.hash(data)), data: data)
    }

    /// The CIDs each peer was asked for in `actions`.
    static func asked(_ actions: [BitswapSession<String>.Action]) -> [String: [CID]] {
        var out: [String: [CID]] = [:]
        for case .send(let peer, let message) in actions {
            out[peer, default: []] += message.entries.filter { !$0.cancel }.map(\.cid)
        }
        return out
    }

    @Test("wants spread over peers within the in-flight caps; blocks come back verified and free room")
    func spread() throws {
        var limits = BitswapSession<String>.Limits()
        limits.maxInFlight = 6
        limits.maxInFlightPerPeer = 4
        var session = BitswapSession<String>(limits: limits)
        _ = session.addPeer("a", now: .zero)
        _ = session.addPeer("b", now: .zero)
        let blocks = (0..<10).map(Self.block)
        let first = Self.asked(session.want(blocks.map(\.cid), now: .zero))
        #expect(first["a", default: []].count + first["b", default: []].count == 6)
        #expect(first.values.allSatisfy { $0.count <= 4 })
        let fromA = first["a", default: []]
        let (got, missing, actions) = session.received(
            BitswapMessage(blocks: blocks.filter { fromA.contains($0.cid) }), from: "a", now: .seconds(1))
        #expect(got.map(\.cid) == fromA && missing.isEmpty)
        #expect(Self.asked(actions).values.reduce(0) { $0 + $1.count } == fromA.count)
        #expect(session.outstanding == 10 - fromA.count)
    }

    @Test("DONT_HAVE and timeouts pass a want to the next peer; a block nobody has is reported missing")
    func fallback() throws {
        var session = BitswapSession<String>()
        _ = session.addPeer("a", now: .zero)
        _ = session.addPeer("b", now: .zero)
        let x = Self.block(1).cid
        let y = Self.block(2).cid
        let asked = Self.asked(session.want([x, y], now: .zero))
        let askedOfA = try #require(asked["a"]?.first)
        let other = askedOfA == x ? y : x
        // a refuses its CID: b gets it.
        let refusal = session.received(
            BitswapMessage(presences: [(askedOfA, .dontHave)]), from: "a", now: .seconds(1))
        #expect(Self.asked(refusal.actions)["b"] == [askedOfA])
        // b refuses it too: nobody has it.
        let second = session.received(
            BitswapMessage(presences: [(askedOfA, .dontHave)]), from: "b", now: .seconds(2))
        #expect(second.missing == [askedOfA])
        // b never answers for `other`: after the timeout it goes to a, with a cancel to b.
        let late = session.tick(now: .seconds(30))
        #expect(Self.asked(late.actions)["a"] == [other])
        #expect(
            late.actions.contains {
                if case .send("b", let m) = $0 { m.entries.allSatisfy(\.cancel) } else { false }
            })
        #expect(session.tick(now: .seconds(60)).missing == [other])
        #expect(session.outstanding == 0)
    }

    @Test("a peer that sends a block nobody wants is dropped and its wants go to the others")
    func unsolicited() throws {
        var session = BitswapSession<String>()
        _ = session.addPeer("bad", now: .zero)
        let wanted = Self.block(1)
        _ = session.want([wanted.cid], now: .zero)
        _ = session.addPeer("good", now: .zero)
        let result = session.received(BitswapMessage(blocks: [Self.block(99)]), from: "bad", now: .seconds(1))
        #expect(result.blocks.isEmpty)
        #expect(
            result.actions.contains(
                .drop("bad", reason: "sent block \(Self.block(99).cid), which nobody asked it for")))
        #expect(Self.asked(result.actions)["good"] == [wanted.cid])
        #expect(session.peerCount == 1)
    }

    @Test(
        "a block that comes late from a peer whose want timed out is taken, and cancelled at the other peer")
    func late() throws {
        var session = BitswapSession<String>()
        _ = session.addPeer("a", now: .zero)
        _ = session.addPeer("b", now: .zero)
        let block = Self.block(1)
        let first = Self.asked(session.want([block.cid], now: .zero))
        let slow = try #require(first.keys.first)
        let other = slow == "a" ? "b" : "a"
        let moved = session.tick(now: .seconds(21))
        #expect(Self.asked(moved.actions)[other] == [block.cid])
        // The slow peer delivers after all: taken, not a violation; the other peer is cancelled.
        let (got, _, actions) = session.received(
            BitswapMessage(blocks: [block]), from: slow, now: .seconds(22))
        #expect(got == [block])
        #expect(!actions.contains { if case .drop = $0 { true } else { false } })
        let cancels = actions.compactMap { action -> String? in
            guard case .send(let peer, let message) = action, message.entries.allSatisfy(\.cancel) else {
                return nil
            }
            return peer
        }
        #expect(cancels == [other])
        // And when the other peer's copy arrives too, it is not held against it either.
        let (again, _, after) = session.received(
            BitswapMessage(blocks: [block]), from: other, now: .seconds(23))
        #expect(again.isEmpty)
        #expect(!after.contains { if case .drop = $0 { true } else { false } })
    }
}

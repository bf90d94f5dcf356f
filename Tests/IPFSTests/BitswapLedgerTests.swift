import IPFS
import Multiformats
import Testing

@Suite("Bitswap ledger")
struct BitswapLedgerTests {
    static func cid(_ text: String) -> CID { CID(v1: .raw, Multihash.hash(Array(text.utf8))) }

    /// A store holding "a" (3 bytes), "small" and "big" (4 KiB).
    static let blocks: [CID: [UInt8]] = [
        cid("a"): Array("aaa".utf8), cid("small"): Array("tiny".utf8),
        cid("big"): [UInt8](repeating: 7, count: 4096),
    ]
    static func size(_ cid: CID) -> Int? { blocks[cid]?.count }
    static func block(_ cid: CID) -> [UInt8]? { blocks[cid] }

    @Test("want-block gets the block, want-have a HAVE (or the block when small), DONT_HAVE only when asked")
    func answers() throws {
        var ledger = BitswapLedger()
        ledger.received(
            BitswapMessage(entries: [
                .init(cid: Self.cid("a")), .init(cid: Self.cid("big"), wantType: .have),
                .init(cid: Self.cid("small"), wantType: .have),
                .init(cid: Self.cid("gone"), sendDontHave: true),
                .init(cid: Self.cid("silent")),
            ]))
        let next = ledger.nextMessage(size: Self.size, block: Self.block)
        let message = try #require(next)
        #expect(message.blocks.map(\.cid) == [Self.cid("a"), Self.cid("small")])
        #expect(message.presences.map(\.cid) == [Self.cid("big"), Self.cid("gone")])
        #expect(message.presences.map(\.presence) == [.have, .dontHave])
        let none = ledger.nextMessage(size: Self.size, block: Self.block)
        #expect(none == nil)
        // "silent" stays wanted, and is answered when the block comes.
        #expect(ledger.pending == 1)
        ledger.blockAdded(Self.cid("silent"))
        let late = ledger.nextMessage(size: { _ in 5 }, block: { _ in Array("quiet".utf8) })
        #expect(late?.blocks.map(\.cid) == [Self.cid("silent")])
    }

    @Test("cancels and full wantlists remove wants; messages stay within the byte cap; the list is bounded")
    func bounds() throws {
        var limits = BitswapLedger.Limits()
        limits.maxMessageBytes = 5_000
        limits.maxWants = 3
        var ledger = BitswapLedger(limits: limits)
        ledger.received(BitswapMessage(entries: [.init(cid: Self.cid("a")), .init(cid: Self.cid("big"))]))
        ledger.received(BitswapMessage(entries: [.init(cid: Self.cid("a"), cancel: true)]))
        #expect(
            ledger.nextMessage(size: Self.size, block: Self.block)?.blocks.map(\.cid) == [Self.cid("big")])
        ledger.received(BitswapMessage(entries: [.init(cid: Self.cid("x")), .init(cid: Self.cid("y"))]))
        ledger.received(BitswapMessage(entries: [.init(cid: Self.cid("big"))], full: true))
        #expect(ledger.pending == 1)
        // Two 4 KiB blocks: one message each under a 5,000-byte cap.
        let two = [Self.cid("p"), Self.cid("q")]
        ledger.received(BitswapMessage(entries: two.map { .init(cid: $0) }, full: true))
        let sized = { (_: CID) in 4096 }
        let data = { (_: CID) in [UInt8](repeating: 1, count: 4096) }
        let one = ledger.nextMessage(size: sized, block: data)
        let other = ledger.nextMessage(size: sized, block: data)
        #expect(one?.blocks.count == 1 && other?.blocks.count == 1)
        ledger.received(BitswapMessage(entries: (0..<10).map { .init(cid: Self.cid("w\($0)")) }))
        #expect(ledger.pending == 3 && ledger.dropped == 7)
        // Wanting and cancelling one CID without end does not grow the ledger.
        var churn = BitswapLedger()
        for _ in 0..<10_000 {
            churn.received(BitswapMessage(entries: [.init(cid: Self.cid("a"))]))
            churn.received(BitswapMessage(entries: [.init(cid: Self.cid("a"), cancel: true)]))
        }
        #expect(churn.pending == 0)
        let nothing = churn.nextMessage(size: Self.size, block: Self.block)
        #expect(nothing == nil)
    }
}

import IPFS
import Multiformats
import Testing

/// The Bitswap engines against each other, in memory: a session fetching a whole DAG through
/// ledgers of peers that have it, or do not.
@Suite("Bitswap exchange in memory")
struct BitswapExchangeTests {
    @Test(
        "a session fetches a 1 MiB file's DAG from two peers, one of which has nothing; the bytes export equal"
    )
    func fetchDAG() throws {
        let content = (0..<(1 << 20)).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
        let server = MemoryBlockstore()
        let root = try UnixFSImporter(options: importOptions(), sink: server).addFile(bytes: content).cid
        let empty = MemoryBlockstore()
        let stores = ["full": server, "empty": empty]
        var ledgers = ["full": BitswapLedger(), "empty": BitswapLedger()]

        let local = MemoryBlockstore()
        var fetch = DAGFetch(root: root)
        var session = BitswapSession<String>()
        var outbox: [BitswapSession<String>.Action] = []
        outbox += session.addPeer("empty", now: .zero)
        outbox += session.addPeer("full", now: .zero)
        outbox += session.want(try fetch.start(store: local), now: .zero)
        var missing: [CID] = []
        var rounds = 0
        while !outbox.isEmpty, rounds < 1_000 {
            rounds += 1
            let action = outbox.removeFirst()
            guard case .send(let peer, let message) = action, let store = stores[peer] else { continue }
            // The peer's side: take the wants, answer them.
            var ledger = ledgers[peer] ?? BitswapLedger()
            ledger.received(try BitswapMessage(decoding: message.encoded()))
            while let answer = ledger.nextMessage(
                size: { try? store.block($0).count }, block: { try? store.block($0) })
            {
                let (blocks, gone, actions) = session.received(
                    try BitswapMessage(decoding: answer.encoded()), from: peer, now: .seconds(rounds))
                missing += gone
                outbox += actions
                for block in blocks {
                    local.put(block.cid, block.data)
                    outbox += session.want(
                        try fetch.received(block.cid, block.data, store: local), now: .seconds(rounds))
                }
            }
            ledgers[peer] = ledger
        }
        #expect(missing.isEmpty)
        #expect(session.outstanding == 0)
        var out: [UInt8] = []
        try UnixFSExporter(source: local).cat(root) { out += $0 }
        #expect(out == content)
        #expect(fetch.blocks == 5)  // four 256 KiB leaves and the root
    }

    @Test("a DAG fetch walks what the store has, and stops at its block cap")
    func fetchBounds() throws {
        let store = MemoryBlockstore()
        let root = try UnixFSImporter(options: importOptions(), sink: store)
            .addFile(bytes: [UInt8](repeating: 1, count: 1 << 20)).cid
        var all = DAGFetch(root: root)
        #expect(try all.start(store: store).isEmpty)  // all here: nothing to fetch
        var capped = DAGFetch(root: root, maxBlocks: 1)
        #expect(throws: IPFSError.self) { try capped.start(store: store) }
    }
}

import Foundation
import IPFS
import Multiformats
import Testing

@Suite("blocks read while a fetch stores them")
struct ArrivingBlocksTests {
    @Test("a read waits for a block stored later, and fails once the fetch ends without it")
    func waits() async throws {
        let store = MemoryBlockstore()
        let arriving = ArrivingBlocks(store)
        let data = Array("arrives later".utf8)
        let cid = CID(v1: .raw, Multihash.hash(data, with: .sha256))
        let missing = CID(v1: .raw, Multihash.hash(Array("never".utf8), with: .sha256))
        let read = Task.detached { try arriving.block(cid) }
        try await Task.sleep(for: .milliseconds(100))
        try store.put(cid, data)
        arriving.arrived()
        #expect(try await read.value == data)

        let never = Task.detached { try arriving.block(missing) }
        arriving.finish(nil)
        await #expect(throws: IPFSError.missingBlock(missing)) { try await never.value }
    }
}

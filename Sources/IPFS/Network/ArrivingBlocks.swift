import Foundation
import Multiformats

/// A block source over a store that a fetch is filling: a block not there yet is waited for
/// until it arrives or the fetch ends, so that an export writes the DAG while it is fetched
/// (``BitswapNode/fetch(_:from:follow:progress:)`` calls ``arrived()`` as it stores blocks).
/// Reads go to the store, which already verified each block against its CID.
public final class ArrivingBlocks: BlockSource, @unchecked Sendable {
    private let store: any BlockSource
    /// Guards `ended` and `failure`; signalled when blocks arrive or the fetch ends.
    private let condition = NSCondition()
    private var ended = false
    private var failure: (any Error)?

    public init(_ store: any BlockSource) { self.store = store }

    /// Blocks were stored: wake the readers waiting for them.
    public func arrived() {
        condition.lock()
        condition.broadcast()
        condition.unlock()
    }

    /// The fetch ended; waiting readers get `error` (or ``IPFSError/missingBlock(_:)``).
    public func finish(_ error: (any Error)?) {
        condition.lock()
        ended = true
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    public func has(_ cid: CID) -> Bool { store.has(cid) }
    public func size(_ cid: CID) -> Int? { store.size(cid) }

    public func block(_ cid: CID) throws -> [UInt8] {
        while true {
            if store.has(cid) {
                do {
                    return try store.block(cid)
                } catch IPFSError.missingBlock {
                    // Moved from its temporary name between the two calls: look again.
                }
            }
            condition.lock()
            defer { condition.unlock() }
            if store.has(cid) { continue }
            if ended { throw failure ?? IPFSError.missingBlock(cid) }
            // Timed, so a wake-up between the check and the wait costs at most this.
            _ = condition.wait(until: Date(timeIntervalSinceNow: 0.5))
        }
    }
}

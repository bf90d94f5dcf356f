import NIOCore
import NIOPosix

/// Puts a ``ChainStore``'s writes off the event loop: each write is recorded in memory at once
/// (so reads on the loop see it) and written to the underlying store in batches, one transaction
/// each, on NIO's thread pool, in the order they were made. A crash loses at most the last
/// batch, never the order: the store on disk is always the state after some whole step, as
/// with one transaction per step. The first failed batch is kept: every later write throws it,
/// and `onFailure` is called once on the loop (the node then stops, as for any store error).
///
/// All calls but ``flush()`` are made on `loop`.
public final class BatchingChainStore: ChainStore, @unchecked Sendable {
    typealias Operation = ChainWrite

    let inner: any ChainStore & Sendable
    let loop: any EventLoop
    let pool: NIOThreadPool
    /// Writes not yet on disk, oldest first, and the reads they answer.
    var pending: [Operation] = []
    /// Each read answer with the sequence number of the write that set it: once that write is
    /// on disk (and no later one changed the answer), the store answers it itself.
    var pendingBlocks: [Hash256: (block: Block, sequence: Int)] = [:]
    /// Undo data written (a value) or dropped (nil) but not yet on disk.
    var pendingUndo: [Hash256: (undo: BlockUndo?, sequence: Int)] = [:]
    var pendingTip: (hash: Hash256, sequence: Int)?
    /// Sequence numbers: of the last write recorded, and of the last one on disk.
    var recorded = 0
    var written = 0
    var writing = false
    /// Until ``start()`` (called on the loop once the chain is loaded), writes go straight
    /// through: the chain's first steps at start happen before the loop serves anything.
    var started = false
    var failure: (any Error)?
    /// Called once, on the loop, with the first write that failed.
    public var onFailure: ((any Error) -> Void)?
    /// Operations written per batch at most, and how long a lone write waits for company.
    public static let maxBatch = 512
    public static let delay = TimeAmount.milliseconds(20)

    public init(_ inner: any ChainStore & Sendable, loop: any EventLoop, pool: NIOThreadPool = .singleton) {
        self.inner = inner
        self.loop = loop
        self.pool = pool
    }

    // Reads: what is pending first, then the store.

    public func entries() throws -> [StoredBlockEntry] {
        precondition(pending.isEmpty, "entries() is read at start, before any write")
        return try inner.entries()
    }

    public func tip() throws -> Hash256? {
        if let pendingTip { return pendingTip.hash }
        return try inner.tip()
    }

    public func allCoins() throws -> [OutPoint: Coin] {
        precondition(pending.isEmpty, "allCoins() is read at start, before any write")
        return try inner.allCoins()
    }

    public func block(_ hash: Hash256) throws -> Block? {
        if let pending = pendingBlocks[hash] { return pending.block }
        return try inner.block(hash)
    }

    public func undo(_ hash: Hash256) throws -> BlockUndo? {
        if let pending = pendingUndo[hash] { return pending.undo }
        return try inner.undo(hash)
    }

    // Writes: recorded now, written soon.

    public func store(_ entry: StoredBlockEntry, block: Block?) throws {
        try enqueue(.store(entry, block))
        if started, let block { pendingBlocks[entry.header.hash] = (block, recorded) }
    }

    public func storeHeaders(_ entries: [StoredBlockEntry]) throws {
        try enqueue(.headers(entries))
    }

    public func markInvalid(_ hash: Hash256) throws {
        try enqueue(.markInvalid(hash))
    }

    public func apply(_ update: ChainUpdate) throws {
        try enqueue(.apply(update))
        guard started else { return }
        if let (hash, data) = update.undo { pendingUndo[hash] = (data, recorded) }
        if let hash = update.droppedUndo { pendingUndo[hash] = (nil, recorded) }
        pendingTip = (update.tip, recorded)
    }

    /// From now on, writes are batched off the loop. On the loop.
    public func start() {
        loop.preconditionInEventLoop()
        started = true
    }

    func enqueue(_ operation: Operation) throws {
        if let failure { throw failure }
        guard started else {
            // Before start: straight to the store (nothing is kept pending).
            try inner.write([operation])
            return
        }
        loop.preconditionInEventLoop()
        pending.append(operation)
        recorded += 1
        if !writing {
            writing = true
            loop.scheduleTask(in: Self.delay) { [self] in writeBatch() }
        }
    }

    /// On the loop: hands the oldest pending operations to the pool; when they are on disk,
    /// forgets them and goes on while more are pending.
    func writeBatch() {
        guard failure == nil, !pending.isEmpty else {
            writing = false
            return
        }
        let batch = Array(pending.prefix(Self.maxBatch))
        let inner = self.inner
        let done = pool.runIfActive(eventLoop: loop) { try inner.write(batch) }
        done.whenComplete { [self] result in
            switch result {
            case .success:
                pending.removeFirst(batch.count)
                written += batch.count
                forget(batch)
                writeBatch()
            case .failure(let error):
                failure = error
                writing = false
                onFailure?(error)
            }
        }
    }

    /// Drops the read answers of `batch` that the store now gives itself: those whose latest
    /// write is on disk (a later pending write keeps its own answer). O(batch).
    func forget(_ batch: [Operation]) {
        for operation in batch {
            switch operation {
            case .store(let entry, _):
                let hash = entry.header.hash
                if let pending = pendingBlocks[hash], pending.sequence <= written {
                    pendingBlocks[hash] = nil
                }
            case .apply(let update):
                for hash in [update.undo?.hash, update.droppedUndo].compactMap({ $0 }) {
                    if let pending = pendingUndo[hash], pending.sequence <= written {
                        pendingUndo[hash] = nil
                    }
                }
                if let tip = pendingTip, tip.sequence <= written { pendingTip = nil }
            case .headers, .markInvalid:
                break
            }
        }
    }

    /// Waits until every write made so far is on disk (at a clean stop), or throws the failure.
    public func flush() async throws {
        while true {
            let state: (Bool, (any Error)?) = try await loop.submit { [self] in (pending.isEmpty, failure) }
                .get()
            if let error = state.1 { throw error }
            if state.0 { return }
            try await Task.sleep(for: .milliseconds(10))
        }
    }
}

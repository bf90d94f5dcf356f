/// A block known to the chain: its header, place in the tree and what is known of it.
public struct StoredBlockEntry: Hashable, Sendable {
    public var header: BlockHeader
    public var height: Int
    public var hasData: Bool
    public var invalid: Bool

    public init(header: BlockHeader, height: Int, hasData: Bool, invalid: Bool) {
        self.header = header
        self.height = height
        self.hasData = hasData
        self.invalid = invalid
    }
}

/// One step of the best chain moving, written atomically: coins spent and created, the undo data
/// of a connected block (or the removal of a disconnected one's), and the new tip.
public struct ChainUpdate: Sendable {
    public var removedCoins: [OutPoint] = []
    public var addedCoins: [OutPoint: Coin] = [:]
    public var undo: (hash: Hash256, data: BlockUndo)?
    public var droppedUndo: Hash256?
    public var tip: Hash256

    public init(tip: Hash256) { self.tip = tip }
}

/// Where the chain lives between runs. Each call is atomic: a crash between two leaves the state
/// of the last completed one (the SQLite store makes each a transaction in WAL mode).
public protocol ChainStore: AnyObject {
    func entries() throws -> [StoredBlockEntry]
    func tip() throws -> Hash256?
    func allCoins() throws -> [OutPoint: Coin]
    func block(_ hash: Hash256) throws -> Block?
    func undo(_ hash: Hash256) throws -> BlockUndo?
    /// Stores a block's header (and its data when given).
    func store(_ entry: StoredBlockEntry, block: Block?) throws
    func markInvalid(_ hash: Hash256) throws
    func apply(_ update: ChainUpdate) throws
    /// Stores headers without data, all or none (one transaction).
    func storeHeaders(_ entries: [StoredBlockEntry]) throws
    func write(_ batch: [ChainWrite]) throws
}

/// One write to a ``ChainStore``, for writing several at once (``ChainStore/write(_:)``).
public enum ChainWrite: Sendable {
    case store(StoredBlockEntry, Block?)
    case headers([StoredBlockEntry])
    case markInvalid(Hash256)
    case apply(ChainUpdate)
}

extension ChainStore {
    public func storeHeaders(_ entries: [StoredBlockEntry]) throws {
        for entry in entries { try store(entry, block: nil) }
    }

    /// Performs `batch` in order; a store that can makes it one transaction (all or none).
    public func write(_ batch: [ChainWrite]) throws {
        for operation in batch { try perform(operation) }
    }

    func perform(_ operation: ChainWrite) throws {
        switch operation {
        case .store(let entry, let block): try store(entry, block: block)
        case .headers(let entries): try storeHeaders(entries)
        case .markInvalid(let hash): try markInvalid(hash)
        case .apply(let update): try apply(update)
        }
    }
}

/// A store in memory, for tests and throwaway nodes.
public final class MemoryChainStore: ChainStore {
    var storedEntries: [Hash256: StoredBlockEntry] = [:]
    var order: [Hash256] = []
    var blocks: [Hash256: Block] = [:]
    var undos: [Hash256: BlockUndo] = [:]
    var coins: [OutPoint: Coin] = [:]
    var currentTip: Hash256?

    public init() {}

    public func entries() -> [StoredBlockEntry] { order.compactMap { storedEntries[$0] } }
    public func tip() -> Hash256? { currentTip }
    public func allCoins() -> [OutPoint: Coin] { coins }
    public func block(_ hash: Hash256) -> Block? { blocks[hash] }
    public func undo(_ hash: Hash256) -> BlockUndo? { undos[hash] }

    public func store(_ entry: StoredBlockEntry, block: Block?) {
        let hash = entry.header.hash
        if storedEntries[hash] == nil { order.append(hash) }
        storedEntries[hash] = entry
        if let block { blocks[hash] = block }
    }

    public func markInvalid(_ hash: Hash256) { storedEntries[hash]?.invalid = true }

    public func apply(_ update: ChainUpdate) {
        for outpoint in update.removedCoins { coins[outpoint] = nil }
        for (outpoint, coin) in update.addedCoins { coins[outpoint] = coin }
        if let (hash, data) = update.undo { undos[hash] = data }
        if let hash = update.droppedUndo { undos[hash] = nil }
        currentTip = update.tip
    }
}

import HeapModule

/// A transaction waiting in the mempool, with the package figures Core keeps for each
/// (`CTxMemPoolEntry`): its in-pool ancestors and descendants, counted with itself.
public struct MempoolEntry: Sendable {
    public let transaction: Transaction
    public let txid: Hash256
    public let fee: Int64
    public let virtualSize: Int
    /// In-pool transactions this one spends directly, and those that spend it.
    public internal(set) var parents: Set<Hash256> = []
    public internal(set) var children: Set<Hash256> = []
    /// This transaction and all its in-pool descendants: count, virtual bytes, fees.
    public internal(set) var descendantCount = 1
    public internal(set) var descendantSize = 0
    public internal(set) var descendantFees: Int64 = 0
    /// When it entered the pool (seconds since 1970), for `getrawmempool` and expiry.
    public let time: UInt32

    /// Satoshis per 1,000 virtual bytes.
    public var feeRate: Int64 { fee * 1000 / Int64(max(virtualSize, 1)) }
    /// Core's descendant score: the better of its own fee rate and its package's with
    /// descendants, so a parent paid for by its child (CPFP) is not evicted before it.
    var evictionScore: Int64 {
        max(feeRate, descendantFees * 1000 / Int64(max(descendantSize, 1)))
    }
}

/// Bitcoin Core's mempool limits (`-limitancestorcount` and friends, `-maxmempool`,
/// `-minrelaytxfee`, the orphan pool of `-maxorphantx`).
public struct MempoolPolicy: Sendable {
    /// Most in-pool ancestors of a transaction, itself included (Core: 25).
    public var ancestorCount = 25
    /// Most virtual bytes of a transaction with its in-pool ancestors (Core: 101 kvB).
    public var ancestorSize = 101_000
    /// Most in-pool descendants of any transaction, itself included (Core: 25).
    public var descendantCount = 25
    /// Most virtual bytes of any transaction with its in-pool descendants (Core: 101 kvB).
    public var descendantSize = 101_000
    /// Virtual bytes kept before the lowest-scoring packages are evicted (Core: 300 MB).
    public var maxBytes = 300_000_000
    /// Minimum fee rate accepted, satoshis per 1,000 virtual bytes (Core: 1,000).
    public var minimumFeeRate: Int64 = 1_000
    /// Transactions kept while a parent is unknown (Core: 100), and for how long (Core: 20 min).
    public var maxOrphans = 100
    public var orphanExpiry: UInt32 = 20 * 60
    /// Largest orphan kept, in weight units (Core: a standard transaction's 400,000).
    public var maxOrphanWeight = 400_000

    public init() {}
}

/// What ``Mempool/receive(_:chain:now:)`` did with a transaction from a peer.
public enum MempoolReceipt: Sendable, Equatable {
    /// Accepted, with the orphans it let in (parents before children): relay all of them.
    case accepted([Hash256])
    /// A parent is unknown: kept in the orphan pool; ask the sender for these parents.
    case orphan(missingParents: [Hash256])
}

/// Valid unconfirmed transactions (Core's `CTxMemPool`, without package relay or RBF): each
/// accepted one spends confirmed coins or other mempool transactions, conflicts with none, passes
/// the standard script rules, pays at least the relay fee and stays within the ancestor and
/// descendant limits. When full, the package with the lowest descendant score goes first, found
/// in O(log n). Transactions whose parents are unknown wait in a bounded, expiring orphan pool.
/// Sans I/O: time comes in with each call.
public final class Mempool {
    public private(set) var entries: [Hash256: MempoolEntry] = [:]
    /// Which mempool transaction spends each outpoint.
    var spenders: [OutPoint: Hash256] = [:]
    public let policy: MempoolPolicy
    public private(set) var bytes = 0

    /// Eviction order: a min-heap of (score, txid), stale nodes skipped when they surface (an
    /// entry's score changes as descendants come and go; each change pushes a fresh node).
    struct Ranked: Comparable {
        let score: Int64
        let txid: Hash256
        static func < (a: Ranked, b: Ranked) -> Bool { (a.score, a.txid) < (b.score, b.txid) }
    }
    var ranking = Heap<Ranked>()

    /// The orphan pool: transactions by txid, the missing parents they wait for, arrival order.
    struct Orphan {
        let transaction: Transaction
        let expires: UInt32
        let from: Int?
    }
    var orphans: [Hash256: Orphan] = [:]
    var orphansByParent: [Hash256: Set<Hash256>] = [:]

    public init(policy: MempoolPolicy = MempoolPolicy()) {
        self.policy = policy
    }

    /// A pool of the default policy but for its size and minimum fee rate.
    public convenience init(maxBytes: Int, minimumFeeRate: Int64 = 1_000) {
        var policy = MempoolPolicy()
        policy.maxBytes = maxBytes
        policy.minimumFeeRate = minimumFeeRate
        self.init(policy: policy)
    }

    public var count: Int { entries.count }
    public var minimumFeeRate: Int64 { policy.minimumFeeRate }
    public var orphanCount: Int { orphans.count }
    public func contains(_ txid: Hash256) -> Bool { entries[txid] != nil }
    public func containsOrphan(_ txid: Hash256) -> Bool { orphans[txid] != nil }
    public func transaction(_ txid: Hash256) -> Transaction? { entries[txid]?.transaction }
    /// Total fees of the pool's transactions, in satoshis.
    public var totalFees: Int64 { entries.values.reduce(0) { $0 + $1.fee } }

    /// The coin an input would spend: confirmed, or an output of a mempool transaction.
    func coin(_ outpoint: OutPoint, chain: ChainState) -> Coin? {
        if let coin = chain.coin(outpoint) { return coin }
        guard let parent = entries[outpoint.txid], Int(outpoint.index) < parent.transaction.outputs.count
        else {
            return nil
        }
        return Coin(
            output: parent.transaction.outputs[Int(outpoint.index)], height: chain.height + 1,
            isCoinbase: false)
    }

    /// In-pool ancestors of a transaction with these parents (not itself); nil once past
    /// `limit` (the walk stops there, so a long chain costs no more than the limit).
    func ancestors(ofParents parents: Set<Hash256>, limit: Int) -> Set<Hash256>? {
        var found: Set<Hash256> = []
        var pending = Array(parents)
        while let next = pending.popLast() {
            guard found.insert(next).inserted else { continue }
            if found.count > limit { return nil }
            if let entry = entries[next] { pending.append(contentsOf: entry.parents) }
        }
        return found
    }

    /// In-pool descendants of `txid` (not itself).
    func descendants(of txid: Hash256) -> Set<Hash256> {
        var found: Set<Hash256> = []
        var pending = Array(entries[txid]?.children ?? [])
        while let next = pending.popLast() {
            guard found.insert(next).inserted else { continue }
            if let entry = entries[next] { pending.append(contentsOf: entry.children) }
        }
        return found
    }

    /// Validates `transaction` against the chain and the pool, and adds it. A missing input is
    /// an error here (``receive(_:chain:now:)`` keeps such a transaction as an orphan).
    @discardableResult
    public func accept(_ transaction: Transaction, chain: ChainState, now: UInt32 = 0) throws(ValidationError)
        -> MempoolEntry
    {
        let txid = transaction.txid
        guard entries[txid] == nil else { throw .transaction("txn-already-in-mempool") }
        try Consensus.checkTransaction(transaction)
        guard !transaction.isCoinbase else { throw .transaction("coinbase") }
        let height = chain.height + 1
        guard ChainState.isFinal(transaction, height: height, time: chain.medianTimePast(chain.tip)) else {
            throw .transaction("non-final")
        }
        guard transaction.weight <= 400_000 else { throw .transaction("tx-size") }
        // Outputs too small to be worth spending (Core's dust threshold at the default fee rate).
        if transaction.outputs.contains(where: { $0.value < 546 && $0.scriptPubKey.first != Opcode.opReturn })
        {
            throw .transaction("dust")
        }
        if chain.coin(OutPoint(txid: txid, index: 0)) != nil { throw .transaction("txn-already-known") }
        var valueIn: Int64 = 0
        var parents: Set<Hash256> = []
        for (index, input) in transaction.inputs.enumerated() {
            if let other = spenders[input.previous] {
                throw .transaction("txn-mempool-conflict (input \(index) is spent by \(other))")
            }
            guard let coin = coin(input.previous, chain: chain) else {
                throw .transaction("bad-txns-inputs-missingorspent (input \(index))")
            }
            if entries[input.previous.txid] != nil { parents.insert(input.previous.txid) }
            if coin.isCoinbase, height - coin.height < Consensus.coinbaseMaturity {
                throw .transaction("bad-txns-premature-spend-of-coinbase")
            }
            valueIn += coin.output.value
        }
        let valueOut = transaction.outputs.reduce(Int64(0)) { $0 + $1.value }
        guard valueIn >= valueOut else { throw .transaction("bad-txns-in-belowout") }
        let size = transaction.virtualSize
        let fee = valueIn - valueOut
        guard fee * 1000 / Int64(max(size, 1)) >= policy.minimumFeeRate else {
            throw .transaction(
                "min relay fee not met (\(fee * 1000 / Int64(max(size, 1))) < \(policy.minimumFeeRate) sat/kvB)"
            )
        }
        // Package limits before the scripts (the cheap checks first, as Core).
        guard let ancestors = ancestors(ofParents: parents, limit: policy.ancestorCount - 1) else {
            throw .transaction("too-long-mempool-chain (more than \(policy.ancestorCount - 1) ancestors)")
        }
        let ancestorSize = ancestors.reduce(size) { $0 + (entries[$1]?.virtualSize ?? 0) }
        guard ancestorSize <= policy.ancestorSize else {
            throw .transaction("too-long-mempool-chain (ancestors of \(ancestorSize) vB)")
        }
        for ancestor in ancestors {
            guard let entry = entries[ancestor] else { continue }
            guard entry.descendantCount + 1 <= policy.descendantCount,
                entry.descendantSize + size <= policy.descendantSize
            else {
                throw .transaction("too-long-mempool-chain (too many descendants of \(ancestor))")
            }
        }
        for (index, input) in transaction.inputs.enumerated() {
            guard let coin = coin(input.previous, chain: chain) else { continue }
            do {
                try Interpreter.verify(transaction, input: index, spending: coin, flags: .standard)
            } catch {
                throw .script(input: index, error)
            }
        }
        var entry = MempoolEntry(
            transaction: transaction, txid: txid, fee: fee, virtualSize: size, time: now)
        entry.parents = parents
        entry.descendantSize = size
        entry.descendantFees = fee
        insert(entry, ancestors: ancestors)
        trim()
        guard let kept = entries[txid] else { throw .transaction("mempool full") }
        return kept
    }

    func insert(_ entry: MempoolEntry, ancestors: Set<Hash256>) {
        let txid = entry.txid
        entries[txid] = entry
        bytes += entry.virtualSize
        for input in entry.transaction.inputs { spenders[input.previous] = txid }
        for parent in entry.parents { entries[parent]?.children.insert(txid) }
        for ancestor in ancestors {
            entries[ancestor]?.descendantCount += 1
            entries[ancestor]?.descendantSize += entry.virtualSize
            entries[ancestor]?.descendantFees += entry.fee
            rank(ancestor)
        }
        rank(txid)
    }

    func rank(_ txid: Hash256) {
        guard let entry = entries[txid] else { return }
        ranking.insert(Ranked(score: entry.evictionScore, txid: txid))
        // Stale nodes are dropped by a rebuild once they outnumber the live ones.
        if ranking.count > 2 * entries.count + 1024 {
            ranking = Heap(entries.values.map { Ranked(score: $0.evictionScore, txid: $0.txid) })
        }
    }

    /// Takes one transaction out (not its descendants), updating its ancestors' package figures.
    func removeOne(_ txid: Hash256) {
        guard entries[txid] != nil else { return }
        let ancestorSet = ancestors(ofParents: entries[txid]?.parents ?? [], limit: Int.max) ?? []
        guard let entry = entries.removeValue(forKey: txid) else { return }
        bytes -= entry.virtualSize
        for input in entry.transaction.inputs where spenders[input.previous] == txid {
            spenders[input.previous] = nil
        }
        for parent in entry.parents { entries[parent]?.children.remove(txid) }
        for child in entry.children { entries[child]?.parents.remove(txid) }
        for ancestor in ancestorSet {
            entries[ancestor]?.descendantCount -= 1
            entries[ancestor]?.descendantSize -= entry.virtualSize
            entries[ancestor]?.descendantFees -= entry.fee
            rank(ancestor)
        }
    }

    /// Removes a transaction and everything in the pool that spends it, without recursion (a
    /// chain of thousands of descendants must not run out of stack), children first.
    public func remove(_ txid: Hash256) {
        guard entries[txid] != nil else { return }
        var doomed = Array(descendants(of: txid))
        doomed.append(txid)
        // Deepest first, so each removal updates ancestors that are still there.
        let doomedSet = Set(doomed)
        var depth: [Hash256: Int] = [:]
        func depthOf(_ start: Hash256) -> Int {
            var stack = [start]
            while let top = stack.last {
                if depth[top] != nil {
                    stack.removeLast()
                    continue
                }
                let parents = (entries[top]?.parents ?? []).filter { doomedSet.contains($0) }
                let missing = parents.filter { depth[$0] == nil }
                if missing.isEmpty {
                    depth[top] = (parents.map { depth[$0] ?? 0 }.max() ?? -1) + 1
                    stack.removeLast()
                } else {
                    stack.append(contentsOf: missing)
                }
            }
            return depth[start] ?? 0
        }
        for id in doomed { _ = depthOf(id) }
        for id in doomed.sorted(by: { (depth[$0] ?? 0) > (depth[$1] ?? 0) }) { removeOne(id) }
    }

    /// A transaction from a peer: accepted (with any orphans that were waiting for it), or kept
    /// as an orphan when an input's transaction is unknown, or refused with the reason.
    public func receive(_ transaction: Transaction, chain: ChainState, now: UInt32, from peer: Int? = nil)
        throws(ValidationError) -> MempoolReceipt
    {
        expireOrphans(now: now)
        let txid = transaction.txid
        // Inputs nobody has: neither the chain's coins nor an output of a pool transaction (one
        // spent by another pool transaction is a conflict, for accept to refuse).
        let unknownParents = Set(
            transaction.inputs.map(\.previous)
                .filter { coin($0, chain: chain) == nil && spenders[$0] == nil && entries[$0.txid] == nil }
                .map(\.txid))
        if !unknownParents.isEmpty {
            // As Core: a transaction whose parent is unknown may be valid once the parent comes
            // (or spend a coin already spent; then it expires unused).
            guard orphans[txid] == nil else { return .orphan(missingParents: unknownParents.sorted()) }
            try Consensus.checkTransaction(transaction)
            guard transaction.weight <= policy.maxOrphanWeight else { throw .transaction("orphan too large") }
            addOrphan(
                transaction, waitingFor: unknownParents, expires: now &+ policy.orphanExpiry, from: peer)
            return .orphan(missingParents: unknownParents.sorted())
        }
        try accept(transaction, chain: chain, now: now)
        var released: [Hash256] = [txid]
        // Orphans that waited for what was just accepted, and theirs in turn.
        var queue = [txid]
        while let parent = queue.popLast() {
            for child in orphansByParent[parent] ?? [] {
                guard let orphan = orphans[child] else { continue }
                let stillMissing = orphan.transaction.inputs.contains {
                    coin($0.previous, chain: chain) == nil
                }
                if stillMissing { continue }
                removeOrphan(child)
                if (try? accept(orphan.transaction, chain: chain, now: now)) != nil {
                    released.append(child)
                    queue.append(child)
                }
            }
        }
        return .accepted(released)
    }

    func addOrphan(_ transaction: Transaction, waitingFor parents: Set<Hash256>, expires: UInt32, from: Int?)
    {
        if orphans.count >= policy.maxOrphans {
            // Core evicts a random orphan; the one that expires first is as good and needs no
            // random source.
            if let victim = orphans.min(by: { $0.value.expires < $1.value.expires })?.key {
                removeOrphan(victim)
            }
        }
        let txid = transaction.txid
        orphans[txid] = Orphan(transaction: transaction, expires: expires, from: from)
        for parent in parents { orphansByParent[parent, default: []].insert(txid) }
    }

    func removeOrphan(_ txid: Hash256) {
        guard let orphan = orphans.removeValue(forKey: txid) else { return }
        for input in orphan.transaction.inputs {
            let parent = input.previous.txid
            orphansByParent[parent]?.remove(txid)
            if orphansByParent[parent]?.isEmpty == true { orphansByParent[parent] = nil }
        }
    }

    /// Drops orphans past their expiry.
    public func expireOrphans(now: UInt32) {
        for (txid, orphan) in orphans where orphan.expires <= now { removeOrphan(txid) }
    }

    /// Drops the orphans a peer sent (it disconnected, or was found lying).
    public func dropOrphans(from peer: Int) {
        for (txid, orphan) in orphans where orphan.from == peer { removeOrphan(txid) }
    }

    /// After the tip moved: drops what was confirmed and what now conflicts with the chain, and
    /// puts back the transactions of disconnected blocks that are still valid.
    public func update(disconnected: [Block], connected: [Block], chain: ChainState, now: UInt32 = 0) {
        for block in connected {
            for transaction in block.transactions {
                let txid = transaction.txid
                // Confirmed: out of the pool, its children now spend a confirmed coin.
                if entries[txid] != nil {
                    removeOne(txid)
                }
                for input in transaction.inputs {
                    if let conflict = spenders[input.previous] { remove(conflict) }
                }
                removeOrphan(txid)
            }
        }
        for block in disconnected.reversed() {
            for transaction in block.transactions.dropFirst() {
                _ = try? accept(transaction, chain: chain, now: now)
            }
        }
        // Entries whose inputs vanished with the old chain.
        for (txid, entry) in entries
        where entry.transaction.inputs.contains(where: { coin($0.previous, chain: chain) == nil }) {
            remove(txid)
        }
    }

    /// Transactions for a block: highest fee rate first, parents before children, within
    /// `maxWeight`; with their total fee.
    public func select(maxWeight: Int = Consensus.maxBlockWeight - 4_000) -> (
        transactions: [Transaction], fees: Int64
    ) {
        var chosen: [Transaction] = []
        var included: Set<Hash256> = []
        var weight = 0
        var fees: Int64 = 0
        let sorted = entries.values.sorted {
            $0.feeRate != $1.feeRate ? $0.feeRate > $1.feeRate : $0.txid < $1.txid
        }
        var pending = sorted
        var progress = true
        while progress {
            progress = false
            var rest: [MempoolEntry] = []
            for entry in pending {
                let parentsIn = entry.parents.allSatisfy { included.contains($0) }
                let w = entry.transaction.weight
                if parentsIn, weight + w <= maxWeight {
                    chosen.append(entry.transaction)
                    included.insert(entry.txid)
                    weight += w
                    fees += entry.fee
                    progress = true
                } else if !parentsIn {
                    rest.append(entry)
                }
            }
            pending = rest
        }
        return (chosen, fees)
    }

    /// Evicts the packages with the lowest descendant score (a transaction with all its
    /// descendants) until the pool fits: O(log n) per eviction.
    func trim() {
        while bytes > policy.maxBytes, let lowest = ranking.popMin() {
            guard let entry = entries[lowest.txid], entry.evictionScore == lowest.score else { continue }
            remove(lowest.txid)
        }
    }

    /// Checks the pool's bookkeeping (for tests): spenders, parents and children agree, package
    /// figures add up, the byte count is the sum.
    public func isConsistent() -> Bool {
        var size = 0
        for (txid, entry) in entries {
            size += entry.virtualSize
            for input in entry.transaction.inputs where spenders[input.previous] != txid { return false }
            for parent in entry.parents where entries[parent]?.children.contains(txid) != true {
                return false
            }
            for child in entry.children where entries[child]?.parents.contains(txid) != true { return false }
            let family = descendants(of: txid)
            guard entry.descendantCount == family.count + 1,
                entry.descendantSize
                    == family.reduce(entry.virtualSize, { $0 + (entries[$1]?.virtualSize ?? 0) })
            else { return false }
        }
        for (outpoint, txid) in spenders where entries[txid] == nil || outpoint.txid == txid { return false }
        return size == bytes
    }
}

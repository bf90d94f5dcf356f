/// A transaction waiting in the mempool.
public struct MempoolEntry: Sendable {
    public let transaction: Transaction
    public let txid: Hash256
    public let fee: Int64
    public let virtualSize: Int
    /// Satoshis per 1,000 virtual bytes.
    public var feeRate: Int64 { fee * 1000 / Int64(max(virtualSize, 1)) }
}

/// Valid unconfirmed transactions (Core's `CTxMemPool`, without package relay or RBF): each
/// accepted one spends confirmed coins or other mempool transactions, conflicts with none, passes
/// the standard script rules and pays at least the relay fee. Ordered by fee rate for mining;
/// the lowest are evicted when the pool is full.
public final class Mempool {
    public private(set) var entries: [Hash256: MempoolEntry] = [:]
    /// Which mempool transaction spends each outpoint.
    var spenders: [OutPoint: Hash256] = [:]
    public let maxBytes: Int
    /// Minimum fee rate accepted, satoshis per 1,000 virtual bytes.
    public let minimumFeeRate: Int64
    public private(set) var bytes = 0

    public init(maxBytes: Int = 50_000_000, minimumFeeRate: Int64 = 1_000) {
        self.maxBytes = maxBytes
        self.minimumFeeRate = minimumFeeRate
    }

    public var count: Int { entries.count }
    public func contains(_ txid: Hash256) -> Bool { entries[txid] != nil }
    public func transaction(_ txid: Hash256) -> Transaction? { entries[txid]?.transaction }

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

    /// Validates `transaction` against the chain and the pool, and adds it.
    @discardableResult
    public func accept(_ transaction: Transaction, chain: ChainState) throws(ValidationError) -> MempoolEntry
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
        for (index, input) in transaction.inputs.enumerated() {
            if let other = spenders[input.previous] {
                throw .transaction("txn-mempool-conflict (input \(index) is spent by \(other))")
            }
            guard let coin = coin(input.previous, chain: chain) else {
                throw .transaction("bad-txns-inputs-missingorspent (input \(index))")
            }
            if coin.isCoinbase, height - coin.height < Consensus.coinbaseMaturity {
                throw .transaction("bad-txns-premature-spend-of-coinbase")
            }
            valueIn += coin.output.value
            do {
                try Interpreter.verify(
                    scriptSig: input.scriptSig, scriptPubKey: coin.output.scriptPubKey,
                    witness: input.witness,
                    flags: .standard,
                    checker: TransactionSignatureChecker(
                        transaction: transaction, input: index, amount: coin.output.value))
            } catch {
                throw .script(input: index, error)
            }
        }
        let valueOut = transaction.outputs.reduce(Int64(0)) { $0 + $1.value }
        guard valueIn >= valueOut else { throw .transaction("bad-txns-in-belowout") }
        let entry = MempoolEntry(
            transaction: transaction, txid: txid, fee: valueIn - valueOut,
            virtualSize: transaction.virtualSize)
        guard entry.feeRate >= minimumFeeRate else {
            throw .transaction("min relay fee not met (\(entry.feeRate) < \(minimumFeeRate) sat/kvB)")
        }
        entries[txid] = entry
        bytes += entry.virtualSize
        for input in transaction.inputs { spenders[input.previous] = txid }
        trim()
        guard entries[txid] != nil else { throw .transaction("mempool full") }
        return entry
    }

    /// Removes a transaction and everything in the pool that spends it.
    public func remove(_ txid: Hash256) {
        guard let entry = entries.removeValue(forKey: txid) else { return }
        bytes -= entry.virtualSize
        for input in entry.transaction.inputs where spenders[input.previous] == txid {
            spenders[input.previous] = nil
        }
        for index in entry.transaction.outputs.indices {
            if let child = spenders[OutPoint(txid: txid, index: UInt32(index))] { remove(child) }
        }
    }

    /// After the tip moved: drops what was confirmed and what now conflicts with the chain, and
    /// puts back the transactions of disconnected blocks that are still valid.
    public func update(disconnected: [Block], connected: [Block], chain: ChainState) {
        for block in connected {
            for transaction in block.transactions {
                let txid = transaction.txid
                if entries[txid] != nil {
                    entries[txid].map { bytes -= $0.virtualSize }
                    entries[txid] = nil
                    for input in transaction.inputs where spenders[input.previous] == txid {
                        spenders[input.previous] = nil
                    }
                }
                for input in transaction.inputs {
                    if let conflict = spenders[input.previous] { remove(conflict) }
                }
            }
        }
        for block in disconnected.reversed() {
            for transaction in block.transactions.dropFirst() { _ = try? accept(transaction, chain: chain) }
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
                let parentsIn = entry.transaction.inputs.allSatisfy {
                    entries[$0.previous.txid] == nil || included.contains($0.previous.txid)
                }
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

    /// Evicts the lowest fee rates (and their descendants) until the pool fits.
    func trim() {
        while bytes > maxBytes, let lowest = entries.values.min(by: { $0.feeRate < $1.feeRate }) {
            remove(lowest.txid)
        }
    }
}

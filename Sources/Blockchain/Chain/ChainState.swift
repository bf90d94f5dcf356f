/// A block in the tree of known blocks.
public final class BlockIndexEntry: @unchecked Sendable {
    public let hash: Hash256
    public let header: BlockHeader
    public let height: Int
    /// Work of this block and all before it.
    public let chainWork: UInt256
    public let parent: BlockIndexEntry?
    public internal(set) var hasData: Bool
    public internal(set) var invalid: Bool

    init(header: BlockHeader, height: Int, parent: BlockIndexEntry?, hasData: Bool, invalid: Bool) {
        self.hash = header.hash
        self.header = header
        self.height = height
        self.parent = parent
        let work = Target.expand(header.bits).map(Target.work) ?? .zero
        self.chainWork = (parent?.chainWork ?? .zero) + work
        self.hasData = hasData
        self.invalid = invalid
    }

    /// The ancestor at `height` (walking back).
    public func ancestor(at height: Int) -> BlockIndexEntry? {
        guard height >= 0, height <= self.height else { return nil }
        var entry: BlockIndexEntry? = self
        while let current = entry, current.height > height { entry = current.parent }
        return entry
    }
}

/// What happened to a block handed to ``ChainState/process(_:now:)``.
public enum BlockOutcome: Sendable {
    case duplicate
    /// The parent is unknown: fetch it first.
    case orphan
    /// Valid so far and stored, but another chain has more work.
    case sideBranch
    /// The best chain moved: blocks disconnected (newest first) and connected (oldest first).
    case tipChanged(disconnected: [Block], connected: [Block])
    case invalid(ValidationError)
    /// The store could not read or write: nothing is known about the block, and the node must
    /// stop (``ChainState/failure``). Never a verdict on the block or its sender.
    case storeFailed(String)
}

/// The block tree, the best chain and its UTXO set (Core's `ChainstateManager`, sans I/O but for
/// the ``ChainStore`` it writes each step to). Proof of work decides: the chain with the most
/// cumulative work that validates is the best; a heavier branch triggers a reorganisation that
/// disconnects blocks with their undo data and connects the new ones; a block that fails is
/// marked invalid with everything built on it.
public final class ChainState {
    public let parameters: ChainParameters
    let store: any ChainStore
    var index: [Hash256: BlockIndexEntry] = [:]
    /// The best chain, by height.
    public private(set) var active: [BlockIndexEntry] = []
    var utxo: [OutPoint: Coin] = [:]
    /// Blocks with data that had more work than the tip when stored.
    var candidates: Set<Hash256> = []
    /// Most blocks kept while their parent is unknown.
    public static let maxOrphans = 64
    /// Blocks whose data came before their parent's, by parent hash.
    var orphans: [Hash256: [Block]] = [:]

    public var tip: BlockIndexEntry { active[active.count - 1] }
    /// The first store error (an I/O failure, a full disk): from then on the chain takes no
    /// more blocks and the node stops. Storage errors are not consensus: they never mark a
    /// block invalid nor count against a peer.
    public private(set) var failure: String?
    /// The valid header with the most work (ahead of the tip while blocks are being fetched).
    public private(set) var bestHeader: BlockIndexEntry?
    /// Its height: `getblockchaininfo`'s `headers`.
    public var bestHeaderHeight: Int { max(bestHeader?.height ?? 0, height) }
    public var height: Int { active.count - 1 }
    public var utxoCount: Int { utxo.count }

    public init(parameters: ChainParameters, store: any ChainStore) throws {
        self.parameters = parameters
        self.store = store
        let stored = try store.entries()
        if stored.isEmpty {
            let genesis = parameters.genesis
            let entry = StoredBlockEntry(header: genesis.header, height: 0, hasData: true, invalid: false)
            try store.store(entry, block: genesis)
            // The genesis coinbase is not spendable (it was never added to the UTXO set).
            try store.apply(ChainUpdate(tip: genesis.hash))
        }
        for stored in try store.entries() {
            let parent = index[stored.header.previous]
            guard parent != nil || stored.height == 0 else { continue }
            index[stored.header.hash] = BlockIndexEntry(
                header: stored.header, height: stored.height, parent: parent, hasData: stored.hasData,
                invalid: stored.invalid)
        }
        guard let tipHash = try store.tip(), let tip = index[tipHash] else {
            throw ValidationError.block("the store has no tip it knows")
        }
        var chain: [BlockIndexEntry] = []
        var walk: BlockIndexEntry? = tip
        while let entry = walk {
            chain.append(entry)
            walk = entry.parent
        }
        active = chain.reversed()
        bestHeader = index.values.filter { !$0.invalid }.max { $0.chainWork < $1.chainWork }
        utxo = try store.allCoins()
        for entry in index.values where entry.hasData && !entry.invalid && tip.chainWork < entry.chainWork {
            candidates.insert(entry.hash)
        }
        // Blocks stored but not connected when the last run stopped (a crash between the two
        // writes) are connected now.
        _ = activateBestChain(given: nil)
    }

    public func entry(_ hash: Hash256) -> BlockIndexEntry? { index[hash] }
    public func coin(_ outpoint: OutPoint) -> Coin? { utxo[outpoint] }
    public func block(_ hash: Hash256) -> Block? {
        do {
            return try store.block(hash)
        } catch {
            fail("reading block \(hash): \(error)")
            return nil
        }
    }

    func fail(_ reason: String) {
        if failure == nil { failure = reason }
    }
    /// Whether the block is stored and not known invalid.
    public func contains(_ hash: Hash256) -> Bool { index[hash].map { $0.hasData && !$0.invalid } ?? false }
    /// Whether `entry` is on the best chain.
    public func isActive(_ entry: BlockIndexEntry) -> Bool {
        entry.height < active.count && active[entry.height] === entry
    }

    /// Every unspent output (for wallets and for comparing nodes).
    public var unspent: [OutPoint: Coin] { utxo }

    // MARK: Headers

    /// Median of the last 11 block times up to `entry` (BIP 113).
    public func medianTimePast(_ entry: BlockIndexEntry) -> UInt32 {
        var times: [UInt32] = []
        var walk: BlockIndexEntry? = entry
        while let current = walk, times.count < 11 {
            times.append(current.header.time)
            walk = current.parent
        }
        return times.sorted()[times.count / 2]
    }

    /// The bits a block after `parent` must carry (Core's `GetNextWorkRequired`, no testnet rule).
    public func nextBits(after parent: BlockIndexEntry) -> UInt32 {
        if parameters.noRetargeting { return parent.header.bits }
        let interval = parameters.retargetInterval
        guard (parent.height + 1) % interval == 0 else { return parent.header.bits }
        guard let first = parent.ancestor(at: parent.height - (interval - 1)) else {
            return parent.header.bits
        }
        let timespan = parameters.targetTimespan
        var actual = parent.header.time &- first.header.time
        actual = min(max(actual, timespan / 4), timespan * 4)
        guard let target = Target.expand(parent.header.bits) else { return parent.header.bits }
        // target × actual / timespan; divided first when the product would pass 256 bits (only
        // possible with a very easy proof-of-work limit).
        let divisor = UInt256(UInt64(timespan))
        guard
            var next = target.multiplied(by: UInt64(actual)).flatMap({ $0.dividedBy(divisor) })
                ?? target.dividedBy(divisor)?.multiplied(by: UInt64(actual))
        else { return Target.compact(parameters.powLimit) }
        if parameters.powLimit < next { next = parameters.powLimit }
        return Target.compact(next)
    }

    /// Checks a header against its parent (proof of work, difficulty, time) without adding it
    /// anywhere: the entry it returns links to `parent`, which may itself be such an unstored
    /// entry (a peer's header chain held in memory until it proves enough work).
    public func checkHeader(_ header: BlockHeader, parent: BlockIndexEntry, now: UInt32)
        throws(ValidationError)
        -> BlockIndexEntry
    {
        guard !parent.invalid else { throw .block("bad-prevblk") }
        guard Target.isMet(by: header.hash, bits: header.bits, limit: parameters.powLimit) else {
            throw .block("high-hash")
        }
        guard header.bits == nextBits(after: parent) else { throw .block("bad-diffbits") }
        guard header.time > medianTimePast(parent) else { throw .block("time-too-old") }
        guard header.time <= now &+ Consensus.maxFutureBlockTime else { throw .block("time-too-new") }
        return BlockIndexEntry(
            header: header, height: parent.height + 1, parent: parent, hasData: false, invalid: false)
    }

    /// Adds checked entries (parents first) to the tree, stored in one write. False when the
    /// store failed (``failure``).
    @discardableResult
    public func adopt(_ entries: [BlockIndexEntry]) -> Bool {
        let fresh = entries.filter { index[$0.hash] == nil }
        guard failure == nil else { return false }
        guard !fresh.isEmpty else { return true }
        do {
            try store.storeHeaders(
                fresh.map {
                    StoredBlockEntry(header: $0.header, height: $0.height, hasData: false, invalid: false)
                })
        } catch {
            fail("storing \(fresh.count) headers: \(error)")
            return false
        }
        for entry in fresh {
            index[entry.hash] = entry
            if bestHeader.map({ $0.chainWork < entry.chainWork }) ?? true { bestHeader = entry }
        }
        return true
    }

    /// The highest block of the best chain that `entry` descends from (where its branch forks).
    public func forkPoint(_ entry: BlockIndexEntry) -> BlockIndexEntry {
        var walk = entry
        while !isActive(walk), let parent = walk.parent { walk = parent }
        return walk
    }

    /// Checks a header against its parent and adds it to the tree (without data).
    @discardableResult
    public func acceptHeader(_ header: BlockHeader, now: UInt32) throws(ValidationError) -> BlockIndexEntry? {
        let hash = header.hash
        if let known = index[hash] {
            if known.invalid { throw .block("duplicate-invalid") }
            return known
        }
        guard let parent = index[header.previous] else { return nil }
        let entry = try checkHeader(header, parent: parent, now: now)
        guard adopt([entry]) else { return nil }
        return entry
    }

    /// A block locator for `getheaders`: the last 10 hashes, then exponentially sparser, then genesis.
    public func locator() -> [Hash256] {
        var hashes: [Hash256] = []
        var height = self.height
        var step = 1
        while height > 0 {
            hashes.append(active[height].hash)
            if hashes.count >= 10 { step *= 2 }
            height -= step
        }
        hashes.append(active[0].hash)
        return hashes
    }

    /// Headers of the best chain after the first locator hash on it, up to `stop` or `limit`.
    public func headers(after locator: [Hash256], stop: Hash256 = .zero, limit: Int = 2000) -> [BlockHeader] {
        var start = 0
        for hash in locator {
            if let entry = index[hash], isActive(entry) {
                start = entry.height + 1
                break
            }
        }
        var out: [BlockHeader] = []
        var height = start
        while height < active.count, out.count < limit {
            out.append(active[height].header)
            if active[height].hash == stop { break }
            height += 1
        }
        return out
    }

    // MARK: Blocks

    /// Validates and stores a block, then moves the best chain if it now has the most work.
    public func process(_ block: Block, now: UInt32) -> BlockOutcome {
        if let failure { return .storeFailed(failure) }
        let outcome = processChecked(block, now: now)
        if let failure { return .storeFailed(failure) }
        return outcome
    }

    func processChecked(_ block: Block, now: UInt32) -> BlockOutcome {
        let hash = block.hash
        if let known = index[hash] {
            if known.invalid { return .invalid(.block("duplicate-invalid")) }
            if known.hasData { return .duplicate }
        }
        do {
            try Consensus.checkBlock(block, powLimit: parameters.powLimit, now: now)
        } catch {
            return .invalid(error)
        }
        let entry: BlockIndexEntry
        do {
            guard let accepted = try acceptHeader(block.header, now: now) else {
                if failure != nil { return .sideBranch }
                // At most `maxOrphans` blocks wait, however a peer spreads them over parents.
                if orphans.values.reduce(0, { $0 + $1.count }) >= Self.maxOrphans { orphans.removeAll() }
                orphans[block.header.previous, default: []].append(block)
                return .orphan
            }
            entry = accepted
        } catch {
            return .invalid(error)
        }
        do {
            try contextualCheck(block, entry: entry)
        } catch {
            markInvalid(entry)
            return .invalid(error)
        }
        entry.hasData = true
        do {
            try store.store(
                StoredBlockEntry(header: block.header, height: entry.height, hasData: true, invalid: false),
                block: block)
        } catch {
            entry.hasData = false
            fail("storing block \(hash): \(error)")
            return .sideBranch
        }
        if tip.chainWork < entry.chainWork { candidates.insert(hash) }
        var outcome = activateBestChain(given: block)
        // Children that arrived before this block.
        if let waiting = orphans.removeValue(forKey: hash) {
            for child in waiting {
                if case .tipChanged(let d, let c) = processChecked(child, now: now) {
                    if case .tipChanged(let d0, let c0) = outcome {
                        outcome = .tipChanged(disconnected: d0 + d, connected: c0 + c)
                    } else {
                        outcome = .tipChanged(disconnected: d, connected: c)
                    }
                }
            }
        }
        if case .tipChanged = outcome { return outcome }
        if entry.invalid, case .invalid = outcome { return outcome }
        return entry.invalid ? .invalid(.block("failed to connect")) : outcome
    }

    /// Checks that need the block's place but not the UTXO set: BIP 34 height in the coinbase,
    /// final transactions, the witness commitment (BIP 141), weight.
    func contextualCheck(_ block: Block, entry: BlockIndexEntry) throws(ValidationError) {
        let parentTime = entry.parent.map(medianTimePast) ?? 0
        for transaction in block.transactions {
            guard Self.isFinal(transaction, height: entry.height, time: parentTime) else {
                throw .block("bad-txns-nonfinal")
            }
        }
        if entry.height >= 1 {
            var expected: [UInt8] = []
            expected.appendPush(ScriptNum.encode(Int64(entry.height)))
            if entry.height <= 16 { expected = [entry.height == 0 ? 0 : UInt8(0x50 + entry.height)] }
            guard block.transactions[0].inputs[0].scriptSig.starts(with: expected) else {
                throw .block("bad-cb-height")
            }
        }
        try Self.checkWitnessCommitment(block, enforce: entry.height >= parameters.segwitHeight)
        guard block.weight <= Consensus.maxBlockWeight else { throw .block("bad-blk-weight") }
    }

    static func isFinal(_ transaction: Transaction, height: Int, time: UInt32) -> Bool {
        let lockTime = transaction.lockTime
        if lockTime == 0 { return true }
        let threshold: UInt32 = 500_000_000
        if Int64(lockTime) < (lockTime < threshold ? Int64(height) : Int64(time)) { return true }
        return transaction.inputs.allSatisfy { $0.sequence == 0xffff_ffff }
    }

    static let commitmentHeader: [UInt8] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed]

    /// The output of the coinbase that commits to the witnesses, if any (the last that matches).
    public static func witnessCommitmentIndex(_ coinbase: Transaction) -> Int? {
        coinbase.outputs.lastIndex {
            $0.scriptPubKey.count >= 38 && $0.scriptPubKey.starts(with: commitmentHeader)
        }
    }

    /// The commitment for `transactions` with the 32-byte reserved value `nonce`.
    public static func witnessCommitment(_ transactions: [Transaction], nonce: [UInt8]) -> [UInt8] {
        let wtxids = [Hash256.zero] + transactions.dropFirst().map(\.wtxid)
        let root = Merkle.root(wtxids).root
        return Hash256.doubleSHA256(root.bytes + nonce).bytes
    }

    static func checkWitnessCommitment(_ block: Block, enforce: Bool) throws(ValidationError) {
        let coinbase = block.transactions[0]
        if enforce, let index = witnessCommitmentIndex(coinbase) {
            let witness = coinbase.inputs[0].witness
            guard witness.count == 1, witness[0].count == 32 else { throw .block("bad-witness-nonce-size") }
            let expected = witnessCommitment(block.transactions, nonce: witness[0])
            guard Array(coinbase.outputs[index].scriptPubKey[6..<38]) == expected else {
                throw .block("bad-witness-merkle-match")
            }
            return
        }
        guard !block.transactions.contains(where: \.hasWitness) else { throw .block("unexpected-witness") }
    }

    func markInvalid(_ entry: BlockIndexEntry) {
        // A block whose check failed because the store did is not invalid.
        guard failure == nil else { return }
        entry.invalid = true
        candidates.remove(entry.hash)
        do {
            try store.markInvalid(entry.hash)
        } catch {
            fail("marking \(entry.hash) invalid: \(error)")
        }
    }

    /// Whether `entry` and every ancestor off the best chain has data and is not invalid.
    func connectable(_ entry: BlockIndexEntry) -> Bool {
        var walk: BlockIndexEntry? = entry
        while let current = walk, !isActive(current) {
            guard current.hasData, !current.invalid else { return false }
            walk = current.parent
        }
        return true
    }

    func activateBestChain(given: Block?) -> BlockOutcome {
        var disconnected: [Block] = []
        var connected: [Block] = []
        var failure: ValidationError?
        while true {
            if let failure = self.failure { return .storeFailed(failure) }
            let best = candidates.compactMap { index[$0] }.filter {
                tip.chainWork < $0.chainWork && connectable($0)
            }
            .max { $0.chainWork < $1.chainWork }
            candidates = candidates.filter { hash in
                index[hash].map { tip.chainWork < $0.chainWork && !$0.invalid } ?? false
            }
            guard let best else { break }
            // The branch from the fork point to the candidate.
            var path: [BlockIndexEntry] = []
            var walk: BlockIndexEntry? = best
            while let current = walk, !isActive(current) {
                path.append(current)
                walk = current.parent
            }
            guard let fork = walk else { break }
            path.reverse()
            while tip !== fork {
                guard let block = disconnectTip() else {
                    if let failure = self.failure { return .storeFailed(failure) }
                    return .invalid(.block("cannot disconnect the tip"))
                }
                disconnected.append(block)
            }
            for entry in path {
                let block = (given?.hash == entry.hash ? given : nil) ?? self.block(entry.hash)
                guard let block else {
                    markInvalid(entry)
                    break
                }
                do {
                    try connect(block, entry: entry)
                    connected.append(block)
                } catch {
                    failure = error
                    markInvalid(entry)
                    break
                }
            }
        }
        if disconnected.isEmpty && connected.isEmpty {
            if let failure { return .invalid(failure) }
            return .sideBranch
        }
        // A block disconnected and connected again (a failed reorganisation) is not news.
        let back = Set(connected.map(\.hash))
        let dropped = disconnected.filter { !back.contains($0.hash) }
        let added = connected.filter { block in !disconnected.contains { $0.hash == block.hash } }
        if dropped.isEmpty && added.isEmpty, let failure { return .invalid(failure) }
        return .tipChanged(disconnected: dropped, connected: added)
    }

    /// Script flags for blocks at `height` (everything this node knows, on every network it
    /// validates fully).
    func scriptFlags(height: Int) -> ScriptFlags {
        height >= parameters.segwitHeight
            ? [.p2sh, .derSignatures, .nullDummy, .witness] : [.p2sh, .derSignatures]
    }

    /// Validates a block's transactions against the UTXO set and applies it (Core's
    /// `ConnectBlock`).
    func connect(_ block: Block, entry: BlockIndexEntry) throws(ValidationError) {
        var created: [OutPoint: Coin] = [:]
        var spentBase: [OutPoint: Coin] = [:]
        var spentCreated: Set<OutPoint> = []
        var fees: Int64 = 0
        var sigops = 0
        let flags = scriptFlags(height: entry.height)
        for (position, transaction) in block.transactions.enumerated() {
            let txid = transaction.txid
            for input in transaction.inputs { sigops += Consensus.legacySigOps(input.scriptSig) * 4 }
            for output in transaction.outputs { sigops += Consensus.legacySigOps(output.scriptPubKey) * 4 }
            if position > 0 {
                var valueIn: Int64 = 0
                for (inputIndex, input) in transaction.inputs.enumerated() {
                    let outpoint = input.previous
                    let coin: Coin
                    if let fresh = created[outpoint], !spentCreated.contains(outpoint) {
                        coin = fresh
                        spentCreated.insert(outpoint)
                    } else if let base = utxo[outpoint], spentBase[outpoint] == nil {
                        coin = base
                        spentBase[outpoint] = base
                    } else {
                        throw .block("bad-txns-inputs-missingorspent")
                    }
                    if coin.isCoinbase, entry.height - coin.height < Consensus.coinbaseMaturity {
                        throw .block("bad-txns-premature-spend-of-coinbase")
                    }
                    valueIn += coin.output.value
                    guard coin.output.value >= 0, valueIn <= Consensus.maxMoney else {
                        throw .block("bad-txns-inputvalues-outofrange")
                    }
                    if Interpreter.isP2SH(coin.output.scriptPubKey), flags.contains(.p2sh) {
                        var parser = ScriptParser(input.scriptSig)
                        var last: [UInt8] = []
                        while let element = parser.next() { last = element.data ?? [] }
                        sigops += Consensus.legacySigOps(last) * 4
                    }
                    do {
                        try Interpreter.verify(transaction, input: inputIndex, spending: coin, flags: flags)
                    } catch {
                        throw .block(
                            "mandatory-script-verify-flag-failed (\(txid) input \(inputIndex): \(error))")
                    }
                }
                let valueOut = transaction.outputs.reduce(Int64(0)) { $0 + $1.value }
                guard valueIn >= valueOut else { throw .block("bad-txns-in-belowout") }
                fees += valueIn - valueOut
                guard fees <= Consensus.maxMoney else { throw .block("bad-txns-accumulated-fee-outofrange") }
            }
            for (index, output) in transaction.outputs.enumerated()
            where output.scriptPubKey.first != Opcode.opReturn {
                let outpoint = OutPoint(txid: txid, index: UInt32(index))
                guard utxo[outpoint] == nil, created[outpoint] == nil else { throw .block("bad-txns-BIP30") }
                created[outpoint] = Coin(output: output, height: entry.height, isCoinbase: position == 0)
            }
        }
        guard sigops <= Consensus.maxBlockSigOpsCost else { throw .block("bad-blk-sigops") }
        let reward = block.transactions[0].outputs.reduce(Int64(0)) { $0 + $1.value }
        guard reward <= parameters.subsidy(at: entry.height) + fees else { throw .block("bad-cb-amount") }

        var update = ChainUpdate(tip: entry.hash)
        update.removedCoins = Array(spentBase.keys)
        for (outpoint, coin) in created where !spentCreated.contains(outpoint) {
            update.addedCoins[outpoint] = coin
        }
        update.undo = (entry.hash, BlockUndo(spent: spentBase))
        do {
            try store.apply(update)
        } catch {
            fail("connecting block \(entry.hash): \(error)")
            throw .block("the store failed")
        }
        for outpoint in update.removedCoins { utxo[outpoint] = nil }
        for (outpoint, coin) in update.addedCoins { utxo[outpoint] = coin }
        active.append(entry)
    }

    /// Undoes the tip block (Core's `DisconnectBlock`); returns it.
    func disconnectTip() -> Block? {
        let entry = tip
        guard let parent = entry.parent, let block = self.block(entry.hash) else { return nil }
        let undo: BlockUndo
        do {
            guard let stored = try store.undo(entry.hash) else {
                fail("no undo data for the tip \(entry.hash)")
                return nil
            }
            undo = stored
        } catch {
            fail("reading the undo data of \(entry.hash): \(error)")
            return nil
        }
        var update = ChainUpdate(tip: parent.hash)
        for transaction in block.transactions {
            let txid = transaction.txid
            for index in transaction.outputs.indices {
                let outpoint = OutPoint(txid: txid, index: UInt32(index))
                if utxo[outpoint] != nil { update.removedCoins.append(outpoint) }
            }
        }
        update.addedCoins = undo.spent
        update.droppedUndo = entry.hash
        do {
            try store.apply(update)
        } catch {
            fail("disconnecting block \(entry.hash): \(error)")
            return nil
        }
        for outpoint in update.removedCoins { utxo[outpoint] = nil }
        for (outpoint, coin) in update.addedCoins { utxo[outpoint] = coin }
        active.removeLast()
        candidates.insert(entry.hash)
        return block
    }
}

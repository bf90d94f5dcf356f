import Blockchain
import Foundation
import Testing

/// A regtest wallet of one key, for tests.
struct TestWallet {
    let key = PrivateKey.generate()
    var script: [UInt8] { Address.p2wpkh(key.publicKey()).scriptPubKey }
    var legacyScript: [UInt8] { Address.p2pkh(key.publicKey()).scriptPubKey }

    /// Spends `coin` at `outpoint` to `to`, paying `fee`.
    func spend(_ outpoint: OutPoint, _ coin: Coin, to: [UInt8], amount: Int64, fee: Int64) -> Transaction {
        var outputs = [TxOut(value: amount, scriptPubKey: to)]
        let change = coin.output.value - amount - fee
        if change > 0 { outputs.append(TxOut(value: change, scriptPubKey: script)) }
        var transaction = Transaction(inputs: [TxIn(previous: outpoint)], outputs: outputs)
        let publicKey = key.publicKey()
        if coin.output.scriptPubKey == script {
            let code =
                [Opcode.dup, Opcode.hash160, 0x14] + publicKey.hash160 + [
                    Opcode.equalVerify, Opcode.checkSig,
                ]
            let hash = SigHash.witnessV0(
                transaction, input: 0, scriptCode: code, amount: coin.output.value, type: 1)
            transaction.inputs[0].witness = [key.sign(hash: hash) + [1], publicKey.bytes]
        } else {
            let hash = SigHash.legacy(transaction, input: 0, scriptCode: coin.output.scriptPubKey, type: 1)
            var scriptSig: [UInt8] = []
            scriptSig.appendPush(key.sign(hash: hash) + [1])
            scriptSig.appendPush(publicKey.bytes)
            transaction.inputs[0].scriptSig = scriptSig
        }
        return transaction
    }
}

@Suite struct ChainTests {
    let now: UInt32 = 1_900_000_000

    func mine(
        _ chain: ChainState, _ count: Int, to script: [UInt8], mempool: Mempool? = nil, time: inout UInt32
    )
        -> [Block]
    {
        var blocks: [Block] = []
        for _ in 0..<count {
            time += 600
            let (transactions, fees) = mempool?.select() ?? ([], 0)
            let block = Miner.mine(
                chain: chain, transactions: transactions, fees: fees, payTo: script, time: time)
            guard case .tipChanged(let disconnected, let connected) = chain.process(block, now: now) else {
                Issue.record("mined block not accepted")
                return blocks
            }
            mempool?.update(disconnected: disconnected, connected: connected, chain: chain)
            blocks.append(block)
        }
        return blocks
    }

    @Test("regtest genesis is Bitcoin Core's")
    func genesis() throws {
        #expect(
            ChainParameters.regtest.genesisHash.description
                == "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206")
        #expect(
            ChainParameters.mainnet.genesisHash.description
                == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f")
    }

    @Test("mine, mature a coinbase, spend it through the mempool into a block; the UTXO set follows")
    func mineAndSpend() throws {
        let store = MemoryChainStore()
        let chain = try ChainState(parameters: .regtest, store: store)
        let wallet = TestWallet()
        let mempool = Mempool()
        var time: UInt32 = 1_700_000_000
        let first = mine(chain, 1, to: wallet.script, time: &time)
        _ = mine(chain, 100, to: TestWallet().script, time: &time)
        #expect(chain.height == 101)
        let coinbase = try #require(first.first?.transactions.first)
        let outpoint = OutPoint(txid: coinbase.txid, index: 0)
        let coin = try #require(chain.coin(outpoint))
        #expect(coin.output.value == 50 * Consensus.coin && coin.isCoinbase)

        let receiver = TestWallet()
        let payment = wallet.spend(
            outpoint, coin, to: receiver.legacyScript, amount: 10 * Consensus.coin, fee: 10_000)
        try mempool.accept(payment, chain: chain)
        #expect(mempool.count == 1)
        // A conflicting spend of the same coin is refused.
        let conflict = wallet.spend(
            outpoint, coin, to: receiver.script, amount: 20 * Consensus.coin, fee: 20_000)
        #expect(throws: ValidationError.self) { try mempool.accept(conflict, chain: chain) }
        // A forged signature is refused.
        var forged = payment
        forged.outputs[0].value += 1
        #expect(throws: ValidationError.self) { try Mempool().accept(forged, chain: chain) }

        let blocks = mine(chain, 1, to: wallet.script, mempool: mempool, time: &time)
        #expect(blocks[0].transactions.count == 2)
        #expect(mempool.count == 0)
        #expect(chain.coin(outpoint) == nil)
        let received = try #require(chain.coin(OutPoint(txid: payment.txid, index: 0)))
        #expect(received.output.value == 10 * Consensus.coin)
        // The miner took the fee.
        #expect(blocks[0].transactions[0].outputs[0].value == 50 * Consensus.coin + 10_000)

        // The legacy output spends too (P2PKH).
        let next = receiver.spend(
            OutPoint(txid: payment.txid, index: 0), received, to: wallet.script, amount: Consensus.coin,
            fee: 5_000)
        try mempool.accept(next, chain: chain)

        // A restart from the store gives the same tip and coins.
        let reopened = try ChainState(parameters: .regtest, store: store)
        #expect(reopened.tip.hash == chain.tip.hash)
        #expect(reopened.unspent == chain.unspent)
    }

    @Test("an immature coinbase spend, an overpaying coinbase and a double spend make invalid blocks")
    func invalidBlocks() throws {
        let chain = try ChainState(parameters: .regtest, store: MemoryChainStore())
        let wallet = TestWallet()
        var time: UInt32 = 1_700_000_000
        let first = mine(chain, 1, to: wallet.script, time: &time)
        let outpoint = OutPoint(txid: first[0].transactions[0].txid, index: 0)
        let coin = try #require(chain.coin(outpoint))
        let early = wallet.spend(outpoint, coin, to: wallet.script, amount: Consensus.coin, fee: 1_000)
        let immature = Miner.mine(
            chain: chain, transactions: [early], fees: 1_000, payTo: wallet.script, time: time + 600)
        guard case .invalid(let error) = chain.process(immature, now: now) else {
            Issue.record("immature spend accepted")
            return
        }
        #expect("\(error)".contains("premature"))
        // The invalid block is remembered as invalid.
        guard case .invalid = chain.process(immature, now: now) else {
            Issue.record("invalid block accepted the second time")
            return
        }
        let greedy = Miner.mine(chain: chain, fees: 1, payTo: wallet.script, time: time + 600)
        guard case .invalid(let reason) = chain.process(greedy, now: now) else {
            Issue.record("overpaying coinbase accepted")
            return
        }
        #expect("\(reason)".contains("bad-cb-amount"))
        #expect(chain.height == 1)
    }

    @Test("two chains that mined apart reorganise to the one with more work; UTXO sets agree")
    func reorganisation() throws {
        let a = try ChainState(parameters: .regtest, store: MemoryChainStore())
        let b = try ChainState(parameters: .regtest, store: MemoryChainStore())
        let wallet = TestWallet()
        var time: UInt32 = 1_700_000_000
        let shared = mine(a, 105, to: wallet.script, time: &time)
        for block in shared { _ = b.process(block, now: now) }
        #expect(b.tip.hash == a.tip.hash)

        // A spends a coin in its branch of 2 blocks; B mines 4 other blocks.
        let mempool = Mempool()
        let outpoint = OutPoint(txid: shared[0].transactions[0].txid, index: 0)
        let spend = wallet.spend(
            outpoint, try #require(a.coin(outpoint)), to: TestWallet().script, amount: Consensus.coin,
            fee: 1_000)
        try mempool.accept(spend, chain: a)
        var timeA = time
        var timeB = time + 1
        let branchA = mine(a, 2, to: wallet.script, mempool: mempool, time: &timeA)
        let branchB = mine(b, 4, to: TestWallet().script, time: &timeB)
        #expect(a.coin(outpoint) == nil)

        var disconnectedCount = 0
        for block in branchB {
            if case .tipChanged(let disconnected, _) = a.process(block, now: now) {
                disconnectedCount += disconnected.count
                mempool.update(disconnected: disconnected, connected: [], chain: a)
            }
        }
        #expect(disconnectedCount == 2)
        #expect(a.tip.hash == b.tip.hash)
        #expect(a.unspent == b.unspent)
        // The spend is unconfirmed again and back in the mempool.
        #expect(a.coin(outpoint) != nil)
        #expect(mempool.contains(spend.txid))
        // B learns A's branch: a side branch with less work, nothing moves.
        for block in branchA {
            if case .tipChanged = b.process(block, now: now) { Issue.record("lighter branch moved the tip") }
        }
        #expect(b.tip.hash == a.tip.hash)
    }

    @Test("a full mempool evicts the lowest fee rate; select puts the highest first")
    func eviction() throws {
        let chain = try ChainState(parameters: .regtest, store: MemoryChainStore())
        let wallet = TestWallet()
        var time: UInt32 = 1_700_000_000
        let funding = mine(chain, 3, to: wallet.script, time: &time)
        _ = mine(chain, 100, to: TestWallet().script, time: &time)
        let spends = try funding.enumerated().map { index, block in
            let outpoint = OutPoint(txid: block.transactions[0].txid, index: 0)
            return wallet.spend(
                outpoint, try #require(chain.coin(outpoint)), to: TestWallet().script, amount: Consensus.coin,
                fee: Int64(1_000 * (index + 1)))
        }
        let size = spends[0].virtualSize
        let pool = Mempool(maxBytes: size * 2 + size / 2)
        try pool.accept(spends[1], chain: chain)
        try pool.accept(spends[0], chain: chain)
        #expect(pool.count == 2)
        try pool.accept(spends[2], chain: chain)
        #expect(pool.count == 2 && !pool.contains(spends[0].txid))
        #expect(pool.select().transactions.map(\.txid) == [spends[2].txid, spends[1].txid])
        // A transaction paying less than the pool's lowest is refused when full.
        #expect(throws: ValidationError.self) { try pool.accept(spends[0], chain: chain) }
    }

    @Test("headers-first: locators and headers after them")
    func locators() throws {
        let chain = try ChainState(parameters: .regtest, store: MemoryChainStore())
        var time: UInt32 = 1_700_000_000
        _ = mine(chain, 30, to: TestWallet().script, time: &time)
        let locator = chain.locator()
        #expect(locator.first == chain.tip.hash && locator.last == chain.parameters.genesisHash)
        #expect(locator.count < 20)
        let headers = chain.headers(after: [chain.active[10].hash])
        #expect(headers.count == 20 && headers.first?.previous == chain.active[10].hash)
    }

    @Test func miningMeetsTarget() throws {
        var header = BlockHeader(
            version: 1, previous: .zero, merkleRoot: .zero, time: 0, bits: 0x1f00_ffff, nonce: 0)
        #expect(Miner.solve(&header, threads: 2))
        #expect(Target.isMet(by: header.hash, bits: header.bits, limit: .max))
    }
}

@Suite struct SQLiteStoreTests {
    @Test("the chain in SQLite survives a reopen: tip, UTXO set, and a reorganisation after it")
    func reopen() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-chain-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("chain.sqlite").path
        let wallet = TestWallet()
        var time: UInt32 = 1_700_000_000
        let now: UInt32 = 1_900_000_000
        var tip: Hash256
        var coins: [OutPoint: Coin]
        do {
            let chain = try ChainState(parameters: .regtest, store: try SQLiteChainStore(path: path))
            for _ in 0..<12 {
                time += 600
                _ = chain.process(Miner.mine(chain: chain, payTo: wallet.script, time: time), now: now)
            }
            tip = chain.tip.hash
            coins = chain.unspent
            #expect(chain.height == 12 && coins.count == 12)
        }
        let reopened = try ChainState(parameters: .regtest, store: try SQLiteChainStore(path: path))
        #expect(reopened.tip.hash == tip)
        #expect(reopened.unspent == coins)
        // A heavier branch from height 10 reorganises the reopened chain (undo data from disk).
        let other = try ChainState(parameters: .regtest, store: MemoryChainStore())
        for height in 1...10 {
            _ = other.process(try #require(reopened.block(reopened.active[height].hash)), now: now)
        }
        var branch: [Block] = []
        var otherTime = time + 7
        for _ in 0..<3 {
            otherTime += 600
            let block = Miner.mine(chain: other, payTo: TestWallet().script, time: otherTime)
            _ = other.process(block, now: now)
            branch.append(block)
        }
        for block in branch { _ = reopened.process(block, now: now) }
        #expect(reopened.tip.hash == other.tip.hash)
        #expect(reopened.unspent == other.unspent)
    }
}

@Suite struct RetargetTests {
    @Test("difficulty retargets every interval by the time the interval took, clamped to 4x")
    func retarget() throws {
        var parameters = ChainParameters.regtest
        parameters.noRetargeting = false
        parameters.retargetInterval = 10
        parameters.targetTimespan = 10 * 600
        parameters.powLimit = UInt256.max >> 12
        let limit = parameters.powLimit
        parameters.genesis.header.bits = Target.compact(limit)
        let chain = try ChainState(parameters: parameters, store: MemoryChainStore())
        var time = parameters.genesis.header.time
        for _ in 1..<10 {
            time += 300  // twice as fast as the target spacing
            let block = Miner.mine(chain: chain, payTo: [Opcode.op1], time: time)
            guard case .tipChanged = chain.process(block, now: time + 10) else {
                Issue.record("block refused")
                return
            }
        }
        // Height 9: the next block (10) is the first of a new interval. Blocks 0…9 took 9 × 300 s.
        let old = try #require(Target.expand(chain.tip.header.bits))
        let expected = try #require(old.multiplied(by: 9 * 300)?.dividedBy(UInt256(10 * 600)))
        #expect(chain.nextBits(after: chain.tip) == Target.compact(expected))
        // A block carrying the old bits is refused.
        var stale = Miner.template(
            chain: chain, transactions: [], fees: 0, payTo: [Opcode.op1], time: time + 300)
        stale.header.bits = chain.tip.header.bits
        _ = Miner.solve(&stale.header, threads: 1)
        guard case .invalid(let error) = chain.process(stale, now: time + 400) else {
            Issue.record("wrong difficulty accepted")
            return
        }
        #expect("\(error)".contains("bad-diffbits"))
    }
}

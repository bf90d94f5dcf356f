import Blockchain
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import PeerNet
import SystemPackage
import Testing

@Suite("Amounts, wallet files and the mempool under hostile input")
struct ServiceSafetyTests {
    @Test("BTC amounts parse exactly, with a clear error for each way they can be wrong")
    func amounts() throws {
        #expect(try Amount.satoshis("1") == 100_000_000)
        #expect(try Amount.satoshis("0.5") == 50_000_000)
        #expect(try Amount.satoshis(".25") == 25_000_000)
        #expect(try Amount.satoshis("1e-05") == 1_000)  // as Python's json prints 0.00001
        #expect(try Amount.satoshis("2.1E7") == Consensus.maxMoney)
        #expect(try Amount.satoshis("0.00000001") == 1)
        #expect(try Amount.satoshis("0.100000000000") == 10_000_000)  // zeros past 8 places are exact
        #expect(try Amount.satoshis("-0") == 0)
        #expect(throws: AmountError.outOfRange("1e30")) { try Amount.satoshis("1e30") }
        #expect(throws: AmountError.negative("-1")) { try Amount.satoshis("-1") }
        #expect(throws: AmountError.tooPrecise("0.000000001")) { try Amount.satoshis("0.000000001") }
        #expect(throws: AmountError.outOfRange("21000001")) { try Amount.satoshis("21000001") }
        #expect(throws: AmountError.outOfRange("100000000000")) { try Amount.satoshis("100000000000") }
        #expect(throws: AmountError.outOfRange("9223372036854775808")) {
            try Amount.satoshis("9223372036854775808")
        }
        for bad in ["", "abc", "1.2.3", "1e", "e5", "1e99999", "0x10", "1,5", " 1", "NaN", "inf"] {
            #expect(throws: AmountError.self, "\(bad)") { try Amount.satoshis(bad) }
        }
        #expect(String(describing: AmountError.tooPrecise("0.000000001")).contains("8 decimal places"))
        #expect(Amount.text(1_000) == "0.00001000" && Amount.text(Consensus.maxMoney) == "21000000.00000000")
        // Any text: a value or a typed error, never a trap.
        var random = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789.eE+-x ")
        for _ in 0..<20_000 {
            let text = String(
                (0..<Int.random(in: 0...24, using: &random)).map { _ in alphabet.randomElement()! })
            if let value = try? Amount.satoshis(text) { #expect(value >= 0 && value <= Consensus.maxMoney) }
        }
    }

    static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(
            "wallet-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test("the wallet file is the owner's only, and one that cannot be read is an error, not an empty wallet")
    func walletFile() throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/wallet.txt"
        let wallet = try Wallet(path: path, network: .regtest)  // no file yet: a new wallet
        let address = try wallet.newAddress()
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        #expect(try Wallet(path: path, network: .regtest).address() == address)

        // A line that is not a key: refused, and the file is left as it was.
        let good = try String(contentsOfFile: path, encoding: .utf8)
        try (good + "not-a-key\n").write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: WalletError.self) { try Wallet(path: path, network: .regtest) }
        #expect(try String(contentsOfFile: path, encoding: .utf8).hasPrefix(good))
        // A path that exists but is not a readable file.
        try FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: false)
        #expect(throws: WalletError.self) { try Wallet(path: path, network: .regtest) }
    }
}

@Suite("Mempool policy as Bitcoin Core's")
struct MempoolPolicyTests {
    let now: UInt32 = 1_900_000_000

    /// A chain with one mature coin for `wallet`; returns the chain, the coin and its outpoint.
    func funded(_ wallet: TestWallet) throws -> (ChainState, OutPoint, Coin) {
        let chain = try ChainState(parameters: .regtest, store: MemoryChainStore())
        var time: UInt32 = 1_700_000_000
        let first = Miner.mine(chain: chain, transactions: [], fees: 0, payTo: wallet.script, time: time)
        _ = chain.process(first, now: now)
        let other = TestWallet().script
        for _ in 0..<100 {
            time += 600
            _ = chain.process(
                Miner.mine(chain: chain, transactions: [], fees: 0, payTo: other, time: time), now: now)
        }
        let outpoint = OutPoint(txid: first.transactions[0].txid, index: 0)
        return (chain, outpoint, try #require(chain.coin(outpoint)))
    }

    /// `count` transactions, each spending the previous one's first output.
    func chainOfSpends(_ wallet: TestWallet, from outpoint: OutPoint, _ coin: Coin, count: Int)
        -> [Transaction]
    {
        var spends: [Transaction] = []
        var previous = (outpoint, coin)
        for _ in 0..<count {
            let value = previous.1.output.value - 1_000
            let spend = wallet.spend(previous.0, previous.1, to: wallet.script, amount: value, fee: 1_000)
            spends.append(spend)
            previous = (
                OutPoint(txid: spend.txid, index: 0),
                Coin(output: spend.outputs[0], height: 0, isCoinbase: false)
            )
        }
        return spends
    }

    @Test("a chain of 25 unconfirmed transactions is accepted, the 26th is refused (Core's ancestor limit)")
    func ancestorLimit() throws {
        let wallet = TestWallet()
        let (chain, outpoint, coin) = try funded(wallet)
        let pool = Mempool()
        let spends = chainOfSpends(wallet, from: outpoint, coin, count: 26)
        for spend in spends.prefix(25) { try pool.accept(spend, chain: chain, now: now) }
        do {
            try pool.accept(spends[25], chain: chain, now: now)
            Issue.record("a 26th descendant was accepted")
        } catch {
            #expect("\(error)".contains("too-long-mempool-chain"))
        }
        #expect(pool.count == 25 && pool.isConsistent())
        #expect(pool.entries[spends[0].txid]?.descendantCount == 25)
    }

    @Test("a 1,000-deep chain made invalid by a conflicting block is removed whole, without recursion")
    func deepChainConflict() throws {
        let wallet = TestWallet()
        let (chain, outpoint, coin) = try funded(wallet)
        var policy = MempoolPolicy()
        policy.ancestorCount = 1_001
        policy.descendantCount = 1_001
        policy.ancestorSize = 1 << 30
        policy.descendantSize = 1 << 30
        let pool = Mempool(policy: policy)
        for spend in chainOfSpends(wallet, from: outpoint, coin, count: 1_000) {
            try pool.accept(spend, chain: chain, now: now)
        }
        #expect(pool.count == 1_000)
        // A block confirms a different spend of the same coin.
        let conflict = wallet.spend(
            outpoint, coin, to: TestWallet().script, amount: Consensus.coin, fee: 5_000)
        let block = Miner.mine(
            chain: chain, transactions: [conflict], fees: 5_000, payTo: TestWallet().script,
            time: chain.tip.header.time + 600)
        guard case .tipChanged(let disconnected, let connected) = chain.process(block, now: now) else {
            Issue.record("the conflicting block was not connected")
            return
        }
        pool.update(disconnected: disconnected, connected: connected, chain: chain, now: now)
        #expect(pool.count == 0 && pool.bytes == 0 && pool.isConsistent())
    }

    @Test("a child whose parent is unknown waits as an orphan and is accepted when the parent comes")
    func orphans() throws {
        let wallet = TestWallet()
        let (chain, outpoint, coin) = try funded(wallet)
        let pool = Mempool()
        let spends = chainOfSpends(wallet, from: outpoint, coin, count: 3)
        #expect(
            try pool.receive(spends[2], chain: chain, now: now) == .orphan(missingParents: [spends[1].txid]))
        #expect(
            try pool.receive(spends[1], chain: chain, now: now) == .orphan(missingParents: [spends[0].txid]))
        #expect(pool.count == 0 && pool.orphanCount == 2)
        #expect(try pool.receive(spends[0], chain: chain, now: now) == .accepted(spends.map(\.txid)))
        #expect(pool.count == 3 && pool.orphanCount == 0 && pool.isConsistent())

        // The orphan pool is bounded (100) and expires (20 minutes).
        let fresh = Mempool()
        for index in 0..<150 {
            let missing = OutPoint(txid: Hash256.doubleSHA256(Array("parent \(index)".utf8)), index: 0)
            let fake = Coin(
                output: TxOut(value: Consensus.coin, scriptPubKey: wallet.script), height: 1,
                isCoinbase: false)
            _ = try fresh.receive(
                wallet.spend(missing, fake, to: wallet.script, amount: Consensus.coin / 2, fee: 1_000),
                chain: chain, now: now + UInt32(index))
        }
        #expect(fresh.orphanCount == 100)
        fresh.expireOrphans(now: now + 149 + 20 * 60)
        #expect(fresh.orphanCount == 0)
    }

    @Test("a full pool evicts the lowest package score in turn, and keeps a parent its child pays for")
    func evictionByPackage() throws {
        let wallet = TestWallet()
        let chain = try ChainState(parameters: .regtest, store: MemoryChainStore())
        var time: UInt32 = 1_700_000_000
        var coins: [(OutPoint, Coin)] = []
        for _ in 0..<4 {
            time += 600
            let block = Miner.mine(chain: chain, transactions: [], fees: 0, payTo: wallet.script, time: time)
            _ = chain.process(block, now: now)
            let outpoint = OutPoint(txid: block.transactions[0].txid, index: 0)
            coins.append((outpoint, try #require(chain.coin(outpoint))))
        }
        for _ in 0..<100 {
            time += 600
            _ = chain.process(
                Miner.mine(chain: chain, transactions: [], fees: 0, payTo: TestWallet().script, time: time),
                now: now)
        }
        // A low-fee parent with a high-fee child, and two middling transactions.
        let parent = wallet.spend(coins[0].0, coins[0].1, to: wallet.script, amount: Consensus.coin, fee: 200)
        let child = wallet.spend(
            OutPoint(txid: parent.txid, index: 0),
            Coin(output: parent.outputs[0], height: 0, isCoinbase: false),
            to: wallet.script, amount: Consensus.coin / 2, fee: 40_000)
        let middle = [1, 2].map {
            wallet.spend(coins[$0].0, coins[$0].1, to: wallet.script, amount: Consensus.coin, fee: 3_000)
        }
        let size = parent.virtualSize
        let pool = Mempool(maxBytes: size * 4 + size / 2, minimumFeeRate: 0)
        try pool.accept(parent, chain: chain, now: now)
        try pool.accept(child, chain: chain, now: now)
        try pool.accept(middle[0], chain: chain, now: now)
        try pool.accept(middle[1], chain: chain, now: now)
        #expect(pool.count == 4)
        // A fifth transaction overfills it: a middling one goes, not the parent its child pays for.
        let last = wallet.spend(coins[3].0, coins[3].1, to: wallet.script, amount: Consensus.coin, fee: 5_000)
        try pool.accept(last, chain: chain, now: now)
        #expect(pool.contains(parent.txid) && pool.contains(child.txid) && pool.contains(last.txid))
        #expect(pool.count == 4 && pool.isConsistent())
    }
}

/// Connects `peer` (inbound, from 10.0.0.`peer`) to `core` and completes its handshake.
func handshake(_ core: NodeCore, peer: Int, now: UInt32) {
    _ = core.connected(
        peer: peer, address: Endpoint(ip: IPAddress(v4: 0x0A00_0000 + UInt32(peer)), port: 1), inbound: true,
        now: now)
    let none = NetworkAddress(services: 0, ip: [0, 0, 0, 0], port: 0)
    let version = VersionMessage(
        services: 9, timestamp: 0, receiver: none, sender: none, nonce: UInt64(peer) + 1_000,
        userAgent: "/test/",
        startHeight: 0)
    _ = core.handle(.version(version), from: peer, now: now)
    _ = core.handle(.verack, from: peer, now: now)
}

/// A store that works until told to fail, then throws on every call (a full disk).
final class FailingStore: ChainStore, @unchecked Sendable {
    let inner = MemoryChainStore()
    var failing = false
    struct DiskFull: Error, CustomStringConvertible { var description: String { "No space left on device" } }

    func check() throws { if failing { throw DiskFull() } }
    func entries() throws -> [StoredBlockEntry] {
        try check()
        return inner.entries()
    }
    func tip() throws -> Hash256? {
        try check()
        return inner.tip()
    }
    func allCoins() throws -> [OutPoint: Coin] {
        try check()
        return inner.allCoins()
    }
    func block(_ hash: Hash256) throws -> Block? {
        try check()
        return inner.block(hash)
    }
    func undo(_ hash: Hash256) throws -> BlockUndo? {
        try check()
        return inner.undo(hash)
    }
    func store(_ entry: StoredBlockEntry, block: Block?) throws {
        try check()
        inner.store(entry, block: block)
    }
    func markInvalid(_ hash: Hash256) throws {
        try check()
        inner.markInvalid(hash)
    }
    func apply(_ update: ChainUpdate) throws {
        try check()
        inner.apply(update)
    }
}

@Suite("Storage errors are not consensus")
struct StoreFailureTests {
    @Test(
        "a block that arrives while the store fails is not marked invalid, its sender is not punished, and the node is told to stop"
    )
    func diskFull() throws {
        let now: UInt32 = 1_900_000_000
        let store = FailingStore()
        let source = try ChainState(parameters: .regtest, store: MemoryChainStore())
        let script = TestWallet().script
        var blocks: [Block] = []
        var time: UInt32 = 1_700_000_000
        for _ in 0..<3 {
            time += 600
            let block = Miner.mine(chain: source, payTo: script, time: time)
            _ = source.process(block, now: now)
            blocks.append(block)
        }
        let chain = try ChainState(parameters: .regtest, store: store)
        let core = NodeCore(chain: chain, nonce: 1)
        handshake(core, peer: 1, now: now)
        #expect(core.handle(.block(blocks[0]), from: 1, now: now).isEmpty == false || chain.height == 1)
        #expect(chain.height == 1)

        store.failing = true
        let actions = core.handle(.block(blocks[1]), from: 1, now: now)
        #expect(actions == [.fatal(chain.failure ?? "")], "\(actions)")
        #expect(chain.failure?.contains("No space left on device") == true)
        #expect(chain.entry(blocks[1].hash)?.invalid != true)
        #expect(core.peers[1]?.misbehaviour == 0 && core.banned.isEmpty)
        // Every later message only repeats the instruction to stop; nothing is written.
        #expect(core.handle(.block(blocks[2]), from: 1, now: now) == [.fatal(chain.failure ?? "")])

        // After a restart with a working disk, the same blocks are accepted.
        store.failing = false
        let restarted = try ChainState(parameters: .regtest, store: store.inner)
        #expect(restarted.failure == nil)
        for block in blocks.dropFirst() { _ = restarted.process(block, now: now) }
        #expect(restarted.height == 3 && restarted.tip.hash == blocks[2].hash)
        #expect(store.inner.entries().allSatisfy { !$0.invalid })
    }
}

@Suite("Header spam")
struct HeaderSpamTests {
    let now: UInt32 = 1_900_000_000

    /// A chain of `count` blocks on `chain`'s tip, mined in a scratch copy so `chain` is not moved.
    func branch(from base: [Block], count: Int, salt: UInt32) throws -> [BlockHeader] {
        let scratch = try ChainState(parameters: .regtest, store: MemoryChainStore())
        for block in base { _ = scratch.process(block, now: now) }
        var time = (base.last?.header.time ?? 1_700_000_000) + salt
        var headers: [BlockHeader] = []
        let script = TestWallet().script
        for _ in 0..<count {
            time += 600
            let block = Miner.mine(chain: scratch, payTo: script, time: time)
            _ = scratch.process(block, now: now)
            headers.append(block.header)
        }
        return headers
    }

    @Test(
        "a low-work branch forking far below the tip is not stored; one with more work is, and its blocks are asked for"
    )
    func deepFork() throws {
        var time: UInt32 = 1_700_000_000
        let source = try ChainState(parameters: .regtest, store: MemoryChainStore())
        var blocks: [Block] = []
        let script = TestWallet().script
        for _ in 0..<200 {
            time += 600
            let block = Miner.mine(chain: source, payTo: script, time: time)
            _ = source.process(block, now: now)
            blocks.append(block)
        }
        let chain = try ChainState(parameters: .regtest, store: MemoryChainStore())
        for block in blocks { _ = chain.process(block, now: now) }
        let core = NodeCore(chain: chain, nonce: 1)
        handshake(core, peer: 1, now: now)

        // 100 headers forking at height 20 (180 below the tip), far less work: nothing stored.
        let weak = try branch(from: Array(blocks.prefix(20)), count: 100, salt: 7)
        #expect(core.handle(.headers(weak), from: 1, now: now).isEmpty)
        #expect(weak.allSatisfy { chain.entry($0.hash) == nil })
        #expect(core.peers[1] != nil && core.banned.isEmpty)

        // 181 headers from the same point: more work than the tip; stored, and its blocks wanted.
        let strong = try branch(from: Array(blocks.prefix(20)), count: 181, salt: 11)
        let actions = core.handle(.headers(strong), from: 1, now: now)
        #expect(strong.allSatisfy { chain.entry($0.hash) != nil })
        let asked = actions.compactMap { action -> [Inventory]? in
            if case .send(_, .getdata(let items)) = action { return items }
            return nil
        }.flatMap { $0 }
        #expect(asked.count == 181)

        // A short fork just below the tip is stored as before (an ordinary race between miners).
        let near = try branch(from: Array(blocks.prefix(198)), count: 1, salt: 13)
        _ = core.handle(.headers(near), from: 1, now: now)
        #expect(chain.entry(near[0].hash) != nil)
    }
}

@Suite("The wallet as Core's")
struct WalletBehaviourTests {
    @Test(
        "after 101 blocks: Core's balance split, own unconfirmed change spent up to the ancestor limit, fees by rate"
    )
    func spendsOwnChange() throws {
        let now: UInt32 = 1_900_000_000
        let chain = try ChainState(parameters: .regtest, store: MemoryChainStore())
        let mempool = Mempool()
        let wallet = try Wallet(path: nil, network: .regtest)
        let script = try Address(try wallet.newAddress(), network: .regtest).scriptPubKey
        var time: UInt32 = 1_700_000_000
        for _ in 0..<101 {
            time += 600
            _ = chain.process(Miner.mine(chain: chain, payTo: script, time: time), now: now)
        }
        var balances = wallet.balances(chain: chain, mempool: mempool)
        #expect(
            balances
                == Wallet.Balances(
                    trusted: 50 * Consensus.coin, untrustedPending: 0, immature: 5_000 * Consensus.coin))

        let friend = try Wallet(path: nil, network: .regtest)
        let address = try friend.newAddress()
        var sent = 0
        do {
            for _ in 0..<30 {
                let payment = try wallet.pay(address, amount: Consensus.coin, chain: chain, mempool: mempool)
                try mempool.accept(payment, chain: chain, now: now)
                sent += 1
            }
        } catch {
            #expect("\(error)".contains("insufficient funds (0 sat spendable)"), "\(error)")
        }
        // Each send spends the last one's change: 25 fit Core's ancestor limit, the 26th waits.
        #expect(sent == 25)
        #expect(mempool.isConsistent())
        let entry = try #require(mempool.entries.values.first)
        #expect(entry.fee == Int64(entry.virtualSize) * Wallet.defaultFeeRate)
        balances = wallet.balances(chain: chain, mempool: mempool)
        let fees = mempool.totalFees
        #expect(balances.trusted == 50 * Consensus.coin - 25 * Consensus.coin - fees)
        #expect(friend.balances(chain: chain, mempool: mempool).untrustedPending == 25 * Consensus.coin)
        #expect(friend.balance(chain: chain, mempool: mempool) == 0)
    }
}

@Suite("Chain writes off the event loop")
struct BatchingStoreTests {
    @Test(
        "writes are read back at once, reach SQLite in batches in order, and a reopened store has the same chain"
    )
    func batchesReachDisk() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "batching-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("chain.sqlite").path
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let batching = BatchingChainStore(try SQLiteChainStore(path: path), loop: loop)
        let chain = try ChainState(parameters: .regtest, store: batching)
        let script = TestWallet().script
        let tip: Hash256 = try await loop.submit {
            batching.start()
            var time: UInt32 = 1_700_000_000
            for _ in 0..<30 {
                time += 600
                let block = Miner.mine(chain: chain, payTo: script, time: time)
                _ = chain.process(block, now: 1_900_000_000)
                // Readable before it is on disk.
                precondition((try? batching.block(block.hash)) != nil)
            }
            return chain.tip.hash
        }.get()
        try await batching.flush()
        let reopened = try ChainState(parameters: .regtest, store: SQLiteChainStore(path: path))
        #expect(reopened.height == 30 && reopened.tip.hash == tip)
        #expect(reopened.unspent == chain.unspent)
    }

    @Test("a batch that fails is reported once and every later write throws; nothing is marked invalid")
    func failureStops() async throws {
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        let inner = FailingStore()
        let batching = BatchingChainStore(inner, loop: loop)
        let chain = try ChainState(parameters: .regtest, store: batching)
        let reported = NIOLockedValueBox<[String]>([])
        let script = TestWallet().script
        try await loop.submit {
            batching.onFailure = { error in reported.withLockedValue { $0.append("\(error)") } }
            batching.start()
            inner.failing = true
            _ = chain.process(
                Miner.mine(chain: chain, payTo: script, time: 1_700_000_600), now: 1_900_000_000)
        }.get()
        await #expect(throws: (any Error).self) { try await batching.flush() }
        #expect(reported.withLockedValue { $0 } == ["No space left on device"])
        let next = try await loop.submit {
            chain.process(Miner.mine(chain: chain, payTo: script, time: 1_700_001_200), now: 1_900_000_000)
        }.get()
        guard case .storeFailed = next else {
            Issue.record("a write after the failure did not fail: \(next)")
            return
        }
        #expect(inner.inner.entries().allSatisfy { !$0.invalid })
    }
}

@Suite("Punishment as Core's")
struct PunishmentTests {
    @Test("a transaction that fails only the standard policy is refused without blame; a forged one bans")
    func policyIsNotConsensus() throws {
        let now: UInt32 = 1_900_000_000
        let wallet = TestWallet()
        let chain = try ChainState(parameters: .regtest, store: MemoryChainStore())
        var time: UInt32 = 1_700_000_000
        let first = Miner.mine(chain: chain, payTo: wallet.legacyScript, time: time)
        _ = chain.process(first, now: now)
        for _ in 0..<100 {
            time += 600
            _ = chain.process(Miner.mine(chain: chain, payTo: TestWallet().script, time: time), now: now)
        }
        let outpoint = OutPoint(txid: first.transactions[0].txid, index: 0)
        let coin = try #require(chain.coin(outpoint))
        let core = NodeCore(chain: chain, nonce: 1)
        for peer in [1, 2] { handshake(core, peer: peer, now: now) }
        // An extra push under the signature: valid by consensus, refused by CLEANSTACK policy.
        var unclean = wallet.spend(
            outpoint, coin, to: TestWallet().script, amount: Consensus.coin, fee: 10_000)
        unclean.inputs[0].scriptSig = [0x01, 0x07] + unclean.inputs[0].scriptSig
        let policy = core.handle(.tx(unclean), from: 1, now: now)
        #expect(!policy.contains { if case .ban = $0 { true } else { false } }, "\(policy)")
        #expect(core.peers[1]?.misbehaviour == 0 && !core.mempool.contains(unclean.txid))
        // A forged signature fails consensus too: banned.
        var forged = wallet.spend(
            outpoint, coin, to: TestWallet().script, amount: Consensus.coin, fee: 10_000)
        forged.outputs[0].value += 1
        let consensus = core.handle(.tx(forged), from: 2, now: now)
        #expect(consensus.contains { if case .ban = $0 { true } else { false } }, "\(consensus)")
    }
}

@Suite("Address flood")
struct AddressFloodTests {
    @Test("a peer flooding addr messages gets 0.1 addresses a second into the book, not its flood")
    func tokenBucket() throws {
        let now: UInt32 = 1_900_000_000
        let core = NodeCore(chain: try ChainState(parameters: .regtest, store: MemoryChainStore()), nonce: 1)
        handshake(core, peer: 1, now: now)
        func flood(_ base: UInt32) -> P2PMessage {
            .addr(
                (0..<UInt32(P2PCodec.maxAddresses)).map {
                    NetworkAddress(
                        time: now, services: 1, ip: IPAddress(v4: base + $0).mappedBytes, port: 8333)
                })
        }
        _ = core.handle(flood(0x0808_0000), from: 1, now: now)
        #expect(core.addressBook.count == 1)  // the one token an inbound peer starts with
        _ = core.handle(flood(0x0909_0000), from: 1, now: now + 100)
        #expect(core.addressBook.count == 11)  // 100 s at 0.1 a second
        _ = core.handle(flood(0x0B0B_0000), from: 1, now: now + 100)  // no time passed: no token
        #expect(core.addressBook.count == 11)
    }
}

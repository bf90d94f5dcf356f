import PeerNet
import SystemPackage

/// Why the wallet could not be opened or saved.
public enum WalletError: Error, Sendable, CustomStringConvertible {
    case unreadable(path: String, String)
    case unwritable(path: String, String)

    public var description: String {
        switch self {
        case .unreadable(let path, let why): return "cannot read the wallet \(path): \(why)"
        case .unwritable(let path, let why): return "cannot write the wallet \(path): \(why)"
        }
    }
}

/// A key wallet for the node (P2WPKH addresses), its keys in a text file of WIF lines.
public final class Wallet: @unchecked Sendable {
    public let path: String?
    public let network: NetworkPrefixes
    public private(set) var keys: [PrivateKey] = []

    /// Opens the wallet file at `path`, or starts one when there is no file; nil keeps keys in
    /// memory. A file that exists but cannot be read, or holds a line that is not a key of this
    /// network, is an error (``WalletError``): never an empty wallet that the next new address
    /// would write over.
    public init(path: String?, network: NetworkPrefixes) throws(WalletError) {
        self.path = path
        self.network = network
        guard let path else { return }
        let bytes: [UInt8]
        do {
            bytes = try SmallFile.read(FilePath(path), limit: 16 << 20)
        } catch Errno.noSuchFileOrDirectory {
            return
        } catch {
            throw .unreadable(path: path, "\(error)")
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw .unreadable(path: path, "not UTF-8 text")
        }
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.isEmpty {
            do {
                let (key, _) = try PrivateKey.fromWIF(String(line), network: network)
                keys.append(key)
            } catch {
                throw .unreadable(
                    path: path, "line \(number + 1) is not a WIF key for this network (\(error))")
            }
        }
    }

    /// Writes the keys crash-safely (temporary file, fsync, rename) and readable by the owner
    /// only (0600): a key handed out is never lost, nor shown to other users.
    func save() throws(WalletError) {
        guard let path else { return }
        let text = keys.map { $0.wif(network: network) + "\n" }.joined()
        do {
            try SmallFile.writeAtomically(Array(text.utf8), to: FilePath(path), permissions: .ownerReadWrite)
        } catch {
            throw .unwritable(path: path, "\(error)")
        }
    }

    /// A new key and its address.
    @discardableResult
    public func newAddress() throws(WalletError) -> String {
        let key = PrivateKey.generate()
        keys.append(key)
        try save()
        return Address.p2wpkh(key.publicKey()).string(network: network)
    }

    /// The first address (made when there is none).
    public func address() throws(WalletError) -> String {
        if let key = keys.first { return Address.p2wpkh(key.publicKey()).string(network: network) }
        return try newAddress()
    }

    var scripts: [[UInt8]: PrivateKey] {
        Dictionary(
            keys.map { (Address.p2wpkh($0.publicKey()).scriptPubKey, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Depth at which the wallet spends a coinbase output, as Core's wallet: 101 blocks (one
    /// more than consensus needs, so a one-block reorganisation cannot make the spend invalid).
    public static let coinbaseDepth = Consensus.coinbaseMaturity + 1

    /// One of the wallet's outputs, confirmed or in the mempool.
    public struct WalletCoin: Sendable {
        public let outpoint: OutPoint
        public let coin: Coin
        /// 0 while in the mempool.
        public let confirmations: Int
        /// Confirmed, or the wallet's own unconfirmed change (every input of its transaction is
        /// the wallet's): Core's "trusted".
        public let trusted: Bool
        /// A coinbase output short of ``Wallet/coinbaseDepth``.
        public let immature: Bool
    }

    /// Core's `getbalances` split, in satoshis.
    public struct Balances: Sendable, Equatable {
        /// Confirmed and mature, plus the wallet's own unconfirmed change.
        public var trusted: Int64 = 0
        /// Unconfirmed payments from others.
        public var untrustedPending: Int64 = 0
        /// Coinbase outputs not yet at depth 101.
        public var immature: Int64 = 0

        public init(trusted: Int64 = 0, untrustedPending: Int64 = 0, immature: Int64 = 0) {
            self.trusted = trusted
            self.untrustedPending = untrustedPending
            self.immature = immature
        }
    }

    /// Every output paying this wallet that nothing (confirmed or in the mempool) spends.
    public func walletCoins(chain: ChainState, mempool: Mempool) -> [WalletCoin] {
        let mine = scripts
        let spentInPool = Set(mempool.entries.values.flatMap { $0.transaction.inputs.map(\.previous) })
        var out: [WalletCoin] = []
        for (outpoint, coin) in chain.unspent
        where mine[coin.output.scriptPubKey] != nil && !spentInPool.contains(outpoint) {
            let depth = chain.height - coin.height + 1
            out.append(
                WalletCoin(
                    outpoint: outpoint, coin: coin, confirmations: depth, trusted: true,
                    immature: coin.isCoinbase && depth < Wallet.coinbaseDepth))
        }
        for entry in mempool.entries.values {
            let fromUs = entry.transaction.inputs.allSatisfy { input in
                guard let spent = mempool.coin(input.previous, chain: chain) else { return false }
                return mine[spent.output.scriptPubKey] != nil
            }
            for (index, output) in entry.transaction.outputs.enumerated()
            where mine[output.scriptPubKey] != nil {
                let outpoint = OutPoint(txid: entry.txid, index: UInt32(index))
                guard !spentInPool.contains(outpoint) else { continue }
                out.append(
                    WalletCoin(
                        outpoint: outpoint,
                        coin: Coin(output: output, height: chain.height + 1, isCoinbase: false),
                        confirmations: 0, trusted: fromUs, immature: false))
            }
        }
        return out
    }

    /// Coins a payment may spend, largest first: trusted and mature, and for unconfirmed change
    /// only while a child of it stays within the mempool's ancestor limit (Core's wallet keeps
    /// to the same limit).
    public func coins(chain: ChainState, mempool: Mempool) -> [(OutPoint, Coin)] {
        walletCoins(chain: chain, mempool: mempool).filter { coin in
            guard coin.trusted, !coin.immature else { return false }
            guard coin.confirmations == 0 else { return true }
            // The new transaction, its parent and the parent's in-pool ancestors.
            return mempool.ancestors(ofParents: [coin.outpoint.txid], limit: mempool.policy.ancestorCount - 1)
                != nil
        }
        .sorted {
            $0.coin.output.value != $1.coin.output.value
                ? $0.coin.output.value > $1.coin.output.value : $0.confirmations > $1.confirmations
        }
        .map { ($0.outpoint, $0.coin) }
    }

    /// Spendable satoshis (Core's `getbalance`: the trusted balance).
    public func balance(chain: ChainState, mempool: Mempool) -> Int64 {
        balances(chain: chain, mempool: mempool).trusted
    }

    public func balances(chain: ChainState, mempool: Mempool) -> Balances {
        var balances = Balances()
        for coin in walletCoins(chain: chain, mempool: mempool) {
            let value = coin.coin.output.value
            if coin.immature {
                balances.immature += value
            } else if coin.trusted {
                balances.trusted += value
            } else {
                balances.untrustedPending += value
            }
        }
        return balances
    }

    /// Core's fallback fee rate on regtest (`-fallbackfee`, 0.0002 BTC/kvB): 20 sat/vB.
    public static let defaultFeeRate: Int64 = 20

    /// A signed payment of `amount` to `address`, change back to this wallet, paying `feeRate`
    /// satoshis per virtual byte of the signed transaction (change below dust goes to the fee).
    public func pay(
        _ address: String, amount: Int64, feeRate: Int64 = Wallet.defaultFeeRate, chain: ChainState,
        mempool: Mempool
    ) throws -> Transaction {
        guard amount > 0, amount <= Consensus.maxMoney else {
            throw ValidationError.transaction("amount out of range")
        }
        let destination = try Address(address, network: network)
        guard let changeKey = keys.first else {
            throw ValidationError.transaction("insufficient funds (0 sat spendable)")
        }
        let changeScript = Address.p2wpkh(changeKey.publicKey()).scriptPubKey
        // P2WPKH sizes: 10.5 vB of overhead, 68 per input, 31 per output.
        let estimate = { (inputs: Int) in Int64(11 + 68 * inputs + 31 * 2) * feeRate }
        var selected: [(OutPoint, Coin)] = []
        var total: Int64 = 0
        let available = coins(chain: chain, mempool: mempool)
        for coin in available where total < amount + estimate(selected.count) {
            selected.append(coin)
            total += coin.1.output.value
        }
        guard total >= amount + estimate(selected.count) else {
            throw ValidationError.transaction(
                "insufficient funds (\(available.reduce(Int64(0)) { $0 + $1.1.output.value }) sat spendable)")
        }
        func build(fee: Int64) -> Transaction {
            var outputs = [TxOut(value: amount, scriptPubKey: destination.scriptPubKey)]
            let change = total - amount - fee
            if change >= 546 { outputs.append(TxOut(value: change, scriptPubKey: changeScript)) }
            return sign(
                Transaction(inputs: selected.map { TxIn(previous: $0.0) }, outputs: outputs),
                spending: selected)
        }
        // Sign with the estimate, then charge the rate on the signed size (signatures vary by a
        // byte or so).
        var transaction = build(fee: estimate(selected.count))
        let fee = Int64(transaction.virtualSize) * feeRate
        if total - amount >= fee { transaction = build(fee: fee) }
        return transaction
    }

    func sign(_ unsigned: Transaction, spending coins: [(OutPoint, Coin)]) -> Transaction {
        var transaction = unsigned
        let mine = scripts
        for (index, (_, coin)) in coins.enumerated() {
            guard let key = mine[coin.output.scriptPubKey] else { continue }
            let publicKey = key.publicKey()
            let code =
                [Opcode.dup, Opcode.hash160, 0x14] + publicKey.hash160 + [
                    Opcode.equalVerify, Opcode.checkSig,
                ]
            let hash = SigHash.witnessV0(
                transaction, input: index, scriptCode: code, amount: coin.output.value, type: 1)
            transaction.inputs[index].witness = [key.sign(hash: hash) + [1], publicKey.bytes]
        }
        return transaction
    }
}

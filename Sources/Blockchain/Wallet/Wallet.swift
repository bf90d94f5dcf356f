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

    /// Spendable coins: this wallet's, mature, not spent by a mempool transaction.
    public func coins(chain: ChainState, mempool: Mempool) -> [(OutPoint, Coin)] {
        let mine = scripts
        let spentInPool = Set(mempool.entries.values.flatMap { $0.transaction.inputs.map(\.previous) })
        return chain.unspent.filter { outpoint, coin in
            mine[coin.output.scriptPubKey] != nil && !spentInPool.contains(outpoint)
                && (!coin.isCoinbase || chain.height - coin.height + 1 >= Wallet.coinbaseDepth)
        }.sorted { $0.value.output.value > $1.value.output.value }.map { ($0.key, $0.value) }
    }

    public func balance(chain: ChainState, mempool: Mempool) -> Int64 {
        coins(chain: chain, mempool: mempool).reduce(0) { $0 + $1.1.output.value }
    }

    /// A signed payment of `amount` to `address`, change back to this wallet, `feeRate` sat/vB.
    public func pay(
        _ address: String, amount: Int64, feeRate: Int64 = 2, chain: ChainState, mempool: Mempool
    ) throws -> Transaction {
        let destination = try Address(address, network: network)
        var selected: [(OutPoint, Coin)] = []
        var total: Int64 = 0
        let fee = { (inputs: Int) in Int64(11 + 68 * inputs + 31 * 2) * feeRate }
        for coin in coins(chain: chain, mempool: mempool) where total < amount + fee(selected.count) {
            selected.append(coin)
            total += coin.1.output.value
        }
        guard total >= amount + fee(selected.count) else {
            throw ValidationError.transaction("insufficient funds (\(total) sat spendable)")
        }
        var outputs = [TxOut(value: amount, scriptPubKey: destination.scriptPubKey)]
        let change = total - amount - fee(selected.count)
        if change >= 546 {
            outputs.append(
                TxOut(value: change, scriptPubKey: Address.p2wpkh(keys[0].publicKey()).scriptPubKey))
        }
        var transaction = Transaction(inputs: selected.map { TxIn(previous: $0.0) }, outputs: outputs)
        let mine = scripts
        for (index, (_, coin)) in selected.enumerated() {
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

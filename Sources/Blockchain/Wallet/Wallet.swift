import PeerNet
import SystemPackage

/// A key wallet for the node (P2WPKH addresses), its keys in a text file of WIF lines.
public final class Wallet: @unchecked Sendable {
    public let path: String?
    public let network: NetworkPrefixes
    public private(set) var keys: [PrivateKey] = []

    /// Opens (or starts) the wallet file at `path`; nil keeps keys in memory.
    public init(path: String?, network: NetworkPrefixes) throws {
        self.path = path
        self.network = network
        if let path, let bytes = try? SmallFile.read(FilePath(path), limit: 16 << 20) {
            for line in String(decoding: bytes, as: UTF8.self).split(separator: "\n") {
                keys.append(try PrivateKey.fromWIF(String(line), network: network).0)
            }
        }
    }

    /// Writes the keys crash-safely (temporary file, fsync, rename): a key handed out is never lost.
    func save() throws {
        guard let path else { return }
        let text = keys.map { $0.wif(network: network) + "\n" }.joined()
        try SmallFile.writeAtomically(Array(text.utf8), to: FilePath(path))
    }

    /// A new key and its address.
    @discardableResult
    public func newAddress() throws -> String {
        let key = PrivateKey.generate()
        keys.append(key)
        try save()
        return Address.p2wpkh(key.publicKey()).string(network: network)
    }

    /// The first address (made when there is none).
    public func address() throws -> String {
        if let key = keys.first { return Address.p2wpkh(key.publicKey()).string(network: network) }
        return try newAddress()
    }

    var scripts: [[UInt8]: PrivateKey] {
        Dictionary(
            keys.map { (Address.p2wpkh($0.publicKey()).scriptPubKey, $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// Spendable coins: this wallet's, mature, not spent by a mempool transaction.
    public func coins(chain: ChainState, mempool: Mempool) -> [(OutPoint, Coin)] {
        let mine = scripts
        let spentInPool = Set(mempool.entries.values.flatMap { $0.transaction.inputs.map(\.previous) })
        return chain.unspent.filter { outpoint, coin in
            mine[coin.output.scriptPubKey] != nil && !spentInPool.contains(outpoint)
                && (!coin.isCoinbase || chain.height + 1 - coin.height >= Consensus.coinbaseMaturity)
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

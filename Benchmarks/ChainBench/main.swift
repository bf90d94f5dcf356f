import Blockchain
import Crypto
import Foundation

/// PeerStack's side of Benchmarks/chain.sh: ECDSA signs and verifies per second over the same
/// keys and messages as chain-c/reference.c, mining hash rate with the midstate (one thread and
/// all), and full validation of a regtest chain with a signed transaction in every block.
///   chain-bench KEYS SECONDS BLOCKS
let arguments = CommandLine.arguments
let keyCount = arguments.count > 1 ? Int(arguments[1]) ?? 1000 : 1000
let seconds = arguments.count > 2 ? Double(arguments[2]) ?? 2 : 2
let blockCount = arguments.count > 3 ? Int(arguments[3]) ?? 10_000 : 10_000

func derive(_ label: String, _ i: Int) -> [UInt8] {
    Array(
        SHA256.hash(
            data: Array(label.utf8) + [
                UInt8(i >> 24 & 0xff), UInt8(i >> 16 & 0xff), UInt8(i >> 8 & 0xff), UInt8(i & 0xff),
            ]))
}

func elapsed(since start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

let keys = (0..<keyCount).map { try! PrivateKey(bytes: derive("key", $0)) }
let messages = (0..<keyCount).map { derive("message", $0) }
let publicKeys = keys.map { $0.publicKey() }
var signatures = [[UInt8]](repeating: [], count: keyCount)
var signs = 0
var start = ContinuousClock.now
while elapsed(since: start) < seconds / 2 {
    for i in 0..<keyCount { signatures[i] = keys[i].sign(hash: messages[i]) }
    signs += keyCount
}
let signRate = Double(signs) / elapsed(since: start)
var verifies = 0
var bad = 0
start = ContinuousClock.now
while elapsed(since: start) < seconds / 2 {
    for i in 0..<keyCount where !publicKeys[i].verify(derSignature: signatures[i], hash: messages[i]) {
        bad += 1
    }
    verifies += keyCount
}
print(String(format: "peerstack-ecdsa %.0f %.0f %d", signRate, Double(verifies) / elapsed(since: start), bad))

guard blockCount > 0 else { exit(0) }

// Mining: a target no hash meets, so exactly `nonces` headers are hashed.
for threads in [1, ProcessInfo.processInfo.activeProcessorCount] {
    let nonces: UInt32 = 4_000_000
    var header = BlockHeader(
        version: 1, previous: .zero, merkleRoot: .zero, time: 0, bits: 0x0300_0001, nonce: UInt32.max - nonces
    )
    start = ContinuousClock.now
    _ = Miner.solve(&header, threads: threads)
    print(String(format: "peerstack-mining %d %.3f", threads, Double(nonces) / elapsed(since: start) / 1e6))
}

// Validation: a chain where every block after maturity spends the previous block's output.
let wallet = try! PrivateKey(bytes: derive("wallet", 0))
let publicKey = wallet.publicKey()
let script = Address.p2wpkh(publicKey).scriptPubKey
let code = [Opcode.dup, Opcode.hash160, 0x14] + publicKey.hash160 + [Opcode.equalVerify, Opcode.checkSig]
let now: UInt32 = 2_000_000_000
let builder = try! ChainState(parameters: .regtest, store: MemoryChainStore())
var blocks: [Block] = []
var time: UInt32 = 1_700_000_000
var spendable: [(OutPoint, Int64)] = []
var signed = 0
for height in 1...blockCount {
    time += 1
    var transactions: [Transaction] = []
    var fees: Int64 = 0
    if height > 100, !spendable.isEmpty {
        let (outpoint, value) = spendable.removeFirst()
        var tx = Transaction(
            inputs: [TxIn(previous: outpoint)], outputs: [TxOut(value: value - 1_000, scriptPubKey: script)])
        let hash = SigHash.witnessV0(tx, input: 0, scriptCode: code, amount: value, type: 1)
        tx.inputs[0].witness = [wallet.sign(hash: hash) + [1], publicKey.bytes]
        transactions = [tx]
        fees = 1_000
        signed += 1
    }
    let block = Miner.mine(chain: builder, transactions: transactions, fees: fees, payTo: script, time: time)
    guard case .tipChanged = builder.process(block, now: now) else { fatalError("block \(height) refused") }
    spendable.append(
        (OutPoint(txid: block.transactions[0].txid, index: 0), block.transactions[0].outputs[0].value))
    blocks.append(block)
}
let validator = try! ChainState(parameters: .regtest, store: MemoryChainStore())
start = ContinuousClock.now
for block in blocks {
    guard case .tipChanged = validator.process(block, now: now) else {
        fatalError("validation refused a block")
    }
}
let validation = elapsed(since: start)
print(
    String(
        format: "peerstack-validation %d %d %.3f %.0f", blockCount, signed, validation,
        Double(blockCount) / validation))

internal import COpenSSLSHA
import Dispatch
import Synchronization

/// Tells a running nonce search to give up (a new tip arrived, the node stops).
public final class MiningStop: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func stop() { flag.store(true, ordering: .relaxed) }
    public var isStopped: Bool { flag.load(ordering: .relaxed) }
}

/// Block templates and the proof-of-work search.
public enum Miner {
    /// The coinbase of a block at `height` paying `value` to `payTo` (BIP 34 height first), with
    /// the witness commitment when the block needs one.
    public static func coinbase(
        height: Int, value: Int64, payTo: [UInt8], extraNonce: UInt64 = 0, commitment: [UInt8]? = nil
    ) -> Transaction {
        var scriptSig: [UInt8] = []
        if height >= 1 && height <= 16 {
            scriptSig.append(UInt8(0x50 + height))
        } else {
            scriptSig.appendPush(ScriptNum.encode(Int64(height)))
        }
        scriptSig.appendPush(ScriptNum.encode(Int64(truncatingIfNeeded: extraNonce)))
        if scriptSig.count < 2 { scriptSig.append(0) }
        var outputs = [TxOut(value: value, scriptPubKey: payTo)]
        var witness: [[UInt8]] = []
        if let commitment {
            outputs.append(TxOut(value: 0, scriptPubKey: ChainState.commitmentHeader + commitment))
            witness = [[UInt8](repeating: 0, count: 32)]
        }
        return Transaction(
            version: 2, inputs: [TxIn(previous: .null, scriptSig: scriptSig, witness: witness)],
            outputs: outputs)
    }

    /// A block on the current tip with `transactions` (valid, parents first) and a coinbase
    /// taking subsidy and fees; its nonce still to be found.
    public static func template(
        chain: ChainState, transactions: [Transaction], fees: Int64, payTo: [UInt8], time: UInt32,
        extraNonce: UInt64 = 0
    ) -> Block {
        let tip = chain.tip
        let height = tip.height + 1
        let value = chain.parameters.subsidy(at: height) + fees
        var commitment: [UInt8]?
        if height >= chain.parameters.segwitHeight, transactions.contains(where: \.hasWitness) {
            commitment = ChainState.witnessCommitment(
                [Transaction(inputs: [], outputs: [])] + transactions, nonce: [UInt8](repeating: 0, count: 32)
            )
        }
        let coinbase = coinbase(
            height: height, value: value, payTo: payTo, extraNonce: extraNonce, commitment: commitment)
        let all = [coinbase] + transactions
        let header = BlockHeader(
            version: 0x2000_0000, previous: tip.hash, merkleRoot: Merkle.root(all.map(\.txid)).root,
            time: max(time, chain.medianTimePast(tip) + 1), bits: chain.nextBits(after: tip), nonce: 0)
        return Block(header: header, transactions: all)
    }

    /// Searches nonces on `threads` threads until the header meets its target; SHA-256 of the
    /// first 64 header bytes is computed once (the midstate, an OpenSSL SHA256_CTX) and copied for
    /// every nonce. Returns
    /// false when the 2³² nonces are exhausted or `stop` is set.
    public static func solve(_ header: inout BlockHeader, threads: Int, stop: MiningStop? = nil) -> Bool {
        guard let target = Target.expand(header.bits) else { return false }
        let bytes = header.serialized()
        var midstate = SHA256_CTX()
        SHA256_Init(&midstate)
        bytes.withUnsafeBytes { _ = SHA256_Update(&midstate, $0.baseAddress, 64) }
        let tail = Array(bytes[64..<76])
        let found = FoundNonce()
        let workers = max(1, threads)
        let start = header.nonce
        let base = midstate
        // The target as 32 little-endian bytes, compared from the most significant end.
        let targetBytes = (0..<32).map { UInt8(truncatingIfNeeded: (target >> (8 * $0)).limbs.0) }
        DispatchQueue.concurrentPerform(iterations: workers) { worker in
            var buffer = tail + [0, 0, 0, 0]
            var first = [UInt8](repeating: 0, count: 32)
            var second = [UInt8](repeating: 0, count: 32)
            var nonce = UInt64(start) + UInt64(worker)
            var checked = 0
            while nonce <= UInt64(UInt32.max) {
                let value = UInt32(nonce)
                buffer[12] = UInt8(value & 0xff)
                buffer[13] = UInt8((value >> 8) & 0xff)
                buffer[14] = UInt8((value >> 16) & 0xff)
                buffer[15] = UInt8(value >> 24)
                var context = base
                _ = SHA256_Update(&context, buffer, 16)
                _ = SHA256_Final(&first, &context)
                var outer = SHA256_CTX()
                _ = SHA256_Init(&outer)
                _ = SHA256_Update(&outer, first, 32)
                _ = SHA256_Final(&second, &outer)
                var meets = true
                for index in stride(from: 31, through: 0, by: -1) where second[index] != targetBytes[index] {
                    meets = second[index] < targetBytes[index]
                    break
                }
                if meets {
                    found.value.store(nonce, ordering: .relaxed)
                    return
                }
                checked += 1
                if checked & 0xfff == 0 {
                    if found.value.load(ordering: .relaxed) != UInt64.max { return }
                    if stop?.isStopped == true { return }
                }
                nonce += UInt64(workers)
            }
        }
        let nonce = found.value.load(ordering: .relaxed)
        guard nonce != UInt64.max else { return false }
        header.nonce = UInt32(nonce)
        return true
    }

    /// Mines one block on the tip: template, nonce search (a new extra nonce when the nonces run
    /// out). The block is returned, not processed.
    public static func mine(
        chain: ChainState, transactions: [Transaction] = [], fees: Int64 = 0, payTo: [UInt8], time: UInt32,
        threads: Int = 1
    ) -> Block {
        var extraNonce: UInt64 = 0
        while true {
            var block = template(
                chain: chain, transactions: transactions, fees: fees, payTo: payTo, time: time,
                extraNonce: extraNonce)
            if solve(&block.header, threads: threads) { return block }
            extraNonce += 1
        }
    }
}

final class FoundNonce: Sendable {
    let value = Atomic<UInt64>(UInt64.max)
}

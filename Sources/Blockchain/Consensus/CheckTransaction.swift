/// Why a transaction or block breaks the consensus rules (Core's reject reasons).
public enum ValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    case transaction(String)
    case block(String)
    case script(input: Int, ScriptError)

    public var description: String {
        switch self {
        case .transaction(let reason): return "invalid transaction: \(reason)"
        case .block(let reason): return "invalid block: \(reason)"
        case .script(let input, let error): return "input \(input): \(error)"
        }
    }
}

/// Context-free consensus checks (Core's `CheckTransaction` and `CheckBlock`).
public enum Consensus {
    public static let coin: Int64 = 100_000_000
    public static let maxMoney: Int64 = 21_000_000 * coin
    public static let maxBlockWeight = 4_000_000
    public static let maxBlockSigOpsCost = 80_000
    public static let witnessScaleFactor = 4
    public static let coinbaseMaturity = 100
    /// Blocks may be at most this far ahead of the node's clock.
    public static let maxFutureBlockTime: UInt32 = 2 * 60 * 60

    public static func checkTransaction(_ transaction: Transaction) throws(ValidationError) {
        guard !transaction.inputs.isEmpty else { throw .transaction("bad-txns-vin-empty") }
        guard !transaction.outputs.isEmpty else { throw .transaction("bad-txns-vout-empty") }
        guard transaction.serialized(witness: false).count * witnessScaleFactor <= maxBlockWeight else {
            throw .transaction("bad-txns-oversize")
        }
        var total: Int64 = 0
        for output in transaction.outputs {
            guard output.value >= 0 else { throw .transaction("bad-txns-vout-negative") }
            guard output.value <= maxMoney else { throw .transaction("bad-txns-vout-toolarge") }
            total += output.value
            guard total <= maxMoney else { throw .transaction("bad-txns-txouttotal-toolarge") }
        }
        var seen: Set<OutPoint> = []
        for input in transaction.inputs {
            guard seen.insert(input.previous).inserted else {
                throw .transaction("bad-txns-inputs-duplicate")
            }
        }
        if transaction.isCoinbase {
            let size = transaction.inputs[0].scriptSig.count
            guard size >= 2, size <= 100 else { throw .transaction("bad-cb-length") }
        } else {
            guard !transaction.inputs.contains(where: { $0.previous.isNull }) else {
                throw .transaction("bad-txns-prevout-null")
            }
        }
    }

    /// Legacy signature operations counted as Core's `GetSigOpCount(false)`.
    public static func legacySigOps(_ script: [UInt8]) -> Int {
        var count = 0
        var last: UInt8 = 0xff
        var parser = ScriptParser(script)
        while let element = parser.next() {
            switch element.opcode {
            case Opcode.checkSig, Opcode.checkSigVerify: count += 1
            case Opcode.checkMultiSig, Opcode.checkMultiSigVerify:
                count +=
                    last >= Opcode.op1 && last <= Opcode.op16
                    ? Int(last) - 0x50 : Interpreter.maxPubkeysPerMultisig
            default: break
            }
            last = element.opcode
        }
        return count
    }

    /// Checks a block without its chain (Core's `CheckBlockHeader` + `CheckBlock`): proof of
    /// work under `powLimit`, time at most 2 hours past `now`, a coinbase first and only there,
    /// the merkle root (not mutated), size, weight and legacy sigops limits, each transaction.
    public static func checkBlock(
        _ block: Block, powLimit: UInt256, now: UInt32, checkProofOfWork: Bool = true
    ) throws(ValidationError) {
        if checkProofOfWork, !Target.isMet(by: block.hash, bits: block.header.bits, limit: powLimit) {
            throw .block("high-hash")
        }
        guard block.header.time <= now &+ maxFutureBlockTime || now > UInt32.max - maxFutureBlockTime else {
            throw .block("time-too-new")
        }
        let (root, mutated) = block.merkleRoot
        guard root == block.header.merkleRoot else { throw .block("bad-txnmrklroot") }
        guard !mutated else { throw .block("bad-txns-duplicate") }
        guard !block.transactions.isEmpty,
            block.transactions.count * witnessScaleFactor <= maxBlockWeight,
            block.serialized(witness: false).count * witnessScaleFactor <= maxBlockWeight
        else { throw .block("bad-blk-length") }
        guard block.transactions[0].isCoinbase else { throw .block("bad-cb-missing") }
        guard !block.transactions.dropFirst().contains(where: \.isCoinbase) else {
            throw .block("bad-cb-multiple")
        }
        var sigops = 0
        for transaction in block.transactions {
            do {
                try checkTransaction(transaction)
            } catch {
                throw .block("bad-txns (\(error))")
            }
            for input in transaction.inputs { sigops += legacySigOps(input.scriptSig) }
            for output in transaction.outputs { sigops += legacySigOps(output.scriptPubKey) }
        }
        guard sigops * witnessScaleFactor <= maxBlockSigOpsCost else { throw .block("bad-blk-sigops") }
    }
}

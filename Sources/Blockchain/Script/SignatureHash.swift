/// Signature hash types (the last byte of a signature).
public enum SigHash {
    public static let all: UInt8 = 1
    public static let none: UInt8 = 2
    public static let single: UInt8 = 3
    public static let anyoneCanPay: UInt8 = 0x80

    /// The legacy hash (Core's `SignatureHash` for `SigVersion::BASE`): the transaction with
    /// other inputs' scripts blanked, `scriptCode` (without OP_CODESEPARATORs) in this input,
    /// outputs and sequences per the type, and the type appended. Keeps Satoshi's quirk: an
    /// input past the outputs under SIGHASH_SINGLE (or past the inputs) hashes to 1.
    public static func legacy(_ transaction: Transaction, input: Int, scriptCode: [UInt8], type: UInt32)
        -> [UInt8]
    {
        let one = [1] + [UInt8](repeating: 0, count: 31)
        guard input < transaction.inputs.count else { return one }
        let base = type & 0x1f
        if base == UInt32(single), input >= transaction.outputs.count { return one }
        let anyone = type & UInt32(anyoneCanPay) != 0
        var code: [UInt8] = []
        var parser = ScriptParser(scriptCode)
        var copyFrom = 0
        while let element = parser.next() {
            if element.opcode == Opcode.codeSeparator {
                code += scriptCode[copyFrom..<element.offset]
                copyFrom = element.offset + 1
            }
        }
        code += scriptCode[copyFrom...]

        var writer = ByteWriter(capacity: 256)
        writer.littleEndian(transaction.version)
        let inputs = anyone ? [input] : Array(transaction.inputs.indices)
        writer.compactSize(UInt64(inputs.count))
        for index in inputs {
            let txIn = transaction.inputs[index]
            writer.append(txIn.previous.txid.bytes)
            writer.littleEndian(txIn.previous.index)
            writer.varBytes(index == input ? code : [])
            let blank = index != input && (base == UInt32(none) || base == UInt32(single))
            writer.littleEndian(blank ? 0 : txIn.sequence)
        }
        let outputCount =
            base == UInt32(none) ? 0 : base == UInt32(single) ? input + 1 : transaction.outputs.count
        writer.compactSize(UInt64(outputCount))
        for index in 0..<outputCount {
            if base == UInt32(single), index != input {
                writer.littleEndian(Int64(-1))
                writer.varBytes([UInt8]())
            } else {
                writer.littleEndian(transaction.outputs[index].value)
                writer.varBytes(transaction.outputs[index].scriptPubKey)
            }
        }
        writer.littleEndian(transaction.lockTime)
        writer.littleEndian(type)
        return Hash256.doubleSHA256(writer.bytes).bytes
    }

    /// BIP 143's hash for segwit v0 inputs, which commits to the amount spent.
    public static func witnessV0(
        _ transaction: Transaction, input: Int, scriptCode: [UInt8], amount: Int64, type: UInt32
    ) -> [UInt8] {
        let base = type & 0x1f
        let anyone = type & UInt32(anyoneCanPay) != 0
        let zero = [UInt8](repeating: 0, count: 32)
        var prevouts = ByteWriter()
        var sequences = ByteWriter()
        for txIn in transaction.inputs {
            prevouts.append(txIn.previous.txid.bytes)
            prevouts.littleEndian(txIn.previous.index)
            sequences.littleEndian(txIn.sequence)
        }
        let hashPrevouts = anyone ? zero : Hash256.doubleSHA256(prevouts.bytes).bytes
        let hashSequence =
            anyone || base == UInt32(single) || base == UInt32(none)
            ? zero : Hash256.doubleSHA256(sequences.bytes).bytes
        var hashOutputs = zero
        if base != UInt32(single), base != UInt32(none) {
            var outputs = ByteWriter()
            for output in transaction.outputs {
                outputs.littleEndian(output.value)
                outputs.varBytes(output.scriptPubKey)
            }
            hashOutputs = Hash256.doubleSHA256(outputs.bytes).bytes
        } else if base == UInt32(single), input < transaction.outputs.count {
            var outputs = ByteWriter()
            outputs.littleEndian(transaction.outputs[input].value)
            outputs.varBytes(transaction.outputs[input].scriptPubKey)
            hashOutputs = Hash256.doubleSHA256(outputs.bytes).bytes
        }
        var writer = ByteWriter(capacity: 256)
        writer.littleEndian(transaction.version)
        writer.append(hashPrevouts)
        writer.append(hashSequence)
        let txIn = transaction.inputs[input]
        writer.append(txIn.previous.txid.bytes)
        writer.littleEndian(txIn.previous.index)
        writer.varBytes(scriptCode)
        writer.littleEndian(amount)
        writer.littleEndian(txIn.sequence)
        writer.append(hashOutputs)
        writer.littleEndian(transaction.lockTime)
        writer.littleEndian(type)
        return Hash256.doubleSHA256(writer.bytes).bytes
    }
}

/// Checks signatures of one input of a transaction (Core's `TransactionSignatureChecker`).
public struct TransactionSignatureChecker: SignatureChecker {
    public let transaction: Transaction
    public let input: Int
    /// The value of the output spent (BIP 143 signs it).
    public let amount: Int64

    public init(transaction: Transaction, input: Int, amount: Int64) {
        self.transaction = transaction
        self.input = input
        self.amount = amount
    }

    public func checkSignature(
        _ signature: [UInt8], publicKey: [UInt8], scriptCode: [UInt8], version: SigVersion
    ) -> Bool {
        guard let type = signature.last, let key = try? PublicKey(bytes: publicKey) else { return false }
        let hash: [UInt8]
        switch version {
        case .base:
            hash = SigHash.legacy(transaction, input: input, scriptCode: scriptCode, type: UInt32(type))
        case .witnessV0:
            guard input < transaction.inputs.count else { return false }
            hash = SigHash.witnessV0(
                transaction, input: input, scriptCode: scriptCode, amount: amount, type: UInt32(type))
        }
        return key.verify(derSignature: Array(signature.dropLast()), hash: hash)
    }
}

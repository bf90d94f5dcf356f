/// A reference to an output of an earlier transaction.
public struct OutPoint: Hashable, Sendable {
    public var txid: Hash256
    public var index: UInt32

    public init(txid: Hash256, index: UInt32) {
        self.txid = txid
        self.index = index
    }

    /// The null outpoint of a coinbase input.
    public static let null = OutPoint(txid: .zero, index: 0xffff_ffff)
    public var isNull: Bool { self == .null }
}

public struct TxIn: Hashable, Sendable {
    public var previous: OutPoint
    public var scriptSig: [UInt8]
    public var sequence: UInt32
    /// BIP 141 witness stack (empty for legacy inputs).
    public var witness: [[UInt8]]

    public init(
        previous: OutPoint, scriptSig: [UInt8] = [], sequence: UInt32 = 0xffff_ffff, witness: [[UInt8]] = []
    ) {
        self.previous = previous
        self.scriptSig = scriptSig
        self.sequence = sequence
        self.witness = witness
    }
}

public struct TxOut: Hashable, Sendable {
    /// Satoshis.
    public var value: Int64
    public var scriptPubKey: [UInt8]

    public init(value: Int64, scriptPubKey: [UInt8]) {
        self.value = value
        self.scriptPubKey = scriptPubKey
    }
}

/// A transaction in Bitcoin's serialization: legacy, or BIP 144 segwit (marker 0x00, flag 0x01,
/// witnesses after the outputs) when any input has a witness.
public struct Transaction: Hashable, Sendable {
    public var version: Int32
    public var inputs: [TxIn]
    public var outputs: [TxOut]
    public var lockTime: UInt32

    /// Largest transaction parsed (the block weight limit in bytes).
    public static let maxSize = 4_000_000

    public init(version: Int32 = 2, inputs: [TxIn], outputs: [TxOut], lockTime: UInt32 = 0) {
        self.version = version
        self.inputs = inputs
        self.outputs = outputs
        self.lockTime = lockTime
    }

    public var hasWitness: Bool { inputs.contains { !$0.witness.isEmpty } }
    public var isCoinbase: Bool { inputs.count == 1 && inputs[0].previous.isNull }

    /// The bytes: with witnesses (BIP 144) when there are any and `witness` is true.
    public func serialized(witness: Bool = true) -> [UInt8] {
        var writer = ByteWriter(capacity: 256)
        write(to: &writer, witness: witness)
        return writer.bytes
    }

    public func write(to writer: inout ByteWriter, witness: Bool = true) {
        let segwit = witness && hasWitness
        writer.littleEndian(version)
        if segwit { writer.append([0x00, 0x01]) }
        writer.compactSize(UInt64(inputs.count))
        for input in inputs {
            writer.append(input.previous.txid.bytes)
            writer.littleEndian(input.previous.index)
            writer.varBytes(input.scriptSig)
            writer.littleEndian(input.sequence)
        }
        writer.compactSize(UInt64(outputs.count))
        for output in outputs {
            writer.littleEndian(output.value)
            writer.varBytes(output.scriptPubKey)
        }
        if segwit {
            for input in inputs {
                writer.compactSize(UInt64(input.witness.count))
                for item in input.witness { writer.varBytes(item) }
            }
        }
        writer.littleEndian(lockTime)
    }

    /// The txid: double SHA-256 of the serialization without witnesses.
    public var txid: Hash256 { Hash256.doubleSHA256(serialized(witness: false)) }
    /// The wtxid: double SHA-256 with witnesses (equal to the txid without them).
    public var wtxid: Hash256 { Hash256.doubleSHA256(serialized(witness: true)) }

    /// BIP 141 weight: base size × 3 + total size.
    public var weight: Int { serialized(witness: false).count * 3 + serialized(witness: true).count }
    public var virtualSize: Int { (weight + 3) / 4 }

    /// Parses one whole transaction.
    public init(bytes: [UInt8]) throws(BlockchainError) {
        var reader = ByteReader(bytes)
        self = try Transaction(from: &reader)
        guard reader.atEnd else { throw .trailingBytes(reader.remaining, offset: reader.offset) }
    }

    /// Parses a transaction at the reader's position (as Bitcoin Core's `UnserializeTransaction`:
    /// an empty input list followed by a non-zero flag byte starts the extended format).
    public init(from reader: inout ByteReader) throws(BlockchainError) {
        version = try reader.littleEndian(Int32.self, "version")
        var flags: UInt8 = 0
        let countOffset = reader.offset
        inputs = try Self.readInputs(&reader)
        if inputs.isEmpty {
            flags = try reader.uint8("segwit flag")
            guard flags != 0 else {
                throw .invalid(
                    "transaction with no inputs (or a segwit marker with flag 0)", offset: countOffset)
            }
            inputs = try Self.readInputs(&reader)
            outputs = try Self.readOutputs(&reader)
        } else {
            outputs = try Self.readOutputs(&reader)
        }
        if flags & 1 != 0 {
            flags &= ~1
            for index in inputs.indices {
                let count = try reader.compactSize("witness item count", limit: UInt64(reader.remaining))
                var items: [[UInt8]] = []
                for _ in 0..<count { items.append(try reader.varBytes("witness item")) }
                inputs[index].witness = items
            }
            guard inputs.contains(where: { !$0.witness.isEmpty }) else {
                throw .invalid("superfluous witness record", offset: reader.offset)
            }
        }
        guard flags == 0 else {
            throw .invalid("unknown transaction optional data (flag \(flags))", offset: countOffset)
        }
        lockTime = try reader.littleEndian(UInt32.self, "lock time")
    }

    private static func readInputs(_ reader: inout ByteReader) throws(BlockchainError) -> [TxIn] {
        // Each input takes at least 41 bytes: bound the count before allocating.
        let count = try reader.compactSize("input count", limit: UInt64(reader.remaining / 41))
        var inputs: [TxIn] = []
        inputs.reserveCapacity(Int(count))
        for _ in 0..<count {
            let txid = try reader.hash("previous txid")
            let index = try reader.littleEndian(UInt32.self, "previous output index")
            let script = try reader.varBytes("scriptSig")
            let sequence = try reader.littleEndian(UInt32.self, "sequence")
            inputs.append(
                TxIn(previous: OutPoint(txid: txid, index: index), scriptSig: script, sequence: sequence))
        }
        return inputs
    }

    private static func readOutputs(_ reader: inout ByteReader) throws(BlockchainError) -> [TxOut] {
        let count = try reader.compactSize("output count", limit: UInt64(reader.remaining / 9))
        var outputs: [TxOut] = []
        outputs.reserveCapacity(Int(count))
        for _ in 0..<count {
            let value = try reader.littleEndian(Int64.self, "output value")
            outputs.append(TxOut(value: value, scriptPubKey: try reader.varBytes("scriptPubKey")))
        }
        return outputs
    }
}

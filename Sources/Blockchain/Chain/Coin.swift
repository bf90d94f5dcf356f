/// An unspent output with where it was created (for coinbase maturity and undo).
public struct Coin: Hashable, Sendable {
    public var output: TxOut
    public var height: Int
    public var isCoinbase: Bool

    public init(output: TxOut, height: Int, isCoinbase: Bool) {
        self.output = output
        self.height = height
        self.isCoinbase = isCoinbase
    }

    func write(to writer: inout ByteWriter) {
        writer.littleEndian(output.value)
        writer.varBytes(output.scriptPubKey)
        writer.littleEndian(UInt32(height))
        writer.append([isCoinbase ? 1 : 0])
    }

    init(from reader: inout ByteReader) throws(BlockchainError) {
        let value = try reader.littleEndian(Int64.self, "coin value")
        let script = try reader.varBytes("coin script")
        let height = Int(try reader.littleEndian(UInt32.self, "coin height"))
        let coinbase = try reader.uint8("coin flag") != 0
        self.init(output: TxOut(value: value, scriptPubKey: script), height: height, isCoinbase: coinbase)
    }

    public var serialized: [UInt8] {
        var writer = ByteWriter()
        write(to: &writer)
        return writer.bytes
    }

    public init(bytes: [UInt8]) throws(BlockchainError) {
        var reader = ByteReader(bytes)
        try self.init(from: &reader)
    }
}

/// What connecting a block spent, to put back when it is disconnected.
public struct BlockUndo: Hashable, Sendable {
    public var spent: [OutPoint: Coin]

    public init(spent: [OutPoint: Coin] = [:]) { self.spent = spent }

    public var serialized: [UInt8] {
        var writer = ByteWriter()
        writer.compactSize(UInt64(spent.count))
        for (outpoint, coin) in spent.sorted(by: {
            $0.key.txid != $1.key.txid ? $0.key.txid < $1.key.txid : $0.key.index < $1.key.index
        }) {
            writer.append(outpoint.txid.bytes)
            writer.littleEndian(outpoint.index)
            coin.write(to: &writer)
        }
        return writer.bytes
    }

    public init(bytes: [UInt8]) throws(BlockchainError) {
        var reader = ByteReader(bytes)
        let count = try reader.compactSize("undo count", limit: UInt64(bytes.count / 49 + 1))
        var spent: [OutPoint: Coin] = [:]
        for _ in 0..<count {
            let txid = try reader.hash("undo txid")
            let index = try reader.littleEndian(UInt32.self, "undo index")
            spent[OutPoint(txid: txid, index: index)] = try Coin(from: &reader)
        }
        self.spent = spent
    }
}

/// The 80-byte block header.
public struct BlockHeader: Hashable, Sendable {
    public var version: Int32
    public var previous: Hash256
    public var merkleRoot: Hash256
    public var time: UInt32
    /// The target in compact form (see ``Target``).
    public var bits: UInt32
    public var nonce: UInt32

    public static let size = 80

    public init(
        version: Int32, previous: Hash256, merkleRoot: Hash256, time: UInt32, bits: UInt32, nonce: UInt32
    ) {
        self.version = version
        self.previous = previous
        self.merkleRoot = merkleRoot
        self.time = time
        self.bits = bits
        self.nonce = nonce
    }

    public func serialized() -> [UInt8] {
        var writer = ByteWriter(capacity: 80)
        write(to: &writer)
        return writer.bytes
    }

    public func write(to writer: inout ByteWriter) {
        writer.littleEndian(version)
        writer.append(previous.bytes)
        writer.append(merkleRoot.bytes)
        writer.littleEndian(time)
        writer.littleEndian(bits)
        writer.littleEndian(nonce)
    }

    public init(from reader: inout ByteReader) throws(BlockchainError) {
        version = try reader.littleEndian(Int32.self, "block version")
        previous = try reader.hash("previous block hash")
        merkleRoot = try reader.hash("merkle root")
        time = try reader.littleEndian(UInt32.self, "block time")
        bits = try reader.littleEndian(UInt32.self, "bits")
        nonce = try reader.littleEndian(UInt32.self, "nonce")
    }

    public init(bytes: [UInt8]) throws(BlockchainError) {
        var reader = ByteReader(bytes)
        self = try BlockHeader(from: &reader)
        guard reader.atEnd else { throw .trailingBytes(reader.remaining, offset: reader.offset) }
    }

    /// The block hash: double SHA-256 of the header.
    public var hash: Hash256 { Hash256.doubleSHA256(serialized()) }
}

/// A block: header and transactions (the first one the coinbase).
public struct Block: Hashable, Sendable {
    public var header: BlockHeader
    public var transactions: [Transaction]

    /// Largest serialized block parsed (BIP 141's weight limit bounds it at 4 MB).
    public static let maxSize = 4_000_000

    public init(header: BlockHeader, transactions: [Transaction]) {
        self.header = header
        self.transactions = transactions
    }

    public var hash: Hash256 { header.hash }

    public func serialized(witness: Bool = true) -> [UInt8] {
        var writer = ByteWriter(capacity: 1024)
        header.write(to: &writer)
        writer.compactSize(UInt64(transactions.count))
        for transaction in transactions { transaction.write(to: &writer, witness: witness) }
        return writer.bytes
    }

    public init(bytes: [UInt8]) throws(BlockchainError) {
        guard bytes.count <= Self.maxSize else { throw .tooLarge("block of \(bytes.count) bytes", offset: 0) }
        var reader = ByteReader(bytes)
        header = try BlockHeader(from: &reader)
        // A transaction takes at least 60 bytes.
        let count = try reader.compactSize("transaction count", limit: UInt64(reader.remaining / 60))
        var transactions: [Transaction] = []
        transactions.reserveCapacity(Int(count))
        for _ in 0..<count { transactions.append(try Transaction(from: &reader)) }
        self.transactions = transactions
        guard reader.atEnd else { throw .trailingBytes(reader.remaining, offset: reader.offset) }
    }

    /// BIP 141 block weight.
    public var weight: Int { serialized(witness: false).count * 3 + serialized(witness: true).count }

    /// The merkle root of the txids, and whether the tree is mutated (CVE-2012-2459: two equal
    /// hashes side by side, which lets a different transaction list give the same root).
    public var merkleRoot: (root: Hash256, mutated: Bool) { Merkle.root(transactions.map(\.txid)) }
}

/// Bitcoin's merkle tree: pairs hashed with double SHA-256, an odd last hash paired with itself.
public enum Merkle {
    public static func root(_ leaves: [Hash256]) -> (root: Hash256, mutated: Bool) {
        guard !leaves.isEmpty else { return (.zero, false) }
        var level = leaves
        var mutated = false
        while level.count > 1 {
            var next: [Hash256] = []
            next.reserveCapacity((level.count + 1) / 2)
            var index = 0
            while index < level.count {
                let left = level[index]
                let right = index + 1 < level.count ? level[index + 1] : left
                if index + 1 < level.count, left == right { mutated = true }
                next.append(Hash256.doubleSHA256(left.bytes + right.bytes))
                index += 2
            }
            level = next
        }
        return (level[0], mutated)
    }
}

import Multiformats
import Synchronization

/// Where the importer puts blocks. Implementations are safe to call from many threads at once
/// (the importer hashes and stores leaves on all cores).
public protocol BlockSink: Sendable {
    func put(_ cid: CID, _ bytes: [UInt8]) throws
    /// Stores a block given as consecutive pieces (a leaf's frame and the chunk in the read
    /// buffer), so that a store writing to files need not join them first.
    func put(_ cid: CID, parts: [UnsafeRawBufferPointer]) throws
}

extension BlockSink {
    public func put(_ cid: CID, parts: [UnsafeRawBufferPointer]) throws {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(parts.reduce(0) { $0 + $1.count })
        for part in parts { bytes.append(contentsOf: part) }
        try put(cid, bytes)
    }
}

/// Where the exporter and CAR writer read blocks from. `block(_:)` returns the stored bytes,
/// not yet checked against the CID; readers verify (see ``verifiedBlock(_:from:)``).
public protocol BlockSource: Sendable {
    func block(_ cid: CID) throws -> [UInt8]
    func has(_ cid: CID) -> Bool
    /// The stored block's size, nil when it is not here (Bitswap answers want-haves by it
    /// without reading the block).
    func size(_ cid: CID) -> Int?
}

extension BlockSource {
    public func size(_ cid: CID) -> Int? { try? block(cid).count }

    /// The block for `cid`, checked against its hash; identity CIDs carry their bytes inline.
    public func verifiedBlock(_ cid: CID) throws -> [UInt8] {
        if cid.multihash.code == Multihash.Function.identity.rawValue { return cid.multihash.digest }
        let bytes = try block(cid)
        guard bytes.count <= DagPBNode.maxBlockSize else {
            throw IPFSError.blockTooLarge(cid, size: bytes.count)
        }
        guard let function = cid.multihash.function, function != .identity else {
            throw IPFSError.unsupported("hash function 0x\(String(cid.multihash.code, radix: 16)) of \(cid)")
        }
        guard Multihash.hash(bytes, with: function) == cid.multihash else {
            throw IPFSError.hashMismatch(cid)
        }
        return bytes
    }
}

/// Blocks in memory, for tests and `--only-hash` runs that still need the DAG.
public final class MemoryBlockstore: BlockSink, BlockSource {
    private let blocks = Mutex<[Multihash: [UInt8]]>([:])

    public init() {}

    public func put(_ cid: CID, _ bytes: [UInt8]) {
        blocks.withLock { $0[cid.multihash] = bytes }
    }

    public func block(_ cid: CID) throws -> [UInt8] {
        guard let bytes = blocks.withLock({ $0[cid.multihash] }) else { throw IPFSError.missingBlock(cid) }
        return bytes
    }

    public func has(_ cid: CID) -> Bool { blocks.withLock { $0[cid.multihash] != nil } }

    public var count: Int { blocks.withLock { $0.count } }

    /// Replaces a block's bytes without checking them (tests of corruption handling).
    public func corrupt(_ cid: CID, with bytes: [UInt8]) { blocks.withLock { $0[cid.multihash] = bytes } }
}

import Crypto

/// BEP 52's per-file merkle trees: each leaf is the SHA-256 of a 16 KiB block of the file (the
/// last may be shorter), each node the SHA-256 of its two children, and the leaves are padded
/// with zero hashes to a power of two. The root is the file's `pieces root`; the layer whose
/// nodes each cover one piece is its entry in `piece layers`.
public enum MerkleTree {
    /// Bytes per leaf (BEP 52).
    public static let blockSize = 16_384
    /// Bytes per hash.
    public static let hashSize = 32

    /// The SHA-256 of a block's bytes: a leaf.
    public static func leaf(_ block: some Sequence<UInt8>) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: Array(block))
        return Array(hasher.finalize())
    }

    /// A node's hash from its two children.
    public static func parent(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: left)
        hasher.update(data: right)
        return Array(hasher.finalize())
    }

    /// The hash of a subtree of zero leaves `height` levels tall (height 0: the zero leaf).
    public static func padHash(height: Int) -> [UInt8] {
        var hash = [UInt8](repeating: 0, count: hashSize)
        for _ in 0..<max(0, height) { hash = parent(hash, hash) }
        return hash
    }

    /// The smallest power of two at least `count` (1 for 0).
    static func width(_ count: Int) -> Int {
        var width = 1
        while width < count { width <<= 1 }
        return width
    }

    /// The root above a layer of nodes at `height` (0: leaves), padded to a power of two with
    /// pad hashes of that height.
    public static func root(layer: [[UInt8]], height: Int) -> [UInt8] {
        root(layer: layer, paddedTo: layer.count, height: height)
    }

    /// A file's piece layer from its leaves: one node per piece of `pieceLength` bytes (a power
    /// of two, at least 16 KiB), the last piece's leaves padded with zero hashes.
    public static func pieceLayer(leaves: [[UInt8]], pieceLength: Int) -> [[UInt8]] {
        let perPiece = max(1, pieceLength / blockSize)
        return stride(from: 0, to: leaves.count, by: perPiece).map { start in
            var piece = Array(leaves[start..<min(start + perPiece, leaves.count)])
            while piece.count < perPiece { piece.append(padHash(height: 0)) }
            return root(layer: piece, height: 0)
        }
    }

    /// The height of the piece layer above the leaves.
    public static func pieceHeight(pieceLength: Int) -> Int {
        var height = 0
        while (blockSize << height) < pieceLength { height += 1 }
        return height
    }

    /// A file's `pieces root` from its leaves.
    public static func root(leaves: [[UInt8]]) -> [UInt8] { root(layer: leaves, height: 0) }

    /// The root a piece layer implies (BEP 52: a file's layer is checked against its root).
    public static func root(pieceLayer: [[UInt8]], pieceLength: Int) -> [UInt8] {
        root(layer: pieceLayer, height: pieceHeight(pieceLength: pieceLength))
    }

    /// log2 of a power of two (the height of a subtree of that many nodes).
    static func log2(_ powerOfTwo: Int) -> Int { max(0, powerOfTwo).trailingZeroBitCount }

    /// Every layer from `layer` (nodes at `height`, padded with pad hashes to `width`, which is
    /// rounded up to a power of two) up to the root: the first is the padded layer, the last
    /// holds the root alone.
    public static func layers(above layer: [[UInt8]], height: Int, paddedTo width: Int) -> [[[UInt8]]] {
        var nodes = layer
        let pad = padHash(height: height)
        let target = max(self.width(width), self.width(layer.count))
        nodes.reserveCapacity(target)
        while nodes.count < target { nodes.append(pad) }
        var result = [nodes]
        while nodes.count > 1 {
            var next: [[UInt8]] = []
            next.reserveCapacity(nodes.count / 2)
            for index in stride(from: 0, to: nodes.count, by: 2) {
                next.append(parent(nodes[index], nodes[index + 1]))
            }
            nodes = next
            result.append(nodes)
        }
        return result
    }

    /// The root above `layer` (nodes at `height`) padded with pad hashes to `width` nodes.
    public static func root(layer: [[UInt8]], paddedTo width: Int, height: Int = 0) -> [UInt8] {
        guard !layer.isEmpty else { return padHash(height: height + log2(self.width(width))) }
        return layers(above: layer, height: height, paddedTo: width).last?.first ?? []
    }
}

/// Hashes a piece's data into BEP 52 leaves as it streams past: SHA-256 per 16 KiB block
/// (the last may be shorter), bytes past `dataLength` (the padding after a file) ignored.
struct LeafHasher {
    private(set) var leaves: [[UInt8]] = []
    private var block = SHA256()
    private var inBlock = 0
    private var remaining: Int

    init(dataLength: Int) {
        remaining = max(0, dataLength)
        leaves.reserveCapacity((remaining + MerkleTree.blockSize - 1) / MerkleTree.blockSize)
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        var rest = UnsafeRawBufferPointer(rebasing: bytes[0..<min(bytes.count, remaining)])
        remaining -= rest.count
        while !rest.isEmpty {
            let take = min(MerkleTree.blockSize - inBlock, rest.count)
            block.update(bufferPointer: UnsafeRawBufferPointer(rebasing: rest[0..<take]))
            inBlock += take
            if inBlock == MerkleTree.blockSize { finishBlock() }
            rest = UnsafeRawBufferPointer(rebasing: rest[take...])
        }
    }

    private mutating func finishBlock() {
        leaves.append(Array(block.finalize()))
        block = SHA256()
        inBlock = 0
    }

    /// The leaves of everything fed.
    mutating func finalize() -> [[UInt8]] {
        if inBlock > 0 { finishBlock() }
        return leaves
    }
}

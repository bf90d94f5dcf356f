import Crypto
import Multiformats

/// eMule's Advanced Intelligent Corruption Handling hash: a SHA-1 tree whose leaves are the
/// 184,320-byte blocks of each part (the last block of a part is shorter; blocks never cross a
/// part boundary) and whose root goes into links as `h=` (base32). Above the parts, a node's
/// data splits on part boundaries, within a part on block boundaries; a left branch takes the
/// larger half when the count is odd, a right branch the smaller (eMule's SHAHashSet rule), so
/// any 180 KiB block can be verified against the root with one path of sibling hashes.
public struct AICHHasher: Sendable {
    public static let blockSize = 184_320

    private var leaves: [[UInt8]] = []
    private var block = Insecure.SHA1()
    private var inBlock = 0
    private var inPart = 0
    public private(set) var size: UInt64 = 0

    public init() {}

    public mutating func update(_ bytes: some Collection<UInt8>) {
        var rest = bytes[...]
        while !rest.isEmpty {
            let limit = min(Self.blockSize - inBlock, ED2KHasher.partSize - inPart)
            let take = min(limit, rest.count)
            let chunk = rest.prefix(take)
            block.update(data: Array(chunk))
            rest = rest.dropFirst(take)
            inBlock += take
            inPart += take
            size += UInt64(take)
            if inBlock == Self.blockSize || inPart == ED2KHasher.partSize { closeBlock() }
            if inPart == ED2KHasher.partSize { inPart = 0 }
        }
    }

    private mutating func closeBlock() {
        leaves.append(Array(block.finalize()))
        block = Insecure.SHA1()
        inBlock = 0
    }

    /// The root hash (20 bytes). An empty input hashes to SHA-1 of nothing.
    public mutating func finalize() -> [UInt8] { finalizeTree().root }

    /// The whole tree: every block's hash and the root.
    public mutating func finalizeTree() -> AICHTree {
        if inBlock > 0 || leaves.isEmpty { closeBlock() }
        return AICHTree(size: size, leaves: leaves)
    }

    static func base(_ size: UInt64) -> UInt64 {
        size <= UInt64(ED2KHasher.partSize) ? UInt64(blockSize) : UInt64(ED2KHasher.partSize)
    }

    /// The hash of a node covering `size` bytes, taking its leaves in order from `next`.
    static func node(size: UInt64, left: Bool, base: UInt64, leaves: [[UInt8]], next: inout Int) -> [UInt8] {
        guard size > base else {
            defer { next += 1 }
            return next < leaves.count ? leaves[next] : Array(Insecure.SHA1.hash(data: [UInt8]()))
        }
        let blocks = (size + base - 1) / base
        let leftSize = ((left ? blocks + 1 : blocks) / 2) * base
        let rightSize = size - leftSize
        let l = node(size: leftSize, left: true, base: Self.base(leftSize), leaves: leaves, next: &next)
        let r = node(size: rightSize, left: false, base: Self.base(rightSize), leaves: leaves, next: &next)
        return Array(Insecure.SHA1.hash(data: l + r))
    }

    /// The root as links write it: 32 upper-case base32 characters.
    public static func string(_ root: [UInt8]) -> String {
        String(decoding: Multibase.base32Upper.digits(of: root), as: UTF8.self)
    }
}

/// A file's AICH tree from its block hashes: the root, and the recovery data eMule exchanges for
/// one part (OP_AICHANSWER): the hashes of the siblings on the path from the root down to the
/// part, then the part's block hashes, each named by its path (the root is 1; a step to a left
/// child appends a 1 bit, to a right child a 0 bit). A downloader checks the data against the
/// root it trusts (from the link) and then knows which 180 KiB blocks of a bad part to fetch.
public struct AICHTree: Sendable, Equatable {
    public let size: UInt64
    /// The block hashes in file order.
    public let leaves: [[UInt8]]
    public let root: [UInt8]

    public init(size: UInt64, leaves: [[UInt8]]) {
        self.size = size
        self.leaves = leaves
        var next = 0
        root = AICHHasher.node(
            size: size, left: true, base: AICHHasher.base(size), leaves: leaves, next: &next)
    }

    static let part = UInt64(ED2KHasher.partSize)
    static let block = UInt64(AICHHasher.blockSize)
    static let blocksPerPart = (part + block - 1) / block

    /// Blocks before byte `offset` (a part or block boundary).
    public static func leavesBefore(_ offset: UInt64) -> Int {
        Int((offset / part) * blocksPerPart + ((offset % part) + block - 1) / block)
    }

    struct Node {
        var start: UInt64
        var size: UInt64
        var left: Bool
        var base: UInt64

        var isLeaf: Bool { size <= base }

        var children: (Node, Node) {
            let blocks = (size + base - 1) / base
            let leftSize = ((left ? blocks + 1 : blocks) / 2) * base
            let rightSize = size - leftSize
            return (
                Node(start: start, size: leftSize, left: true, base: AICHHasher.base(leftSize)),
                Node(start: start + leftSize, size: rightSize, left: false, base: AICHHasher.base(rightSize))
            )
        }
    }

    static func rootNode(_ size: UInt64) -> Node {
        Node(start: 0, size: size, left: true, base: AICHHasher.base(size))
    }

    static func partRange(_ part: Int, size: UInt64) -> (start: UInt64, size: UInt64)? {
        let start = UInt64(part) * Self.part
        guard part >= 0, start < size, size > block else { return nil }
        return (start, min(Self.part, size - start))
    }

    func hash(of node: Node) -> [UInt8] {
        var next = Self.leavesBefore(node.start)
        return AICHHasher.node(size: node.size, left: node.left, base: node.base, leaves: leaves, next: &next)
    }

    /// The recovery data for `part` (nil for a part the file does not have, or a file of one
    /// block, which has nothing to recover).
    public func recovery(part: Int) -> [(ident: UInt32, hash: [UInt8])]? {
        guard let target = Self.partRange(part, size: size) else { return nil }
        var out: [(ident: UInt32, hash: [UInt8])] = []
        var node = Self.rootNode(size)
        var ident: UInt32 = 1
        while !(node.start == target.start && node.size == target.size) {
            guard !node.isLeaf else { return nil }
            let (left, right) = node.children
            if target.start < right.start {
                out.append((ident << 1, hash(of: right)))
                node = left
                ident = ident << 1 | 1
            } else {
                out.append((ident << 1 | 1, hash(of: left)))
                node = right
                ident = ident << 1
            }
        }
        func blocks(_ node: Node, _ ident: UInt32) {
            if node.isLeaf {
                let index = Self.leavesBefore(node.start)
                out.append((ident, index < leaves.count ? leaves[index] : []))
                return
            }
            let (left, right) = node.children
            blocks(left, ident << 1 | 1)
            blocks(right, ident << 1)
        }
        blocks(node, ident)
        return out
    }

    /// Checks recovery data for `part` of a file of `size` bytes against `root`: the part's block
    /// hashes in order, or nil when the data does not hash to the root or lacks a hash.
    public static func verify(
        _ recovery: [(ident: UInt32, hash: [UInt8])], part: Int, size: UInt64, root: [UInt8]
    ) -> [[UInt8]]? {
        guard let target = partRange(part, size: size), recovery.count <= 1_024 else { return nil }
        var known: [UInt32: [UInt8]] = [:]
        for entry in recovery where entry.hash.count == 20 && entry.ident > 1 {
            known[entry.ident] = entry.hash
        }
        var blocks: [[UInt8]] = []
        func compute(_ node: Node, _ ident: UInt32, depth: Int) -> [UInt8]? {
            guard depth < 40 else { return nil }
            let inPart = node.start >= target.start && node.start + node.size <= target.start + target.size
            let onPath = node.start <= target.start && target.start + target.size <= node.start + node.size
            if node.isLeaf {
                guard let hash = known[ident] else { return nil }
                if inPart { blocks.append(hash) }
                return hash
            }
            if !inPart && !onPath { return known[ident] }
            let (left, right) = node.children
            guard let l = compute(left, ident << 1 | 1, depth: depth + 1),
                let r = compute(right, ident << 1, depth: depth + 1)
            else { return nil }
            return Array(Insecure.SHA1.hash(data: l + r))
        }
        guard compute(rootNode(size), 1, depth: 0) == root else { return nil }
        return blocks
    }
}

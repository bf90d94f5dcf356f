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
    public mutating func finalize() -> [UInt8] {
        if inBlock > 0 || leaves.isEmpty { closeBlock() }
        var next = 0
        return Self.node(size: size, left: true, base: Self.base(size), leaves: leaves, next: &next)
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

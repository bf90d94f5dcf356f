import Multiformats

/// MurmurHash3 x64 128 (Austin Appleby's public-domain design), the hash UnixFS HAMT shards
/// use (multicodec murmur3-x64-64: the first 64 bits). Not cryptographic; no library here has it.
public enum Murmur3 {
    /// Both 64-bit halves of MurmurHash3_x64128 with `seed`.
    public static func x64128(_ bytes: [UInt8], seed: UInt64 = 0) -> (UInt64, UInt64) {
        let c1: UInt64 = 0x87c3_7b91_1142_53d5
        let c2: UInt64 = 0x4cf5_ad43_2745_937f
        var h1 = seed
        var h2 = seed
        func word(_ at: Int) -> UInt64 {
            (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[at + $1]) << (8 * UInt64($1)) }
        }
        func rotl(_ x: UInt64, _ r: UInt64) -> UInt64 { (x << r) | (x >> (64 - r)) }
        func fmix(_ value: UInt64) -> UInt64 {
            var k = value
            k ^= k >> 33
            k = k &* 0xff51_afd7_ed55_8ccd
            k ^= k >> 33
            k = k &* 0xc4ce_b9fe_1a85_ec53
            k ^= k >> 33
            return k
        }
        let blocks = bytes.count / 16
        for block in 0..<blocks {
            var k1 = word(block * 16)
            var k2 = word(block * 16 + 8)
            k1 = rotl(k1 &* c1, 31) &* c2
            h1 ^= k1
            h1 = (rotl(h1, 27) &+ h2) &* 5 &+ 0x52dc_e729
            k2 = rotl(k2 &* c2, 33) &* c1
            h2 ^= k2
            h2 = (rotl(h2, 31) &+ h1) &* 5 &+ 0x3849_5ab5
        }
        let tail = blocks * 16
        let rest = bytes.count & 15
        var k1: UInt64 = 0
        var k2: UInt64 = 0
        if rest > 8 {
            for index in stride(from: rest - 1, through: 8, by: -1) {
                k2 ^= UInt64(bytes[tail + index]) << (8 * UInt64(index - 8))
            }
            h2 ^= rotl(k2 &* c2, 33) &* c1
        }
        if rest > 0 {
            for index in stride(from: min(rest, 8) - 1, through: 0, by: -1) {
                k1 ^= UInt64(bytes[tail + index]) << (8 * UInt64(index))
            }
            h1 ^= rotl(k1 &* c1, 31) &* c2
        }
        h1 ^= UInt64(bytes.count)
        h2 ^= UInt64(bytes.count)
        h1 = h1 &+ h2
        h2 = h2 &+ h1
        h1 = fmix(h1)
        h2 = fmix(h2)
        h1 = h1 &+ h2
        h2 = h2 &+ h1
        return (h1, h2)
    }
}

/// Builds HAMT-sharded UnixFS directories as go-unixfs (boxo) does when a directory's estimated
/// size reaches Kubo's threshold: fanout 256, a key's slot at each level the next byte of the
/// big-endian murmur3-x64-64 of its name, colliding names pushed into a sub-shard one level
/// down; link names are the slot in two upper-case hex digits, then the entry's name (a
/// sub-shard's link is the two digits alone); Data holds the slot bitfield without its
/// leading zero bytes.
enum HAMTBuilder {
    static let fanout = 256
    static let murmur3Code: UInt64 = 0x22

    final class Shard {
        enum Slot {
            case entry(name: String, hash: [UInt8], child: FileChild)
            case shard(Shard)
        }
        var slots: [Int: Slot] = [:]
    }

    static func hash(_ name: String) -> [UInt8] {
        let h1 = Murmur3.x64128(Array(name.utf8)).0
        return (0..<8).map { UInt8(truncatingIfNeeded: h1 >> (56 - 8 * UInt64($0))) }
    }

    static func insert(_ shard: Shard, name: String, hash: [UInt8], child: FileChild, depth: Int) throws {
        guard depth < hash.count else {
            throw IPFSError.badInput("HAMT: names '\(name)' collide in all 64 hash bits")
        }
        let slot = Int(hash[depth])
        switch shard.slots[slot] {
        case nil:
            shard.slots[slot] = .entry(name: name, hash: hash, child: child)
        case .shard(let sub):
            try insert(sub, name: name, hash: hash, child: child, depth: depth + 1)
        case .entry(let other, let otherHash, let otherChild):
            if other == name {
                shard.slots[slot] = .entry(name: name, hash: hash, child: child)
                return
            }
            let sub = Shard()
            try insert(sub, name: name, hash: hash, child: child, depth: depth + 1)
            try insert(sub, name: other, hash: otherHash, child: otherChild, depth: depth + 1)
            shard.slots[slot] = .shard(sub)
        }
    }

    static func build(
        _ entries: [(name: String, child: FileChild)], options: ImportOptions, sink: (any BlockSink)?
    ) throws -> FileChild {
        let root = Shard()
        for (name, child) in entries {
            try insert(root, name: name, hash: hash(name), child: child, depth: 0)
        }
        return try encode(root, options: options, sink: sink)
    }

    static func encode(_ shard: Shard, options: ImportOptions, sink: (any BlockSink)?) throws -> FileChild {
        var links: [DagPBLink] = []
        var bitfield = [UInt8](repeating: 0, count: fanout / 8)
        var childTotal: UInt64 = 0
        for (slot, content) in shard.slots.sorted(by: { $0.key < $1.key }) {
            let prefix = hex(slot)
            bitfield[bitfield.count - 1 - slot / 8] |= 1 << UInt8(slot % 8)
            switch content {
            case .entry(let name, _, let child):
                links.append(DagPBLink(cid: child.cid, name: prefix + name, tsize: child.tsize))
                childTotal += child.tsize
            case .shard(let sub):
                let node = try encode(sub, options: options, sink: sink)
                links.append(DagPBLink(cid: node.cid, name: prefix, tsize: node.tsize))
                childTotal += node.tsize
            }
        }
        let trimmed = Array(bitfield.drop { $0 == 0 })
        let data = UnixFSData(
            kind: .hamtShard, data: trimmed.isEmpty ? nil : trimmed, hashType: murmur3Code,
            fanout: UInt64(fanout))
        let (cid, size) = try DagBuilder.store(
            DagPBNode(links: links, data: data.encoded()), version: options.cidVersion, sink: sink)
        return FileChild(cid: cid, fileSize: 0, tsize: UInt64(size) + childTotal)
    }

    static func hex(_ slot: Int) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[slot >> 4], digits[slot & 15]])
    }
}

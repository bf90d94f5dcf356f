/// The width of a Kademlia network's identifiers, in bits (a multiple of 32, at most 256).
public protocol IDWidth: Sendable {
    static var bits: Int { get }
}

/// 128-bit identifiers (e.g. eDonkey's Kad).
public enum Bits128: IDWidth { public static var bits: Int { 128 } }
/// 160-bit identifiers: the BitTorrent mainline DHT (BEP 5).
public enum Bits160: IDWidth { public static var bits: Int { 160 } }
/// 256-bit identifiers: libp2p's Kademlia (SHA-256 of the key).
public enum Bits256: IDWidth { public static var bits: Int { 256 } }

/// A node ID or key in a Kademlia network of `Width` bits, held inline in four words (big-endian
/// order: `words.0` holds the first bits), so IDs are cheap to copy, hash and compare. Distance is
/// XOR (Maymounkov and Mazières, section 2.1); `<` compares IDs as unsigned numbers.
public struct KademliaID<Width: IDWidth>: Hashable, Comparable, Sendable, CustomStringConvertible {
    @usableFromInline var w0: UInt64 = 0
    @usableFromInline var w1: UInt64 = 0
    @usableFromInline var w2: UInt64 = 0
    @usableFromInline var w3: UInt64 = 0

    public static var bitWidth: Int { Width.bits }
    public static var byteCount: Int { Width.bits / 8 }

    /// All zeros.
    public static var zero: Self { Self() }

    @usableFromInline init() {}

    /// The ID with these bytes; nil unless exactly ``byteCount`` of them.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == Self.byteCount else { return nil }
        let done = bytes.withContiguousStorageIfAvailable { buffer in
            self = Self(buffer: UnsafeRawBufferPointer(buffer))
        }
        if done == nil { self = Array(bytes).withUnsafeBytes { Self(buffer: $0) } }
    }

    /// Reads ``byteCount`` bytes (the caller checked there are that many).
    private init(buffer: UnsafeRawBufferPointer) {
        func word(_ index: Int) -> UInt64 {
            var value: UInt64 = 0
            var offset = index * 8
            while offset < min(index * 8 + 8, buffer.count) {
                value |= UInt64(buffer[offset]) << (56 - 8 * UInt64(offset - index * 8))
                offset += 1
            }
            return value
        }
        (w0, w1, w2, w3) = (word(0), word(1), word(2), word(3))
    }

    /// A uniformly random ID.
    public static func random(using generator: inout some RandomNumberGenerator) -> Self {
        var id = Self()
        id.w0 = generator.next()
        id.w1 = generator.next()
        id.w2 = generator.next()
        id.w3 = generator.next()
        return id.masked()
    }

    /// A random ID that shares its first `prefixLength` bits with `self` and differs in the next
    /// one: an ID that falls in the bucket `prefixLength` of a table owned by `self` (used to
    /// refresh buckets).
    public func randomInBucket(_ prefixLength: Int, using generator: inout some RandomNumberGenerator) -> Self
    {
        let noise = Self.random(using: &generator)
        var result = Self()
        for index in 0..<4 {
            let start = index * 64
            let keep: UInt64
            if prefixLength >= start + 64 {
                keep = ~0
            } else if prefixLength <= start {
                keep = 0
            } else {
                keep = ~0 << UInt64(64 - (prefixLength - start))
            }
            result[word: index] = self[word: index] & keep | noise[word: index] & ~keep
        }
        if prefixLength < Self.bitWidth { result.flipBit(prefixLength, to: !bit(prefixLength)) }
        return result.masked()
    }

    private subscript(word index: Int) -> UInt64 {
        get {
            switch index {
            case 0: return w0
            case 1: return w1
            case 2: return w2
            default: return w3
            }
        }
        set {
            switch index {
            case 0: w0 = newValue
            case 1: w1 = newValue
            case 2: w2 = newValue
            default: w3 = newValue
            }
        }
    }

    /// Clears the bits past the width.
    private func masked() -> Self {
        var id = self
        for index in 0..<4 {
            let start = index * 64
            if start >= Self.bitWidth {
                id[word: index] = 0
            } else if start + 64 > Self.bitWidth {
                id[word: index] &= ~0 << UInt64(start + 64 - Self.bitWidth)
            }
        }
        return id
    }

    /// Bit `index`, counting from the most significant.
    public func bit(_ index: Int) -> Bool {
        self[word: index / 64] >> UInt64(63 - index % 64) & 1 == 1
    }

    private mutating func flipBit(_ index: Int, to value: Bool) {
        let mask = UInt64(1) << UInt64(63 - index % 64)
        if value { self[word: index / 64] |= mask } else { self[word: index / 64] &= ~mask }
    }

    /// The XOR distance to `other`, itself an ID.
    @inlinable
    public func distance(to other: Self) -> Self {
        var result = Self()
        result.w0 = w0 ^ other.w0
        result.w1 = w1 ^ other.w1
        result.w2 = w2 ^ other.w2
        result.w3 = w3 ^ other.w3
        return result
    }

    /// Leading zero bits (the bit width for zero): for a distance, the length of the common
    /// prefix of the two IDs.
    public var leadingZeroBitCount: Int {
        if w0 != 0 { return w0.leadingZeroBitCount }
        if w1 != 0 { return 64 + w1.leadingZeroBitCount }
        if w2 != 0 { return min(Self.bitWidth, 128 + w2.leadingZeroBitCount) }
        if w3 != 0 { return min(Self.bitWidth, 192 + w3.leadingZeroBitCount) }
        return Self.bitWidth
    }

    /// Length of the common prefix with `other`.
    public func commonPrefixLength(with other: Self) -> Int { distance(to: other).leadingZeroBitCount }

    /// Whether `a` is closer to `self` than `b` is.
    @inlinable
    public func isCloser(_ a: Self, than b: Self) -> Bool { distance(to: a) < distance(to: b) }

    /// The ``byteCount`` bytes, big-endian.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.byteCount)
        for index in 0..<Self.byteCount {
            out.append(UInt8(truncatingIfNeeded: self[word: index / 8] >> (56 - 8 * UInt64(index % 8))))
        }
        return out
    }

    public var hex: String {
        let digits = Array("0123456789abcdef".utf8)
        return String(
            decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }

    public var description: String { hex }

    @inlinable
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.w0, lhs.w1, lhs.w2, lhs.w3) < (rhs.w0, rhs.w1, rhs.w2, rhs.w3)
    }
}

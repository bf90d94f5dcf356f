import BitTorrent

/// An info-hash held inline (20 bytes, no heap storage), the key of the tracker's tables.
public struct InfoHashKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    let head: UInt64
    let middle: UInt64
    let tail: UInt32

    static let zero = InfoHashKey(head: 0, middle: 0, tail: 0)

    private init(head: UInt64, middle: UInt64, tail: UInt32) {
        self.head = head
        self.middle = middle
        self.tail = tail
    }

    /// The key of `infoHash`.
    public init(_ infoHash: InfoHash) {
        self = infoHash.bytes.withUnsafeBytes { Self(unchecked: $0) }
    }

    /// Reads 20 bytes starting at `offset`; the caller has checked the length.
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int = 0) {
        head = bytes.loadBigEndian(UInt64.self, at: offset)
        middle = bytes.loadBigEndian(UInt64.self, at: offset + 8)
        tail = bytes.loadBigEndian(UInt32.self, at: offset + 16)
    }

    /// Nil unless `bytes` is exactly 20 bytes long.
    public init?(bytes: [UInt8]) {
        guard bytes.count == 20 else { return nil }
        self = bytes.withUnsafeBytes { Self(unchecked: $0) }
    }

    /// The 20 raw bytes.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(20)
        out.appendBigEndian(head)
        out.appendBigEndian(middle)
        out.appendBigEndian(tail)
        return out
    }

    public var infoHash: InfoHash { InfoHash(bytes: bytes)! }  // 20 bytes by construction

    public var description: String { infoHash.hex }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.head, lhs.middle, lhs.tail) < (rhs.head, rhs.middle, rhs.tail)
    }
}

extension UnsafeRawBufferPointer {
    /// A big-endian integer at `offset`, which need not be aligned; the caller checks bounds.
    @inline(__always)
    func loadBigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(bigEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension Array where Element == UInt8 {
    @inline(__always)
    mutating func appendBigEndian<T: FixedWidthInteger>(_ value: T) {
        var shift = T.bitWidth - 8
        while shift >= 0 {
            append(UInt8(truncatingIfNeeded: value >> shift))
            shift -= 8
        }
    }
}

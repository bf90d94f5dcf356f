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

/// An IP address as the tracker stores it: IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are
/// IPv4, so a dual-stack socket still gives IPv4 peers their compact 6-byte form (BEP 23).
public enum TrackerIP: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt64, UInt64)

    /// 4 or 16 network-order bytes; nil for any other length.
    public init?(bytes: [UInt8]) {
        switch bytes.count {
        case 4: self = bytes.withUnsafeBytes { .v4($0.loadBigEndian(UInt32.self, at: 0)) }
        case 16:
            self = bytes.withUnsafeBytes {
                Self(v6High: $0.loadBigEndian(UInt64.self, at: 0), low: $0.loadBigEndian(UInt64.self, at: 8))
            }
        default: return nil
        }
    }

    /// Text as `1.2.3.4` or `2001:db8::1` (no brackets).
    public init?(_ text: some StringProtocol) {
        guard let address = PeerAddress(text.contains(":") ? "[\(text)]:0" : "\(text):0") else { return nil }
        self.init(bytes: address.ip)
    }

    init(v6High high: UInt64, low: UInt64) {
        self = high == 0 && low >> 32 == 0xFFFF ? .v4(UInt32(truncatingIfNeeded: low)) : .v6(high, low)
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        switch self {
        case .v4(let address): out.appendBigEndian(address)
        case .v6(let high, let low):
            out.appendBigEndian(high)
            out.appendBigEndian(low)
        }
        return out
    }

    public var description: String { PeerAddress(ip: bytes, port: 0)?.host ?? "?" }
}

/// A peer's address and listening port.
public struct TrackerEndpoint: Hashable, Sendable, CustomStringConvertible {
    public var ip: TrackerIP
    public var port: UInt16

    public init(ip: TrackerIP, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    public var peerAddress: PeerAddress { PeerAddress(ip: ip.bytes, port: port)! }  // 4 or 16 bytes

    public var description: String { peerAddress.description }
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

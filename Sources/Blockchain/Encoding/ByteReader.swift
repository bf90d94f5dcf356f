/// Reads Bitcoin's little-endian integers, CompactSize lengths and byte strings from a buffer,
/// every read checked against the bytes that remain.
public struct ByteReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }
    public var atEnd: Bool { offset >= bytes.count }

    public mutating func take(_ count: Int, _ what: String) throws(BlockchainError) -> ArraySlice<UInt8> {
        guard count >= 0, count <= remaining else { throw .truncated(what, offset: offset) }
        defer { offset += count }
        return bytes[offset..<offset + count]
    }

    public mutating func uint8(_ what: String) throws(BlockchainError) -> UInt8 {
        try take(1, what).first ?? 0
    }

    public mutating func littleEndian<T: FixedWidthInteger>(_ type: T.Type, _ what: String)
        throws(BlockchainError) -> T
    {
        let slice = try take(MemoryLayout<T>.size, what)
        return slice.reversed().reduce(T(0)) { $0 << 8 | T($1) }
    }

    /// A CompactSize in its canonical (shortest) form, at most `limit`.
    public mutating func compactSize(_ what: String, limit: UInt64 = 0x0200_0000) throws(BlockchainError)
        -> UInt64
    {
        let start = offset
        let first = try uint8(what)
        let value: UInt64
        let minimum: UInt64
        switch first {
        case 0xfd:
            value = UInt64(try littleEndian(UInt16.self, what))
            minimum = 0xfd
        case 0xfe:
            value = UInt64(try littleEndian(UInt32.self, what))
            minimum = 0x1_0000
        case 0xff:
            value = try littleEndian(UInt64.self, what)
            minimum = 0x1_0000_0000
        default:
            return UInt64(first)
        }
        guard value >= minimum else { throw .invalid("non-canonical CompactSize for \(what)", offset: start) }
        guard value <= limit else { throw .tooLarge("\(what) (\(value))", offset: start) }
        return value
    }

    /// A CompactSize-prefixed byte string, its length checked before anything is allocated.
    public mutating func varBytes(_ what: String, limit: Int = 0x0200_0000) throws(BlockchainError) -> [UInt8]
    {
        let start = offset
        let length = try compactSize("length of \(what)", limit: UInt64(limit))
        guard length <= UInt64(remaining) else { throw .truncated(what, offset: start) }
        return Array(try take(Int(length), what))
    }

    public mutating func hash(_ what: String) throws(BlockchainError) -> Hash256 {
        Hash256(bytes: Array(try take(32, what)))
    }
}

/// Appends Bitcoin's encodings to a byte array.
public struct ByteWriter {
    public var bytes: [UInt8] = []

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    public mutating func littleEndian<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    public mutating func compactSize(_ value: UInt64) {
        switch value {
        case 0..<0xfd: bytes.append(UInt8(value))
        case 0xfd...0xffff:
            bytes.append(0xfd)
            littleEndian(UInt16(value))
        case 0x1_0000...0xffff_ffff:
            bytes.append(0xfe)
            littleEndian(UInt32(value))
        default:
            bytes.append(0xff)
            littleEndian(value)
        }
    }

    public mutating func varBytes(_ data: some Collection<UInt8>) {
        compactSize(UInt64(data.count))
        bytes.append(contentsOf: data)
    }

    public mutating func append(_ data: some Sequence<UInt8>) { bytes.append(contentsOf: data) }
}

/// Why bytes are not a protobuf message: what was being read, and at which byte.
public struct ProtobufError: Error, Sendable, Hashable, CustomStringConvertible {
    public let what: String
    public let offset: Int

    public init(_ what: String, offset: Int) {
        self.what = what
        self.offset = offset
    }

    public var description: String { "invalid protobuf at byte \(offset): \(what)" }
}

/// Protobuf's wire format (proto3 encoding), shared by the protocols built on multiformats
/// (libp2p keys and identify, Bitswap, the IPFS DHT): reads a message's fields in order, each
/// length checked against the bytes that remain before anything is copied; varints of up to 10
/// bytes (a negative `int32` takes 10). Sans I/O, total: any bytes give fields or an error.
public struct ProtobufReader {
    /// A field's value as the wire carries it; the caller knows the field's type.
    public enum Value: Sendable, Hashable {
        case varint(UInt64)
        case fixed64(UInt64)
        /// A length-delimited value: its range in ``bytes``.
        case bytes(Range<Int>)
        case fixed32(UInt32)
    }

    public struct Field: Sendable, Hashable {
        public let number: Int
        public let value: Value
        /// Where the field's key starts (for errors).
        public let offset: Int
    }

    public let bytes: [UInt8]
    public private(set) var offset: Int
    public let end: Int

    /// Reads `bytes`, or only `range` of them (a nested message).
    public init(_ bytes: [UInt8], range: Range<Int>? = nil) {
        self.bytes = bytes
        offset = range?.lowerBound ?? 0
        end = range?.upperBound ?? bytes.count
    }

    public var atEnd: Bool { offset >= end }

    /// The next field, or nil at the end.
    public mutating func next() throws(ProtobufError) -> Field? {
        guard offset < end else { return nil }
        let start = offset
        let key = try varint("a field key")
        let number = key >> 3
        guard number > 0, number <= 536_870_911 else {
            throw ProtobufError("field number \(number)", offset: start)
        }
        switch key & 7 {
        case 0:
            return Field(number: Int(number), value: .varint(try varint("field \(number)")), offset: start)
        case 1:
            let value = try fixed(8, field: number, start: start)
            return Field(number: Int(number), value: .fixed64(value), offset: start)
        case 2:
            let length = try varint("the length of field \(number)")
            guard length <= UInt64(end - offset) else {
                throw ProtobufError("field \(number) of \(length) bytes runs past the end", offset: start)
            }
            let range = offset..<offset + Int(length)
            offset += Int(length)
            return Field(number: Int(number), value: .bytes(range), offset: start)
        case 5:
            let value = try fixed(4, field: number, start: start)
            return Field(number: Int(number), value: .fixed32(UInt32(value)), offset: start)
        default:
            throw ProtobufError("wire type \(key & 7) of field \(number)", offset: start)
        }
    }

    /// A little-endian fixed-width value of `count` bytes.
    private mutating func fixed(_ count: Int, field: UInt64, start: Int) throws(ProtobufError) -> UInt64 {
        guard end - offset >= count else {
            throw ProtobufError("field \(field) runs past the end", offset: start)
        }
        var value: UInt64 = 0
        for index in 0..<count { value |= UInt64(bytes[offset + index]) << (8 * UInt64(index)) }
        offset += count
        return value
    }

    private mutating func varint(_ what: String) throws(ProtobufError) -> UInt64 {
        let start = offset
        var value: UInt64 = 0
        for index in 0..<10 {
            guard offset < end else { throw ProtobufError("\(what) runs past the end", offset: start) }
            let byte = bytes[offset]
            offset += 1
            guard index < 9 || byte <= 1 else {
                throw ProtobufError("\(what) is longer than 64 bits", offset: start)
            }
            value |= UInt64(byte & 0x7F) << (7 * UInt64(index))
            if byte & 0x80 == 0 { return value }
        }
        throw ProtobufError("\(what) is longer than 10 bytes", offset: start)
    }

    /// The bytes of a length-delimited value.
    public func slice(_ range: Range<Int>) -> [UInt8] { Array(bytes[range]) }
}

extension ProtobufReader.Value {
    /// The value of a varint field (nil for another wire type).
    public var integer: UInt64? {
        if case .varint(let value) = self { return value }
        return nil
    }

    public var range: Range<Int>? {
        if case .bytes(let range) = self { return range }
        return nil
    }
}

/// Writes protobuf fields (proto3: callers leave out fields at their default).
public enum ProtobufWriter {
    public static func varint(_ value: UInt64, into out: inout [UInt8]) {
        var rest = value
        while rest >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
    }

    /// A varint field (an `int32` is sign-extended to 64 bits, as protobuf requires).
    public static func varint(field: Int, _ value: UInt64, into out: inout [UInt8]) {
        varint(UInt64(field) << 3, into: &out)
        varint(value, into: &out)
    }

    public static func bytes(field: Int, _ value: some Collection<UInt8>, into out: inout [UInt8]) {
        varint(UInt64(field) << 3 | 2, into: &out)
        varint(UInt64(value.count), into: &out)
        out.append(contentsOf: value)
    }
}

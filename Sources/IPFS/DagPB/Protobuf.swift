import Multiformats

/// The few protobuf wire rules that dag-pb and UnixFS need (varints, length-delimited fields),
/// with every length checked against the bytes that remain.
enum Protobuf {
    static let varint = 0
    static let lengthDelimited = 2

    /// Unsigned LEB128, the same bytes as Multiformats' varint (which only adds a 9-byte bound
    /// when reading).
    static func appendVarint(_ value: UInt64, to out: inout [UInt8]) {
        out += Varint.encode(value)
    }

    static func varintSize(_ value: UInt64) -> Int {
        (max(1, 64 - value.leadingZeroBitCount) + 6) / 7
    }

    static func appendTag(_ field: Int, _ wireType: Int, to out: inout [UInt8]) {
        appendVarint(UInt64(field << 3 | wireType), to: &out)
    }

    static func appendBytes(_ field: Int, _ bytes: some Collection<UInt8>, to out: inout [UInt8]) {
        appendTag(field, lengthDelimited, to: &out)
        appendVarint(UInt64(bytes.count), to: &out)
        out.append(contentsOf: bytes)
    }

    static func appendUInt(_ field: Int, _ value: UInt64, to out: inout [UInt8]) {
        appendTag(field, varint, to: &out)
        appendVarint(value, to: &out)
    }

    /// Reads fields from a byte range; errors carry the offset in the outermost buffer.
    struct Reader {
        let bytes: [UInt8]
        var offset: Int
        let end: Int
        let fail: (String, Int) -> IPFSError

        init(_ bytes: [UInt8], range: Range<Int>? = nil, fail: @escaping (String, Int) -> IPFSError) {
            self.bytes = bytes
            self.offset = range?.lowerBound ?? 0
            self.end = range?.upperBound ?? bytes.count
            self.fail = fail
        }

        var atEnd: Bool { offset >= end }

        mutating func varint(_ what: String) throws(IPFSError) -> UInt64 {
            let start = offset
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard offset < end else { throw fail("\(what) runs past the end", start) }
                let byte = bytes[offset]
                offset += 1
                guard shift < 64, shift < 63 || byte <= 1 else {
                    throw fail("\(what) is longer than 64 bits", start)
                }
                value |= UInt64(byte & 0x7f) << shift
                if byte & 0x80 == 0 {
                    if byte == 0 && offset - start > 1 {
                        throw fail("\(what) is not in its shortest form", start)
                    }
                    return value
                }
                shift += 7
            }
        }

        /// Reads a key; returns (field number, wire type).
        mutating func tag() throws(IPFSError) -> (field: Int, wireType: Int, offset: Int) {
            let start = offset
            let key = try varint("field key")
            guard key >> 3 <= UInt64(Int32.max), key >> 3 > 0 else {
                throw fail("field number \(key >> 3)", start)
            }
            return (Int(key >> 3), Int(key & 7), start)
        }

        /// Reads a length-delimited value's range.
        mutating func lengthDelimited(_ what: String) throws(IPFSError) -> Range<Int> {
            let start = offset
            let length = try varint("length of \(what)")
            guard length <= UInt64(end - offset) else {
                throw fail("\(what) of \(length) bytes runs past the end", start)
            }
            let range = offset..<offset + Int(length)
            offset += Int(length)
            return range
        }
    }
}

/// Why bytes are not a valid multiformat, with the offset where reading stopped.
public enum MultiformatError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A varint ran past the end, past 9 bytes, or used more bytes than needed.
    case badVarint(offset: Int, reason: String)
    /// A length or digest that does not fit what holds it.
    case badLength(String, offset: Int)
    /// A character that the base does not have.
    case badCharacter(Character, base: String, offset: Int)
    /// A multibase prefix this library does not know.
    case unknownBase(Character)
    case unknownCodec(UInt64)
    case unknownProtocol(String)
    case invalid(String)

    public var description: String {
        switch self {
        case .badVarint(let offset, let reason): return "bad varint at byte \(offset): \(reason)"
        case .badLength(let what, let offset): return "bad length of \(what) at byte \(offset)"
        case .badCharacter(let character, let base, let offset):
            return "'\(character)' at position \(offset) is not a \(base) character"
        case .unknownBase(let prefix): return "unknown multibase prefix '\(prefix)'"
        case .unknownCodec(let code): return "unknown codec 0x\(String(code, radix: 16))"
        case .unknownProtocol(let name): return "unknown multiaddr protocol '\(name.prefix(32))'"
        case .invalid(let why): return why
        }
    }
}

/// The unsigned varint of the multiformats spec: 7 bits a byte, least significant group first,
/// at most 9 bytes (63 bits), and in its shortest form.
public enum Varint {
    public static let maxBytes = 9

    public static func encode(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        var rest = value
        while rest >= 0x80 {
            out.append(UInt8(truncatingIfNeeded: rest) | 0x80)
            rest >>= 7
        }
        out.append(UInt8(rest))
        return out
    }

    /// Reads one varint at `offset`, moving it past; rejects overlong and unterminated forms.
    public static func decode(_ bytes: some RandomAccessCollection<UInt8>, at offset: inout Int)
        throws(MultiformatError)
        -> UInt64
    {
        let start = offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        for count in 0..<maxBytes {
            guard offset < bytes.count else {
                throw .badVarint(offset: start, reason: "ends after \(count) bytes")
            }
            let byte = bytes[bytes.index(bytes.startIndex, offsetBy: offset)]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 {
                if byte == 0 && count > 0 {
                    throw .badVarint(offset: start, reason: "not in its shortest form")
                }
                return value
            }
            shift += 7
        }
        throw .badVarint(offset: start, reason: "longer than \(maxBytes) bytes")
    }
}

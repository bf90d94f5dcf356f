import Multiformats

/// The subset of CBOR (RFC 8949) that CAR headers use, decoded strictly: definite lengths only,
/// shortest-form integers as DAG-CBOR requires, bounded depth and sizes, and tag 42 for CIDs.
public indirect enum CBORValue: Equatable, Sendable {
    case unsigned(UInt64)
    case negative(UInt64)
    case bytes([UInt8])
    case text(String)
    case array([CBORValue])
    case map([(String, CBORValue)])
    case cid(CID)
    case bool(Bool)
    case null

    public static func == (a: CBORValue, b: CBORValue) -> Bool {
        switch (a, b) {
        case (.unsigned(let x), .unsigned(let y)), (.negative(let x), .negative(let y)): return x == y
        case (.bytes(let x), .bytes(let y)): return x == y
        case (.text(let x), .text(let y)): return x == y
        case (.array(let x), .array(let y)): return x == y
        case (.map(let x), .map(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        case (.cid(let x), .cid(let y)): return x == y
        case (.bool(let x), .bool(let y)): return x == y
        case (.null, .null): return true
        default: return false
        }
    }

    public subscript(key: String) -> CBORValue? {
        guard case .map(let pairs) = self else { return nil }
        return pairs.first { $0.0 == key }?.1
    }

    // MARK: Encoding (DAG-CBOR canonical: map keys sorted by length, then bytes)

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        encode(into: &out)
        return out
    }

    static func head(_ major: UInt8, _ value: UInt64, into out: inout [UInt8]) {
        switch value {
        case 0..<24: out.append(major << 5 | UInt8(value))
        case 24...0xff: out += [major << 5 | 24, UInt8(value)]
        case 0x100...0xffff: out += [major << 5 | 25, UInt8(value >> 8), UInt8(value & 0xff)]
        case 0x1_0000...0xffff_ffff:
            out.append(major << 5 | 26)
            for shift in stride(from: 24, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        default:
            out.append(major << 5 | 27)
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
            }
        }
    }

    func encode(into out: inout [UInt8]) {
        switch self {
        case .unsigned(let value): Self.head(0, value, into: &out)
        case .negative(let value): Self.head(1, value, into: &out)
        case .bytes(let bytes):
            Self.head(2, UInt64(bytes.count), into: &out)
            out += bytes
        case .text(let text):
            Self.head(3, UInt64(text.utf8.count), into: &out)
            out += Array(text.utf8)
        case .array(let values):
            Self.head(4, UInt64(values.count), into: &out)
            for value in values { value.encode(into: &out) }
        case .map(let pairs):
            Self.head(5, UInt64(pairs.count), into: &out)
            let sorted = pairs.sorted { a, b in
                let x = Array(a.0.utf8)
                let y = Array(b.0.utf8)
                return x.count != y.count ? x.count < y.count : x.lexicographicallyPrecedes(y)
            }
            for (key, value) in sorted {
                CBORValue.text(key).encode(into: &out)
                value.encode(into: &out)
            }
        case .cid(let cid):
            Self.head(6, 42, into: &out)
            CBORValue.bytes([0] + cid.bytes).encode(into: &out)
        case .bool(let value): out.append(value ? 0xf5 : 0xf4)
        case .null: out.append(0xf6)
        }
    }

    // MARK: Decoding

    public static let maxDepth = 32
    public static let maxItems = 1 << 16

    /// Decodes one value at `offset`, moving past it.
    public static func decode(_ bytes: [UInt8], at offset: inout Int, depth: Int = 0) throws(IPFSError)
        -> CBORValue
    {
        guard depth < maxDepth else { throw .badCBOR("nested deeper than \(maxDepth)", offset: offset) }
        let start = offset
        guard offset < bytes.count else { throw .badCBOR("ends before a value", offset: offset) }
        let initial = bytes[offset]
        offset += 1
        let major = initial >> 5
        let info = initial & 0x1f
        if major == 7 {
            switch info {
            case 20: return .bool(false)
            case 21: return .bool(true)
            case 22: return .null
            default: throw .badCBOR("simple value or float \(info) is not supported", offset: start)
            }
        }
        let argument: UInt64
        switch info {
        case 0..<24: argument = UInt64(info)
        case 24...27:
            let width = 1 << Int(info - 24)
            guard bytes.count - offset >= width else {
                throw .badCBOR("argument runs past the end", offset: start)
            }
            argument = bytes[offset..<offset + width].reduce(0) { $0 << 8 | UInt64($1) }
            offset += width
            let minimum: UInt64 = info == 24 ? 24 : 1 << (4 << (info - 24))
            guard argument >= minimum else {
                throw .badCBOR("integer not in its shortest form", offset: start)
            }
        default:
            throw .badCBOR("indefinite length or reserved additional info \(info)", offset: start)
        }
        switch major {
        case 0: return .unsigned(argument)
        case 1: return .negative(argument)
        case 2, 3:
            guard argument <= UInt64(bytes.count - offset) else {
                throw .badCBOR("string of \(argument) bytes runs past the end", offset: start)
            }
            let body = Array(bytes[offset..<offset + Int(argument)])
            offset += Int(argument)
            if major == 2 { return .bytes(body) }
            guard let text = String(validating: body, as: UTF8.self) else {
                throw .badCBOR("text is not UTF-8", offset: start)
            }
            return .text(text)
        case 4:
            guard argument <= UInt64(min(maxItems, bytes.count - offset)) else {
                throw .badCBOR("array of \(argument) items is too long", offset: start)
            }
            var values: [CBORValue] = []
            for _ in 0..<argument { values.append(try decode(bytes, at: &offset, depth: depth + 1)) }
            return .array(values)
        case 5:
            guard argument <= UInt64(min(maxItems, (bytes.count - offset) / 2)) else {
                throw .badCBOR("map of \(argument) entries is too long", offset: start)
            }
            var pairs: [(String, CBORValue)] = []
            for _ in 0..<argument {
                let keyOffset = offset
                guard case .text(let key) = try decode(bytes, at: &offset, depth: depth + 1) else {
                    throw .badCBOR("map key is not text", offset: keyOffset)
                }
                guard !pairs.contains(where: { $0.0 == key }) else {
                    throw .badCBOR("map key '\(key)' repeated", offset: keyOffset)
                }
                pairs.append((key, try decode(bytes, at: &offset, depth: depth + 1)))
            }
            return .map(pairs)
        case 6:
            guard argument == 42 else {
                throw .badCBOR("tag \(argument) (only 42, a CID, is allowed)", offset: start)
            }
            let inner = offset
            guard case .bytes(let body) = try decode(bytes, at: &offset, depth: depth + 1), body.first == 0
            else {
                throw .badCBOR("tag 42 does not hold 0x00 and CID bytes", offset: inner)
            }
            do {
                return .cid(try CID(bytes: Array(body.dropFirst())))
            } catch {
                throw .badCBOR("tag 42 holds no valid CID: \(error)", offset: inner)
            }
        default:
            throw .badCBOR("major type \(major)", offset: start)
        }
    }
}

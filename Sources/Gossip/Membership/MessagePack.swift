/// MessagePack values as memberlist's codec (hashicorp/go-msgpack, the original "raw" spec)
/// writes them: Go strings and `[]byte` both as raw (`fixstr`/`0xda`/`0xdb`), structs as maps of
/// field names, integers in their shortest form. Reading accepts the whole current spec (str8,
/// bin, ext, floats) so any encoder's output is read; every count is bounded by the bytes left.
public indirect enum MessagePackValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case int(Int64)
    case uint(UInt64)
    case float(Double)
    /// A raw/str or bin value: Go's `string` and `[]byte` alike.
    case bytes([UInt8])
    case array([MessagePackValue])
    case map([(key: MessagePackValue, value: MessagePackValue)])
    case ext(type: Int8, data: [UInt8])

    public static func == (lhs: Self, rhs: Self) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.int(let a), .int(let b)): a == b
        case (.uint(let a), .uint(let b)): a == b
        case (.int(let a), .uint(let b)), (.uint(let b), .int(let a)): a >= 0 && UInt64(a) == b
        case (.float(let a), .float(let b)): a.bitPattern == b.bitPattern
        case (.bytes(let a), .bytes(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.map(let a), .map(let b)):
            a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        case (.ext(let t1, let d1), .ext(let t2, let d2)): t1 == t2 && d1 == d2
        default: false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let value): hasher.combine(value)
        case .int(let value): hasher.combine(value)
        case .uint(let value): hasher.combine(value)
        case .float(let value): hasher.combine(value.bitPattern)
        case .bytes(let value): hasher.combine(value)
        case .array(let value): hasher.combine(value)
        case .map(let value):
            hasher.combine(value.count)
            for entry in value {
                hasher.combine(entry.key)
                hasher.combine(entry.value)
            }
        case .ext(let type, let data):
            hasher.combine(type)
            hasher.combine(data)
        }
    }

    /// A string key's value in a map (Go struct field), nil when absent or not a map.
    public subscript(field: String) -> MessagePackValue? {
        guard case .map(let entries) = self else { return nil }
        let key = Array(field.utf8)
        return entries.first { $0.key == .bytes(key) }?.value
    }

    public var unsigned: UInt64? {
        switch self {
        case .uint(let value): value
        case .int(let value) where value >= 0: UInt64(value)
        default: nil
        }
    }

    public var byteString: [UInt8]? {
        if case .bytes(let value) = self { return value }
        return nil
    }

    public var boolean: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }
}

/// Why MessagePack bytes could not be read.
public enum MessagePackError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The value runs past the end: on a stream, wait for more bytes.
    case truncated(offset: Int)
    /// 0xc1, the one byte MessagePack never uses.
    case reservedByte(offset: Int)
    case tooDeep(offset: Int, limit: Int)
    case tooLong(offset: Int, length: Int, limit: Int)

    public var description: String {
        switch self {
        case .truncated(let offset): "MessagePack value truncated at byte \(offset)"
        case .reservedByte(let offset): "MessagePack: reserved byte 0xc1 at byte \(offset)"
        case .tooDeep(let offset, let limit): "MessagePack: nested deeper than \(limit) at byte \(offset)"
        case .tooLong(let offset, let length, let limit):
            "MessagePack: length \(length) at byte \(offset) exceeds \(limit)"
        }
    }
}

public enum MessagePack {
    /// Nesting limit: memberlist's messages are at most two deep; Serf's payloads a few more.
    public static let maxDepth = 32

    // MARK: Writing

    public static func encode(_ value: MessagePackValue) -> [UInt8] {
        var out: [UInt8] = []
        append(value, to: &out)
        return out
    }

    public static func append(_ value: MessagePackValue, to out: inout [UInt8]) {
        switch value {
        case .null: out.append(0xC0)
        case .bool(let flag): out.append(flag ? 0xC3 : 0xC2)
        case .uint(let number): appendUnsigned(number, to: &out)
        case .int(let number):
            if number >= 0 {
                appendUnsigned(UInt64(number), to: &out)
            } else if number >= -32 {
                out.append(UInt8(bitPattern: Int8(number)))
            } else if number >= Int64(Int8.min) {
                out.append(0xD0)
                out.append(UInt8(bitPattern: Int8(number)))
            } else if number >= Int64(Int16.min) {
                out.append(0xD1)
                appendBigEndian(UInt64(UInt16(bitPattern: Int16(number))), bytes: 2, to: &out)
            } else if number >= Int64(Int32.min) {
                out.append(0xD2)
                appendBigEndian(UInt64(UInt32(bitPattern: Int32(number))), bytes: 4, to: &out)
            } else {
                out.append(0xD3)
                appendBigEndian(UInt64(bitPattern: number), bytes: 8, to: &out)
            }
        case .float(let number):
            out.append(0xCB)
            appendBigEndian(number.bitPattern, bytes: 8, to: &out)
        case .bytes(let bytes):
            // The raw family, as go-msgpack writes both strings and byte slices.
            if bytes.count < 32 {
                out.append(0xA0 | UInt8(bytes.count))
            } else if bytes.count <= 0xFFFF {
                out.append(0xDA)
                appendBigEndian(UInt64(bytes.count), bytes: 2, to: &out)
            } else {
                out.append(0xDB)
                appendBigEndian(UInt64(bytes.count), bytes: 4, to: &out)
            }
            out.append(contentsOf: bytes)
        case .array(let items):
            appendHeader(count: items.count, fix: 0x90, sixteen: 0xDC, thirtyTwo: 0xDD, to: &out)
            for item in items { append(item, to: &out) }
        case .map(let entries):
            appendHeader(count: entries.count, fix: 0x80, sixteen: 0xDE, thirtyTwo: 0xDF, to: &out)
            for entry in entries {
                append(entry.key, to: &out)
                append(entry.value, to: &out)
            }
        case .ext(let type, let data):
            out.append(0xC7 + (data.count > 0xFF ? (data.count > 0xFFFF ? 2 : 1) : 0))
            appendBigEndian(
                UInt64(data.count), bytes: data.count > 0xFFFF ? 4 : (data.count > 0xFF ? 2 : 1), to: &out)
            out.append(UInt8(bitPattern: type))
            out.append(contentsOf: data)
        }
    }

    /// A Go struct as go-msgpack writes it: a map of field name to value, names sorted.
    public static func structure(_ fields: [(String, MessagePackValue)]) -> MessagePackValue {
        .map(fields.sorted { $0.0 < $1.0 }.map { (key: .bytes(Array($0.0.utf8)), value: $0.1) })
    }

    private static func appendHeader(
        count: Int, fix: UInt8, sixteen: UInt8, thirtyTwo: UInt8, to out: inout [UInt8]
    ) {
        if count < 16 {
            out.append(fix | UInt8(count))
        } else if count <= 0xFFFF {
            out.append(sixteen)
            appendBigEndian(UInt64(count), bytes: 2, to: &out)
        } else {
            out.append(thirtyTwo)
            appendBigEndian(UInt64(count), bytes: 4, to: &out)
        }
    }

    private static func appendUnsigned(_ number: UInt64, to out: inout [UInt8]) {
        if number < 0x80 {
            out.append(UInt8(number))
        } else if number <= 0xFF {
            out.append(0xCC)
            out.append(UInt8(number))
        } else if number <= 0xFFFF {
            out.append(0xCD)
            appendBigEndian(number, bytes: 2, to: &out)
        } else if number <= 0xFFFF_FFFF {
            out.append(0xCE)
            appendBigEndian(number, bytes: 4, to: &out)
        } else {
            out.append(0xCF)
            appendBigEndian(number, bytes: 8, to: &out)
        }
    }

    private static func appendBigEndian(_ value: UInt64, bytes: Int, to out: inout [UInt8]) {
        for index in stride(from: bytes - 1, through: 0, by: -1) {
            out.append(UInt8(truncatingIfNeeded: value >> (8 * index)))
        }
    }

    // MARK: Reading

    /// Reads one value starting at `offset`; returns it and the offset after it.
    public static func decode(
        _ bytes: [UInt8], at offset: Int = 0, maxLength: Int = 1 << 24
    ) throws(MessagePackError) -> (value: MessagePackValue, end: Int) {
        var position = offset
        let value = try read(bytes, &position, depth: 0, maxLength: maxLength)
        return (value, position)
    }

    /// Reads exactly one value that fills `bytes`; trailing bytes are allowed and ignored, as
    /// go-msgpack's decoder leaves them.
    public static func decodeOne(_ bytes: [UInt8]) throws(MessagePackError) -> MessagePackValue {
        try decode(bytes).value
    }

    private static func take(_ bytes: [UInt8], _ position: inout Int, _ count: Int) throws(MessagePackError)
        -> ArraySlice<UInt8>
    {
        guard count >= 0, count <= bytes.count - position else { throw .truncated(offset: position) }
        defer { position += count }
        return bytes[position..<position + count]
    }

    private static func bigEndian(_ bytes: [UInt8], _ position: inout Int, _ count: Int)
        throws(MessagePackError) -> UInt64
    {
        var value: UInt64 = 0
        for byte in try take(bytes, &position, count) { value = value << 8 | UInt64(byte) }
        return value
    }

    private static func read(
        _ bytes: [UInt8], _ position: inout Int, depth: Int, maxLength: Int
    ) throws(MessagePackError) -> MessagePackValue {
        guard depth < maxDepth else { throw .tooDeep(offset: position, limit: maxDepth) }
        let start = position
        let lead = try take(bytes, &position, 1).first!
        func raw(_ length: Int) throws(MessagePackError) -> [UInt8] {
            guard length <= maxLength else { throw .tooLong(offset: start, length: length, limit: maxLength) }
            return Array(try take(bytes, &position, length))
        }
        func items(_ count: Int, pairs: Bool) throws(MessagePackError) -> Int {
            // Each item takes at least one byte: a count beyond the bytes left is truncated.
            guard count <= maxLength else { throw .tooLong(offset: start, length: count, limit: maxLength) }
            guard count * (pairs ? 2 : 1) <= bytes.count - position else { throw .truncated(offset: start) }
            return count
        }
        func array(_ count: Int) throws(MessagePackError) -> MessagePackValue {
            var values: [MessagePackValue] = []
            values.reserveCapacity(try items(count, pairs: false))
            for _ in 0..<count {
                values.append(try read(bytes, &position, depth: depth + 1, maxLength: maxLength))
            }
            return .array(values)
        }
        func map(_ count: Int) throws(MessagePackError) -> MessagePackValue {
            var entries: [(key: MessagePackValue, value: MessagePackValue)] = []
            entries.reserveCapacity(try items(count, pairs: true))
            for _ in 0..<count {
                let key = try read(bytes, &position, depth: depth + 1, maxLength: maxLength)
                let value = try read(bytes, &position, depth: depth + 1, maxLength: maxLength)
                entries.append((key, value))
            }
            return .map(entries)
        }
        func ext(_ length: Int) throws(MessagePackError) -> MessagePackValue {
            let type = Int8(bitPattern: try take(bytes, &position, 1).first!)
            return .ext(type: type, data: try raw(length))
        }
        switch lead {
        case 0x00...0x7F: return .uint(UInt64(lead))
        case 0x80...0x8F: return try map(Int(lead & 0x0F))
        case 0x90...0x9F: return try array(Int(lead & 0x0F))
        case 0xA0...0xBF: return .bytes(try raw(Int(lead & 0x1F)))
        case 0xC0: return .null
        case 0xC1: throw .reservedByte(offset: start)
        case 0xC2: return .bool(false)
        case 0xC3: return .bool(true)
        case 0xC4, 0xD9: return .bytes(try raw(Int(try bigEndian(bytes, &position, 1))))
        case 0xC5, 0xDA: return .bytes(try raw(Int(try bigEndian(bytes, &position, 2))))
        case 0xC6, 0xDB: return .bytes(try raw(Int(try bigEndian(bytes, &position, 4))))
        case 0xC7: return try ext(Int(try bigEndian(bytes, &position, 1)))
        case 0xC8: return try ext(Int(try bigEndian(bytes, &position, 2)))
        case 0xC9: return try ext(Int(try bigEndian(bytes, &position, 4)))
        case 0xCA: return .float(Double(Float(bitPattern: UInt32(try bigEndian(bytes, &position, 4)))))
        case 0xCB: return .float(Double(bitPattern: try bigEndian(bytes, &position, 8)))
        case 0xCC: return .uint(try bigEndian(bytes, &position, 1))
        case 0xCD: return .uint(try bigEndian(bytes, &position, 2))
        case 0xCE: return .uint(try bigEndian(bytes, &position, 4))
        case 0xCF: return .uint(try bigEndian(bytes, &position, 8))
        case 0xD0: return .int(Int64(Int8(truncatingIfNeeded: try bigEndian(bytes, &position, 1))))
        case 0xD1: return .int(Int64(Int16(truncatingIfNeeded: try bigEndian(bytes, &position, 2))))
        case 0xD2: return .int(Int64(Int32(truncatingIfNeeded: try bigEndian(bytes, &position, 4))))
        case 0xD3: return .int(Int64(bitPattern: try bigEndian(bytes, &position, 8)))
        case 0xD4: return try ext(1)
        case 0xD5: return try ext(2)
        case 0xD6: return try ext(4)
        case 0xD7: return try ext(8)
        case 0xD8: return try ext(16)
        case 0xDC: return try array(Int(try bigEndian(bytes, &position, 2)))
        case 0xDD: return try array(Int(try bigEndian(bytes, &position, 4)))
        case 0xDE: return try map(Int(try bigEndian(bytes, &position, 2)))
        case 0xDF: return try map(Int(try bigEndian(bytes, &position, 4)))
        default: return .int(Int64(Int8(bitPattern: lead)))  // negative fixint 0xe0...0xff
        }
    }
}

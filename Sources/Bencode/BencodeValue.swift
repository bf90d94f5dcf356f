/// A bencoded value (BEP 3): an integer, a byte string, a list or a dictionary.
///
/// Dictionaries map raw byte-string keys to values; the canonical encoder writes them in
/// ascending raw byte order, as BEP 3 requires. Byte strings are raw bytes, not text: use
/// ``string`` when a field is known to be UTF-8.
public enum BencodeValue: Hashable, Sendable {
    case integer(Int64)
    case bytes([UInt8])
    case list([BencodeValue])
    case dictionary([[UInt8]: BencodeValue])

    /// The integer, if this is an integer.
    public var integer: Int64? {
        if case .integer(let value) = self { return value }
        return nil
    }

    /// The raw bytes, if this is a byte string.
    public var bytes: [UInt8]? {
        if case .bytes(let value) = self { return value }
        return nil
    }

    /// The byte string decoded as UTF-8, if this is a byte string holding valid UTF-8.
    public var string: String? {
        guard case .bytes(let value) = self else { return nil }
        return String(validating: value, as: UTF8.self)
    }

    /// The elements, if this is a list.
    public var list: [BencodeValue]? {
        if case .list(let value) = self { return value }
        return nil
    }

    /// The entries, if this is a dictionary.
    public var dictionary: [[UInt8]: BencodeValue]? {
        if case .dictionary(let value) = self { return value }
        return nil
    }

    /// The value stored under a UTF-8 key, if this is a dictionary holding it.
    public subscript(key: String) -> BencodeValue? {
        guard case .dictionary(let entries) = self else { return nil }
        return entries[Array(key.utf8)]
    }

    /// A byte string holding the UTF-8 bytes of `text`.
    public static func string(_ text: String) -> BencodeValue {
        .bytes(Array(text.utf8))
    }
}

extension BencodeValue: ExpressibleByIntegerLiteral {
    public init(integerLiteral value: Int64) { self = .integer(value) }
}

extension BencodeValue: ExpressibleByStringLiteral {
    public init(stringLiteral value: String) { self = .bytes(Array(value.utf8)) }
}

extension BencodeValue: ExpressibleByArrayLiteral {
    public init(arrayLiteral elements: BencodeValue...) { self = .list(elements) }
}

extension BencodeValue: ExpressibleByDictionaryLiteral {
    /// Builds a dictionary from UTF-8 keys; a repeated key keeps its last value.
    public init(dictionaryLiteral elements: (String, BencodeValue)...) {
        var entries: [[UInt8]: BencodeValue] = [:]
        for (key, value) in elements { entries[Array(key.utf8)] = value }
        self = .dictionary(entries)
    }
}

extension BencodeValue: CustomStringConvertible {
    /// A short human-readable rendering (byte strings shown as text when printable, else hex).
    public var description: String {
        switch self {
        case .integer(let value):
            return String(value)
        case .bytes(let value):
            if let text = String(validating: value, as: UTF8.self),
                text.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value != 0x7F })
            {
                return "\"\(text)\""
            }
            return "<" + value.map { hexDigits[Int($0 >> 4)] + hexDigits[Int($0 & 0xF)] }.joined() + ">"
        case .list(let values):
            return "[" + values.map(\.description).joined(separator: ", ") + "]"
        case .dictionary(let entries):
            let sorted = entries.sorted { $0.key.lexicographicallyPrecedes($1.key) }
            let rendered = sorted.map { BencodeValue.bytes($0.key).description + ": " + $0.value.description }
            return "{" + rendered.joined(separator: ", ") + "}"
        }
    }
}

private let hexDigits = (0..<16).map { String($0, radix: 16) }

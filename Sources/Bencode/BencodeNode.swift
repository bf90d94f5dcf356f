/// A decoded value together with where it stood in the input.
///
/// The ranges let a caller reach the exact bytes of any value as they were found: the
/// info-hash of a torrent is the SHA-1 of its info dictionary's bytes *as found in the file*
/// (BEP 3), which a lenient producer may have written in a non-canonical order. Offsets are
/// counted from the first byte handed to the decoder.
public struct BencodeNode: Hashable, Sendable {
    /// A dictionary entry: the key, where the key started, and the value.
    public struct Entry: Hashable, Sendable {
        public var key: [UInt8]
        public var keyOffset: Int
        public var value: BencodeNode
    }

    /// The decoded content. Dictionary entries are in input order; with a lenient decoder they
    /// may be unsorted or repeated, and lookups then find the first.
    public enum Kind: Hashable, Sendable {
        case integer(Int64)
        case bytes([UInt8])
        case list([BencodeNode])
        case dictionary([Entry])
    }

    /// The bytes this value occupies in the input, from its first to its last byte.
    public var range: Range<Int>
    public var kind: Kind

    /// The first entry under `key`, if this is a dictionary holding it.
    public subscript(key: String) -> BencodeNode? {
        entry(forKey: Array(key.utf8))?.value
    }

    /// The first entry under `key`, if this is a dictionary holding it.
    public func entry(forKey key: [UInt8]) -> Entry? {
        guard case .dictionary(let entries) = kind else { return nil }
        return entries.first { $0.key == key }
    }

    public var integer: Int64? {
        if case .integer(let value) = kind { return value }
        return nil
    }

    public var bytes: [UInt8]? {
        if case .bytes(let value) = kind { return value }
        return nil
    }

    /// The byte string as UTF-8 text, if it is a byte string of valid UTF-8.
    public var string: String? {
        guard case .bytes(let value) = kind else { return nil }
        return String(validating: value, as: UTF8.self)
    }

    public var list: [BencodeNode]? {
        if case .list(let value) = kind { return value }
        return nil
    }

    public var entries: [Entry]? {
        if case .dictionary(let value) = kind { return value }
        return nil
    }

    /// The plain value, without positions. For repeated keys the first one wins.
    public var value: BencodeValue {
        switch kind {
        case .integer(let value): return .integer(value)
        case .bytes(let value): return .bytes(value)
        case .list(let nodes): return .list(nodes.map(\.value))
        case .dictionary(let entries):
            var result: [[UInt8]: BencodeValue] = [:]
            result.reserveCapacity(entries.count)
            for entry in entries where result[entry.key] == nil { result[entry.key] = entry.value.value }
            return .dictionary(result)
        }
    }
}

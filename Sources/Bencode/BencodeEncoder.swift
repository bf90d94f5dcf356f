/// Writes canonical bencode (BEP 3): dictionary keys in ascending raw byte order, integers in
/// shortest form. The output of ``encode(_:)`` decodes, strictly, to the same value.
public struct BencodeWriter: Sendable {
    /// The bytes written so far.
    public private(set) var bytes: [UInt8]

    public init(capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Appends a whole value in canonical form.
    public mutating func write(_ value: BencodeValue) {
        switch value {
        case .integer(let integer):
            writeInteger(integer)
        case .bytes(let string):
            writeBytes(string)
        case .list(let elements):
            bytes.append(UInt8(ascii: "l"))
            for element in elements { write(element) }
            bytes.append(UInt8(ascii: "e"))
        case .dictionary(let entries):
            bytes.append(UInt8(ascii: "d"))
            for key in entries.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
                writeBytes(key)
                if let entry = entries[key] { write(entry) }
            }
            bytes.append(UInt8(ascii: "e"))
        }
    }

    public mutating func writeInteger(_ value: Int64) {
        bytes.append(UInt8(ascii: "i"))
        bytes.append(contentsOf: String(value).utf8)
        bytes.append(UInt8(ascii: "e"))
    }

    public mutating func writeBytes(_ string: some Collection<UInt8>) {
        bytes.append(contentsOf: String(string.count).utf8)
        bytes.append(UInt8(ascii: ":"))
        bytes.append(contentsOf: string)
    }

    public mutating func writeString(_ text: String) {
        writeBytes(Array(text.utf8))
    }

    /// Appends an already-encoded value verbatim, for a value whose exact bytes must be kept
    /// (a torrent's info dictionary, whose SHA-1 is the info-hash). The caller vouches for it.
    public mutating func writeRaw(_ encoded: some Collection<UInt8>) {
        bytes.append(contentsOf: encoded)
    }

    /// Starts a list; close it with ``end()``.
    public mutating func beginList() { bytes.append(UInt8(ascii: "l")) }
    /// Starts a dictionary; write keys in ascending byte order, each followed by its value.
    public mutating func beginDictionary() { bytes.append(UInt8(ascii: "d")) }
    /// Closes the innermost list or dictionary.
    public mutating func end() { bytes.append(UInt8(ascii: "e")) }
}

extension BencodeValue {
    /// The canonical encoding of this value.
    public func encoded() -> [UInt8] {
        var writer = BencodeWriter()
        writer.write(self)
        return writer.bytes
    }
}

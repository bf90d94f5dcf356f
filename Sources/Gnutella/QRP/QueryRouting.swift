/// The Query Routing Protocol (QRP 1.0, as LimeWire and gtk-gnutella implement it): a leaf
/// hashes every keyword of its shared files into a table of 2^bits slots and sends it to its
/// ultrapeer, which forwards a query to that leaf only when every keyword of the query hits.
public enum QRPHash {
    /// The spec's hash of `word` into `bits` bits: the word's bytes, lower-cased, XORed into a
    /// 32-bit value a byte at a time (little-endian positions), times 0x4F1BBCDC, top `bits`
    /// bits of the low 32 bits.
    public static func hash(_ word: some StringProtocol, bits: Int) -> Int {
        var xor: UInt32 = 0
        for (index, byte) in word.lowercased().utf8.enumerated() {
            xor ^= UInt32(byte) << UInt32((index % 4) * 8)
        }
        return hashFast(xor, bits: bits)
    }

    static func hashFast(_ value: UInt32, bits: Int) -> Int {
        let product = UInt64(value) &* 0x4F1B_BCDC
        let low = product & 0xFFFF_FFFF
        return Int(low >> UInt64(32 - bits))
    }

    /// The keywords QRP indexes in `text`: runs of letters and digits, of 3 characters or more
    /// (LimeWire's rule), lower-cased.
    public static func keywords(_ text: String) -> [String] {
        var words: [String] = []
        var current = ""
        for char in text.lowercased() {
            if char.isLetter || char.isNumber {
                current.append(char)
            } else {
                if current.count >= 3 { words.append(current) }
                current = ""
            }
        }
        if current.count >= 3 { words.append(current) }
        return words
    }
}

/// A route table update (payload type 0x30): RESET (variant 0: the table's size and the value
/// meaning "infinity", i.e. absent) or PATCH (variant 1: part `sequence` of `count`, the
/// compressor, bits per entry, and the patch data).
public enum RouteTableUpdate: Sendable, Equatable {
    case reset(tableLength: UInt32, infinity: UInt8)
    case patch(sequence: UInt8, count: UInt8, compressor: UInt8, entryBits: UInt8, data: [UInt8])

    /// Largest table accepted (2^21 slots: LimeWire's and gtk-gnutella's tables are 2^16–2^20).
    public static let maxTableLength: UInt32 = 1 << 21

    public init(parsing bytes: [UInt8]) throws(GnutellaError) {
        var reader = PayloadReader(bytes)
        switch try reader.byte("route table variant") {
        case 0:
            let length = try reader.uint32LE("table length")
            guard length <= Self.maxTableLength else {
                throw .tooLarge(field: "route table", size: Int(length), limit: Int(Self.maxTableLength))
            }
            guard length > 0, length & (length - 1) == 0 else {
                throw .invalid(field: "table length", offset: 1, reason: "\(length) is not a power of two")
            }
            let infinity = try reader.byte("infinity")
            self = .reset(tableLength: length, infinity: infinity)
        case 1:
            let sequence = try reader.byte("patch sequence number")
            let count = try reader.byte("patch sequence size")
            guard sequence >= 1, sequence <= count else {
                throw .invalid(field: "patch sequence number", offset: 1, reason: "\(sequence) of \(count)")
            }
            let compressor = try reader.byte("compressor")
            guard compressor <= 1 else {
                throw .invalid(
                    field: "compressor", offset: 3, reason: "\(compressor) is neither none (0) nor zlib (1)")
            }
            let bits = try reader.byte("entry bits")
            guard bits == 4 || bits == 8 else {
                throw .invalid(field: "entry bits", offset: 4, reason: "\(bits) is neither 4 nor 8")
            }
            self = .patch(
                sequence: sequence, count: count, compressor: compressor, entryBits: bits, data: reader.rest()
            )
        case let variant:
            throw .invalid(
                field: "route table variant", offset: 0,
                reason: "\(variant) is neither RESET (0) nor PATCH (1)")
        }
    }

    public func encoded() -> [UInt8] {
        switch self {
        case .reset(let length, let infinity):
            var out: [UInt8] = [0]
            out.appendLE(length)
            return out + [infinity]
        case .patch(let sequence, let count, let compressor, let bits, let data):
            return [1, sequence, count, compressor, bits] + data
        }
    }
}

/// A query route table: 2^bits slots, each present or absent. Leaves build one from their
/// keywords and send it as a RESET and PATCHes; ultrapeers rebuild it from those and test
/// queries against it.
public struct QueryRouteTable: Sendable, Equatable {
    public private(set) var bits: Int
    fileprivate(set) var present: [Bool]

    public static let defaultBits = 16
    /// Bytes of patch data per PATCH message (LimeWire: 4 KiB).
    public static let patchChunk = 4 * 1024

    public init(bits: Int = QueryRouteTable.defaultBits) {
        self.bits = bits
        present = [Bool](repeating: false, count: 1 << bits)
    }

    public var length: Int { present.count }
    public var filledSlots: Int { present.lazy.filter { $0 }.count }

    public mutating func add(keyword: String) {
        present[QRPHash.hash(keyword, bits: bits)] = true
    }

    /// Adds the keywords of a shared file's name.
    public mutating func add(fileName: String) {
        for word in QRPHash.keywords(fileName) { add(keyword: word) }
    }

    public func contains(keyword: String) -> Bool { present[QRPHash.hash(keyword, bits: bits)] }

    /// Whether a query could hit: every keyword of its text present (a query of URNs only, or
    /// with no indexable words, is sent on: QRP cannot rule it out).
    public func matches(_ query: Query) -> Bool {
        let words = QRPHash.keywords(query.text)
        guard !words.isEmpty else { return true }
        return words.allSatisfy { contains(keyword: $0) }
    }

    /// The messages that send this table from scratch: RESET, then PATCHes of 4-bit entries
    /// (-1 for "present" against an all-absent table, as LimeWire writes them), zlib-compressed.
    public func updates() -> [RouteTableUpdate] {
        var nibbles = [UInt8](repeating: 0, count: (present.count + 1) / 2)
        for (slot, isPresent) in present.enumerated() where isPresent {
            // -1 in 4-bit two's complement (0xF): the slot goes from infinity to present.
            nibbles[slot / 2] |= slot % 2 == 0 ? 0xF0 : 0x0F
        }
        let compressed = Deflate.compress(nibbles)
        let chunks = stride(from: 0, to: compressed.count, by: Self.patchChunk).map {
            Array(compressed[$0..<min($0 + Self.patchChunk, compressed.count)])
        }
        var messages: [RouteTableUpdate] = [.reset(tableLength: UInt32(present.count), infinity: 7)]
        for (index, chunk) in chunks.enumerated() {
            messages.append(
                .patch(
                    sequence: UInt8(index + 1), count: UInt8(chunks.count), compressor: 1, entryBits: 4,
                    data: chunk))
        }
        return messages
    }
}

/// Rebuilds a leaf's table from its RESET and PATCH messages (an ultrapeer keeps one per leaf).
/// Out-of-order or inconsistent updates are errors; the table is usable once the last PATCH of
/// a sequence has been applied.
public struct QueryRouteTableReceiver: Sendable {
    public private(set) var table: QueryRouteTable?
    private var values: [Int8] = []
    private var infinity: Int = 7
    private var pending: [UInt8] = []
    private var expected: (next: UInt8, count: UInt8, compressor: UInt8, bits: UInt8)?

    public init() {}

    public mutating func apply(_ update: RouteTableUpdate) throws(GnutellaError) {
        switch update {
        case .reset(let length, let infinity):
            guard length >= 2, length <= RouteTableUpdate.maxTableLength, length & (length - 1) == 0 else {
                throw .invalid(field: "table length", offset: 1, reason: "\(length)")
            }
            self.infinity = Int(infinity)
            values = [Int8](repeating: Int8(clamping: Int(infinity)), count: Int(length))
            table = nil
            pending = []
            expected = nil
        case .patch(let sequence, let count, let compressor, let bits, let data):
            guard !values.isEmpty else {
                throw .invalid(field: "PATCH", offset: 0, reason: "no RESET before it")
            }
            if let expected {
                guard sequence == expected.next, count == expected.count, compressor == expected.compressor,
                    bits == expected.bits
                else { throw .invalid(field: "patch sequence number", offset: 1, reason: "out of order") }
            } else {
                guard sequence == 1 else {
                    throw .invalid(field: "patch sequence number", offset: 1, reason: "\(sequence) before 1")
                }
            }
            let limit = values.count * Int(bits) / 8 + 1024
            guard pending.count + data.count <= limit else {
                throw .tooLarge(field: "patch data", size: pending.count + data.count, limit: limit)
            }
            pending += data
            expected = (sequence + 1, count, compressor, bits)
            guard sequence == count else { return }
            let raw = compressor == 1 ? try Deflate.decompress(pending, limit: values.count) : pending
            pending = []
            expected = nil
            try applyPatch(raw, bits: Int(bits))
        }
    }

    private mutating func applyPatch(_ raw: [UInt8], bits: Int) throws(GnutellaError) {
        let entries = bits == 8 ? raw.count : raw.count * 2
        guard entries == values.count else {
            throw .invalid(
                field: "patch data", offset: 5, reason: "\(entries) entries for a table of \(values.count)")
        }
        for slot in 0..<values.count {
            let delta: Int
            if bits == 8 {
                delta = Int(Int8(bitPattern: raw[slot]))
            } else {
                let nibble = slot % 2 == 0 ? raw[slot / 2] >> 4 : raw[slot / 2] & 0x0F
                delta = nibble >= 8 ? Int(nibble) - 16 : Int(nibble)
            }
            values[slot] = Int8(clamping: Int(values[slot]) + delta)
        }
        var table = QueryRouteTable(bits: values.count.trailingZeroBitCount)
        for slot in 0..<values.count where Int(values[slot]) < infinity { table.present[slot] = true }
        self.table = table
    }
}

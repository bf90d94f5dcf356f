import Multiformats

/// Why a Bitswap message was refused: what was wrong and at which byte.
public enum BitswapError: Error, Sendable, Hashable, CustomStringConvertible {
    case malformed(String, offset: Int)
    /// A message (its length prefix) over the cap, checked before it is buffered.
    case tooLarge(Int, limit: Int)
    /// More entries, blocks or presences than one message may carry.
    case tooMany(String, limit: Int)

    public var description: String {
        switch self {
        case .malformed(let why, let offset): return "invalid Bitswap message at byte \(offset): \(why)"
        case .tooLarge(let size, let limit):
            return "a Bitswap message of \(size) bytes (the limit is \(limit))"
        case .tooMany(let what, let limit): return "a Bitswap message with more than \(limit) \(what)"
        }
    }
}

/// One Bitswap message (`/ipfs/bitswap/1.2.0`, 1.1.0 and 1.0.0; boxo's `message.proto`): wantlist
/// entries, blocks and block presences. Blocks are decoded into their CIDs (from the 1.1.0
/// prefix, or CIDv0 for 1.0.0) computed over the data, so a block is its CID's by construction;
/// whether anyone wanted it is the engine's question.
public struct BitswapMessage: Sendable, Hashable {
    /// Bitswap 1.2.0: ask for the block, or only whether the peer has it.
    public enum WantType: UInt64, Sendable, Hashable {
        case block = 0
        case have = 1
    }

    public struct Entry: Sendable, Hashable {
        public var cid: CID
        public var priority: Int32
        public var cancel: Bool
        public var wantType: WantType
        /// Answer `DONT_HAVE` rather than stay silent.
        public var sendDontHave: Bool

        public init(
            cid: CID, priority: Int32 = 1, cancel: Bool = false, wantType: WantType = .block,
            sendDontHave: Bool = false
        ) {
            self.cid = cid
            self.priority = priority
            self.cancel = cancel
            self.wantType = wantType
            self.sendDontHave = sendDontHave
        }
    }

    public enum Presence: UInt64, Sendable, Hashable {
        case have = 0
        case dontHave = 1
    }

    public struct Block: Sendable, Hashable {
        public var cid: CID
        public var data: [UInt8]

        public init(cid: CID, data: [UInt8]) {
            self.cid = cid
            self.data = data
        }
    }

    /// Bounds on a message from a peer (boxo caps messages at 4 MiB).
    public struct Limits: Sendable, Hashable {
        public var maxMessage = 4 << 20
        public var maxEntries = 8_192
        public var maxPresences = 8_192
        public var maxBlocks = 1_024
        public init() {}
    }

    public var entries: [Entry]
    /// The wantlist replaces the last one rather than updating it.
    public var full: Bool
    public var blocks: [Block]
    public var presences: [(cid: CID, presence: Presence)]
    public var pendingBytes: Int32

    public init(
        entries: [Entry] = [], full: Bool = false, blocks: [Block] = [],
        presences: [(cid: CID, presence: Presence)] = [], pendingBytes: Int32 = 0
    ) {
        self.entries = entries
        self.full = full
        self.blocks = blocks
        self.presences = presences
        self.pendingBytes = pendingBytes
    }

    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.entries == rhs.entries && lhs.full == rhs.full && lhs.blocks == rhs.blocks
            && lhs.presences.map(\.cid) == rhs.presences.map(\.cid)
            && lhs.presences.map(\.presence) == rhs.presences.map(\.presence)
            && lhs.pendingBytes == rhs.pendingBytes
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(entries)
        hasher.combine(blocks)
        hasher.combine(presences.count)
    }

    public var isEmpty: Bool { entries.isEmpty && !full && blocks.isEmpty && presences.isEmpty }

    // MARK: Encoding

    /// Which field carries blocks: 1.0.0's bare `blocks` (CIDv0 only), or 1.1.0's `payload`
    /// with each CID's prefix.
    public enum Version: Sendable, CaseIterable {
        case v100, v110, v120

        /// The multistream protocol ID.
        public var protocolID: String {
            switch self {
            case .v100: return "/ipfs/bitswap/1.0.0"
            case .v110: return "/ipfs/bitswap/1.1.0"
            case .v120: return "/ipfs/bitswap/1.2.0"
            }
        }
    }

    /// The protobuf bytes (without the length prefix). For 1.0.0 and 1.1.0 peers, presences and
    /// want-have entries are left out (they do not know them).
    public func encoded(for version: Version = .v120) -> [UInt8] {
        var out: [UInt8] = []
        let entries = version == .v120 ? entries : entries.filter { $0.wantType == .block }
        if !entries.isEmpty || full {
            var wantlist: [UInt8] = []
            for entry in entries {
                var bytes: [UInt8] = []
                ProtobufWriter.bytes(field: 1, entry.cid.bytes, into: &bytes)
                if entry.priority != 0 {
                    ProtobufWriter.varint(field: 2, UInt64(bitPattern: Int64(entry.priority)), into: &bytes)
                }
                if entry.cancel { ProtobufWriter.varint(field: 3, 1, into: &bytes) }
                if version == .v120 {
                    if entry.wantType != .block {
                        ProtobufWriter.varint(field: 4, entry.wantType.rawValue, into: &bytes)
                    }
                    if entry.sendDontHave { ProtobufWriter.varint(field: 5, 1, into: &bytes) }
                }
                ProtobufWriter.bytes(field: 1, bytes, into: &wantlist)
            }
            if full { ProtobufWriter.varint(field: 2, 1, into: &wantlist) }
            ProtobufWriter.bytes(field: 1, wantlist, into: &out)
        }
        for block in blocks {
            if version == .v100 {
                ProtobufWriter.bytes(field: 2, block.data, into: &out)
            } else {
                var bytes: [UInt8] = []
                ProtobufWriter.bytes(field: 1, Self.prefix(of: block.cid), into: &bytes)
                ProtobufWriter.bytes(field: 2, block.data, into: &bytes)
                ProtobufWriter.bytes(field: 3, bytes, into: &out)
            }
        }
        if version == .v120 {
            for (cid, presence) in presences {
                var bytes: [UInt8] = []
                ProtobufWriter.bytes(field: 1, cid.bytes, into: &bytes)
                if presence != .have { ProtobufWriter.varint(field: 2, presence.rawValue, into: &bytes) }
                ProtobufWriter.bytes(field: 4, bytes, into: &out)
            }
            if pendingBytes != 0 {
                ProtobufWriter.varint(field: 5, UInt64(bitPattern: Int64(pendingBytes)), into: &out)
            }
        }
        return out
    }

    /// The message with its unsigned-varint length prefix, as it goes on a stream.
    public func framed(for version: Version = .v120) -> [UInt8] {
        let body = encoded(for: version)
        var out: [UInt8] = []
        ProtobufWriter.varint(UInt64(body.count), into: &out)
        return out + body
    }

    /// A CID's prefix (Bitswap 1.1.0): version, codec, hash function and digest length, as varints.
    public static func prefix(of cid: CID) -> [UInt8] {
        var out: [UInt8] = []
        ProtobufWriter.varint(UInt64(cid.version), into: &out)
        ProtobufWriter.varint(cid.codecCode, into: &out)
        ProtobufWriter.varint(cid.multihash.code, into: &out)
        ProtobufWriter.varint(UInt64(cid.multihash.digest.count), into: &out)
        return out
    }

    // MARK: Decoding

    /// Decodes a message body (after its length prefix), within `limits`.
    public init(decoding bytes: [UInt8], limits: Limits = Limits()) throws(BitswapError) {
        guard bytes.count <= limits.maxMessage else { throw .tooLarge(bytes.count, limit: limits.maxMessage) }
        self.init()
        var reader = ProtobufReader(bytes)
        do {
            while let field = try reader.next() {
                switch (field.number, field.value) {
                case (1, .bytes(let range)):
                    try decodeWantlist(bytes, range, limits)
                case (2, .bytes(let range)):
                    guard blocks.count < limits.maxBlocks else {
                        throw BitswapError.tooMany("blocks", limit: limits.maxBlocks)
                    }
                    let data = Array(bytes[range])
                    blocks.append(Block(cid: try CID(v0: Multihash.hash(data)), data: data))
                case (3, .bytes(let range)):
                    guard blocks.count < limits.maxBlocks else {
                        throw BitswapError.tooMany("blocks", limit: limits.maxBlocks)
                    }
                    blocks.append(try Self.decodePayload(bytes, range))
                case (4, .bytes(let range)):
                    guard presences.count < limits.maxPresences else {
                        throw BitswapError.tooMany("block presences", limit: limits.maxPresences)
                    }
                    presences.append(try Self.decodePresence(bytes, range))
                case (5, .varint(let value)):
                    pendingBytes = Int32(truncatingIfNeeded: value)
                case (1...5, _):
                    throw BitswapError.malformed(
                        "field \(field.number) has the wrong wire type", offset: field.offset)
                default:
                    continue  // unknown fields are skipped, as proto3 readers do
                }
            }
        } catch let error as BitswapError {
            throw error
        } catch let error as ProtobufError {
            throw .malformed(error.what, offset: error.offset)
        } catch let error as MultiformatError {
            throw .malformed("\(error)", offset: 0)
        } catch {
            throw .malformed("\(error)", offset: 0)
        }
    }

    private mutating func decodeWantlist(_ bytes: [UInt8], _ range: Range<Int>, _ limits: Limits) throws {
        var reader = ProtobufReader(bytes, range: range)
        while let field = try reader.next() {
            switch (field.number, field.value) {
            case (1, .bytes(let entryRange)):
                guard entries.count < limits.maxEntries else {
                    throw BitswapError.tooMany("wantlist entries", limit: limits.maxEntries)
                }
                entries.append(try Self.decodeEntry(bytes, entryRange))
            case (2, .varint(let value)):
                full = value != 0
            case (1...2, _):
                throw BitswapError.malformed(
                    "wantlist field \(field.number) has the wrong wire type", offset: field.offset)
            default:
                continue
            }
        }
    }

    private static func decodeEntry(_ bytes: [UInt8], _ range: Range<Int>) throws -> Entry {
        var reader = ProtobufReader(bytes, range: range)
        var cid: CID?
        var priority: Int32 = 0
        var cancel = false
        var wantType = WantType.block
        var sendDontHave = false
        while let field = try reader.next() {
            switch (field.number, field.value) {
            case (1, .bytes(let cidRange)): cid = try decodeCID(bytes, cidRange, field.offset)
            case (2, .varint(let value)): priority = Int32(truncatingIfNeeded: value)
            case (3, .varint(let value)): cancel = value != 0
            case (4, .varint(let value)):
                guard let type = WantType(rawValue: value) else {
                    throw BitswapError.malformed("want type \(value)", offset: field.offset)
                }
                wantType = type
            case (5, .varint(let value)): sendDontHave = value != 0
            case (1...5, _):
                throw BitswapError.malformed(
                    "entry field \(field.number) has the wrong wire type", offset: field.offset)
            default: continue
            }
        }
        guard let cid else {
            throw BitswapError.malformed("a wantlist entry without a CID", offset: range.lowerBound)
        }
        return Entry(
            cid: cid, priority: priority, cancel: cancel, wantType: wantType, sendDontHave: sendDontHave)
    }

    private static func decodePresence(_ bytes: [UInt8], _ range: Range<Int>) throws -> (
        cid: CID, presence: Presence
    ) {
        var reader = ProtobufReader(bytes, range: range)
        var cid: CID?
        var presence = Presence.have
        while let field = try reader.next() {
            switch (field.number, field.value) {
            case (1, .bytes(let cidRange)): cid = try decodeCID(bytes, cidRange, field.offset)
            case (2, .varint(let value)):
                guard let type = Presence(rawValue: value) else {
                    throw BitswapError.malformed("presence type \(value)", offset: field.offset)
                }
                presence = type
            case (1...2, _):
                throw BitswapError.malformed(
                    "presence field \(field.number) has the wrong wire type", offset: field.offset)
            default: continue
            }
        }
        guard let cid else {
            throw BitswapError.malformed("a block presence without a CID", offset: range.lowerBound)
        }
        return (cid, presence)
    }

    private static func decodePayload(_ bytes: [UInt8], _ range: Range<Int>) throws -> Block {
        var reader = ProtobufReader(bytes, range: range)
        var prefix: [UInt8]?
        var data: [UInt8] = []
        var prefixOffset = range.lowerBound
        while let field = try reader.next() {
            switch (field.number, field.value) {
            case (1, .bytes(let prefixRange)):
                prefix = Array(bytes[prefixRange])
                prefixOffset = field.offset
            case (2, .bytes(let dataRange)): data = Array(bytes[dataRange])
            case (1...2, _):
                throw BitswapError.malformed(
                    "block field \(field.number) has the wrong wire type", offset: field.offset)
            default: continue
            }
        }
        guard let prefix else {
            throw BitswapError.malformed("a block without a CID prefix", offset: range.lowerBound)
        }
        return Block(cid: try cid(prefix: prefix, data: data, offset: prefixOffset), data: data)
    }

    /// The CID of `data` under a 1.1.0 prefix (version, codec, hash function, digest length).
    static func cid(prefix: [UInt8], data: [UInt8], offset: Int) throws -> CID {
        var at = 0
        var values: [UInt64] = []
        do {
            for _ in 0..<4 { values.append(try Varint.decode(prefix, at: &at)) }
        } catch {
            throw BitswapError.malformed("a CID prefix: \(error)", offset: offset)
        }
        guard at == prefix.count else {
            throw BitswapError.malformed("a CID prefix with trailing bytes", offset: offset)
        }
        let (version, codec, code, length) = (values[0], values[1], values[2], values[3])
        guard let function = Multihash.Function(rawValue: code), function != .identity else {
            throw BitswapError.malformed(
                "hash function 0x\(String(code, radix: 16)) in a CID prefix", offset: offset)
        }
        let multihash = Multihash.hash(data, with: function)
        guard length == UInt64(multihash.digest.count) else {
            throw BitswapError.malformed("a digest length of \(length) for \(function.name)", offset: offset)
        }
        switch version {
        case 0:
            guard codec == Codec.dagPB.rawValue, function == .sha256 else {
                throw BitswapError.malformed("a CIDv0 prefix that is not dag-pb sha2-256", offset: offset)
            }
            return try CID(v0: multihash)
        case 1:
            return CID(v1Code: codec, multihash)
        default:
            throw BitswapError.malformed("CID version \(version)", offset: offset)
        }
    }

    private static func decodeCID(_ bytes: [UInt8], _ range: Range<Int>, _ offset: Int) throws -> CID {
        guard range.count <= 128 else {
            throw BitswapError.malformed("a CID of \(range.count) bytes", offset: offset)
        }
        do {
            return try CID(bytes: Array(bytes[range]))
        } catch {
            throw BitswapError.malformed("a CID: \(error)", offset: offset)
        }
    }
}

/// Cuts a Bitswap stream into messages: each an unsigned varint length and that many bytes, the
/// length checked against the cap before the body is awaited. Sans I/O. The driver calls
/// ``next()`` after every ``feed(_:)`` until it returns nil, so what is buffered stays within one
/// message and one read.
public struct BitswapFrameReader: Sendable {
    var buffer: [UInt8] = []
    public let limits: BitswapMessage.Limits

    public init(limits: BitswapMessage.Limits = BitswapMessage.Limits()) { self.limits = limits }

    public var buffered: Int { buffer.count }

    public mutating func feed(_ bytes: some Collection<UInt8>) { buffer.append(contentsOf: bytes) }

    /// The next whole message, or nil until it has all come.
    public mutating func next() throws(BitswapError) -> BitswapMessage? {
        var offset = 0
        let length: UInt64
        do {
            length = try Varint.decode(buffer, at: &offset)
        } catch {
            // Unterminated: wait for more, unless it can no longer be a valid length.
            if buffer.count < Varint.maxBytes, buffer.allSatisfy({ $0 & 0x80 != 0 }) { return nil }
            throw .malformed("a message length: \(error)", offset: 0)
        }
        guard length <= UInt64(limits.maxMessage) else {
            throw .tooLarge(Int(clamping: length), limit: limits.maxMessage)
        }
        guard buffer.count - offset >= Int(length) else { return nil }
        let body = Array(buffer[offset..<offset + Int(length)])
        buffer.removeFirst(offset + Int(length))
        return try BitswapMessage(decoding: body, limits: limits)
    }
}

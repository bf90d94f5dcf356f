/// Content codecs from the multicodec table that CIDs here name.
public enum Codec: UInt64, Sendable, CaseIterable {
    case raw = 0x55
    case dagPB = 0x70
    case dagCBOR = 0x71
    case libp2pKey = 0x72

    public var name: String {
        switch self {
        case .raw: return "raw"
        case .dagPB: return "dag-pb"
        case .dagCBOR: return "dag-cbor"
        case .libp2pKey: return "libp2p-key"
        }
    }
}

/// A content identifier: CIDv0 (a base58btc sha2-256 multihash of a dag-pb block, "Qm…") or
/// CIDv1 (version, codec and multihash, written in a multibase; base32 by default, base36 for
/// libp2p keys).
public struct CID: Hashable, Sendable, CustomStringConvertible {
    public let version: Int
    /// The multicodec code of the content (kept even when this library does not know it).
    public let codecCode: UInt64
    public let multihash: Multihash

    /// A CIDv0: dag-pb, sha2-256 only.
    public init(v0 multihash: Multihash) throws(MultiformatError) {
        guard multihash.code == Multihash.Function.sha256.rawValue, multihash.digest.count == 32 else {
            throw .invalid("a CIDv0 holds a 32-byte sha2-256 multihash")
        }
        version = 0
        codecCode = Codec.dagPB.rawValue
        self.multihash = multihash
    }

    /// A CIDv1.
    public init(v1 codec: Codec, _ multihash: Multihash) {
        self.init(v1Code: codec.rawValue, multihash)
    }

    public init(v1Code codec: UInt64, _ multihash: Multihash) {
        version = 1
        codecCode = codec
        self.multihash = multihash
    }

    public var codec: Codec? { Codec(rawValue: codecCode) }

    /// The binary form: the bare multihash for v0; version, codec and multihash for v1.
    public var bytes: [UInt8] {
        if version == 0 { return multihash.bytes }
        return Varint.encode(1) + Varint.encode(codecCode) + multihash.bytes
    }

    /// Reads the binary form at `offset` (as dag-pb links and CAR sections hold it).
    public static func read(_ bytes: [UInt8], at offset: inout Int) throws(MultiformatError) -> CID {
        // A v0 CID starts with sha2-256's code and length: 0x12 0x20.
        if bytes.count - offset >= 34 && bytes[offset] == 0x12 && bytes[offset + 1] == 0x20 {
            return try CID(v0: try Multihash.read(bytes, at: &offset))
        }
        let versionOffset = offset
        let version = try Varint.decode(bytes, at: &offset)
        guard version == 1 else { throw .invalid("CID version \(version) at byte \(versionOffset)") }
        let codec = try Varint.decode(bytes, at: &offset)
        return CID(v1Code: codec, try Multihash.read(bytes, at: &offset))
    }

    /// A whole binary CID.
    public init(bytes: [UInt8]) throws(MultiformatError) {
        var offset = 0
        self = try Self.read(bytes, at: &offset)
        guard offset == bytes.count else { throw .invalid("\(bytes.count - offset) bytes after the CID") }
    }

    /// Parses text: a CIDv0 ("Qm…", 46 base58btc characters) or a multibase CIDv1.
    public init(_ text: String) throws(MultiformatError) {
        if text.utf8.count == 46 && text.hasPrefix("Qm") {
            let bytes = try Multibase.base58btc.decode(digits: Array(text.utf8))
            self = try CID(v0: try Multihash(bytes: bytes))
            return
        }
        guard text.utf8.count <= Multibase.maxBigBaseLength else {
            throw .badLength("CID text of \(text.utf8.count) characters", offset: 0)
        }
        let (_, bytes) = try Multibase.decode(text)
        self = try CID(bytes: bytes)
        guard version == 1 else { throw .invalid("a CIDv0 is written in base58btc without a prefix") }
    }

    /// The usual text: base58btc for v0, base36 for libp2p keys, base32 otherwise.
    public var description: String {
        if version == 0 { return String(decoding: Multibase.base58btc.digits(of: bytes), as: UTF8.self) }
        return string(in: codec == .libp2pKey ? .base36 : .base32)
    }

    /// The text in `base` (v1 only; a v0 CID is always base58btc).
    public func string(in base: Multibase) -> String {
        if version == 0 { return description }
        return base.encode(bytes)
    }

    /// The same content as CIDv1.
    public var v1: CID { CID(v1Code: codecCode, multihash) }

    /// The same content as CIDv0, when it can be one (dag-pb, sha2-256).
    public var v0: CID? {
        guard codecCode == Codec.dagPB.rawValue else { return nil }
        return try? CID(v0: multihash)
    }
}

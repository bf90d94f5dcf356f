import Multiformats

/// A link of a dag-pb node: the child's CID, an optional name (a directory entry's name; empty
/// for the chunks of a file) and an optional cumulative size of the child's whole DAG.
public struct DagPBLink: Hashable, Sendable {
    public var cid: CID
    public var name: String?
    public var tsize: UInt64?

    public init(cid: CID, name: String? = nil, tsize: UInt64? = nil) {
        self.cid = cid
        self.name = name
        self.tsize = tsize
    }
}

/// A dag-pb node (the IPLD dag-pb spec): links, then optional opaque data (UnixFS puts its
/// protobuf there). The codec is strict: it decodes only the canonical form that it encodes.
public struct DagPBNode: Hashable, Sendable {
    public var links: [DagPBLink]
    public var data: [UInt8]?

    /// Largest block decoded: the 2 MiB that Bitswap carries (a 1 MiB chunk plus headroom).
    public static let maxBlockSize = 2 << 20

    public init(links: [DagPBLink] = [], data: [UInt8]? = nil) {
        self.links = links
        self.data = data
    }

    /// The canonical bytes: links first (sorted by name bytes, stably, as the spec requires), each
    /// with Hash, Name, Tsize in that order; then Data.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        let sorted =
            links.count < 2 || !links.contains(where: { ($0.name ?? "") != (links[0].name ?? "") })
            ? links : Self.sortedStably(links)
        for link in sorted {
            var body: [UInt8] = []
            Protobuf.appendBytes(1, link.cid.bytes, to: &body)
            if let name = link.name { Protobuf.appendBytes(2, Array(name.utf8), to: &body) }
            if let tsize = link.tsize { Protobuf.appendUInt(3, tsize, to: &body) }
            Protobuf.appendBytes(2, body, to: &out)
        }
        if let data { Protobuf.appendBytes(1, data, to: &out) }
        return out
    }

    static func sortedStably(_ links: [DagPBLink]) -> [DagPBLink] {
        links.enumerated().sorted { a, b in
            let x = Array((a.element.name ?? "").utf8)
            let y = Array((b.element.name ?? "").utf8)
            return x == y ? a.offset < b.offset : x.lexicographicallyPrecedes(y)
        }.map(\.element)
    }

    /// Decodes a strict dag-pb node: only fields 1 and 2 with their wire types, all links before
    /// the data, at most one data field, link fields in order and each at most once, a link's
    /// Hash present and a valid CID, names valid UTF-8.
    public init(decoding bytes: [UInt8]) throws(IPFSError) {
        guard bytes.count <= Self.maxBlockSize else { throw .blockTooLarge(nil, size: bytes.count) }
        var reader = Protobuf.Reader(bytes) { .badDagPB($0, offset: $1) }
        var links: [DagPBLink] = []
        var data: [UInt8]?
        while !reader.atEnd {
            let (field, wireType, at) = try reader.tag()
            guard wireType == Protobuf.lengthDelimited else {
                throw .badDagPB("field \(field) has wire type \(wireType), want 2", offset: at)
            }
            switch field {
            case 1:
                guard data == nil else { throw .badDagPB("a second Data field", offset: at) }
                data = Array(bytes[try reader.lengthDelimited("Data")])
            case 2:
                guard data == nil else { throw .badDagPB("a link after the Data field", offset: at) }
                links.append(try Self.decodeLink(bytes, try reader.lengthDelimited("link")))
            default:
                throw .badDagPB("unknown field \(field)", offset: at)
            }
        }
        self.links = links
        self.data = data
    }

    private static func decodeLink(_ bytes: [UInt8], _ range: Range<Int>) throws(IPFSError) -> DagPBLink {
        var reader = Protobuf.Reader(bytes, range: range) { .badDagPB($0, offset: $1) }
        var cid: CID?
        var name: String?
        var tsize: UInt64?
        var last = 0
        while !reader.atEnd {
            let (field, wireType, at) = try reader.tag()
            guard field > last else {
                throw .badDagPB(
                    "link field \(field) after field \(last) (out of order or repeated)", offset: at)
            }
            last = field
            switch (field, wireType) {
            case (1, Protobuf.lengthDelimited):
                let hashRange = try reader.lengthDelimited("link Hash")
                do {
                    cid = try CID(bytes: Array(bytes[hashRange]))
                } catch {
                    throw .badDagPB("link Hash is not a CID: \(error)", offset: hashRange.lowerBound)
                }
            case (2, Protobuf.lengthDelimited):
                let nameRange = try reader.lengthDelimited("link Name")
                guard let text = String(validating: bytes[nameRange], as: UTF8.self) else {
                    throw .badDagPB("link Name is not UTF-8", offset: nameRange.lowerBound)
                }
                name = text
            case (3, Protobuf.varint):
                tsize = try reader.varint("link Tsize")
            default:
                throw .badDagPB("link field \(field) with wire type \(wireType)", offset: at)
            }
        }
        guard let cid else { throw .badDagPB("link without a Hash", offset: range.lowerBound) }
        return DagPBLink(cid: cid, name: name, tsize: tsize)
    }
}

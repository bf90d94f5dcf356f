import Bencode
import Crypto
import PeerNet
import SystemPackage

/// A `.torrent` file (BEP 3, v1; BEP 52, v2 and hybrid): the info dictionary and what
/// surrounds it.
///
/// The info dictionary's bytes are kept exactly as found (``infoBytes``), so the info-hash is
/// right even for files a lenient producer wrote with unsorted keys, and re-encoding the
/// torrent writes them back untouched. Reading is lenient about the outer dictionary (as
/// libtorrent is) but checks the info dictionary: piece count, lengths and safe paths.
public struct Metainfo: Hashable, Sendable {
    public let info: InfoDictionary
    /// The info dictionary exactly as it stands in the file; its SHA-1 is ``infoHash``.
    public let infoBytes: [UInt8]
    /// The 20 bytes that name the torrent on the wire: the v1 info-hash (SHA-1), or for a
    /// v2-only torrent the v2 one truncated (BEP 52).
    public let infoHash: InfoHash
    /// The v1 info-hash (SHA-1 of ``infoBytes``), when the torrent has a v1 view.
    public var infoHashV1: InfoHash? { info.version.hasV1 ? Self.hash(infoBytes) : nil }
    /// The v2 info-hash (SHA-256 of ``infoBytes``), when the torrent has a v2 view.
    public let infoHashV2: InfoHashV2?
    /// BEP 52 `piece layers`: for each file longer than a piece, its `pieces root` → the
    /// concatenated SHA-256 of its pieces. Only layers that match their root are kept (libtorrent
    /// loads a torrent with a wrong layer too, and fetches the layer from peers).
    public var pieceLayers: [[UInt8]: [UInt8]]
    /// `announce`: the primary tracker URL.
    public var announce: String?
    /// `announce-list` (BEP 12): tiers of tracker URLs, tried tier by tier.
    public var announceList: [[String]]
    /// `url-list` (BEP 19): web seed URLs.
    public var webSeeds: [String]
    public var comment: String?
    public var createdBy: String?
    /// `creation date`, seconds since 1970.
    public var creationDate: Int64?
    /// Top-level keys this type does not interpret (`nodes`, `httpseeds`, …), kept for re-encoding.
    public var extraFields: [[UInt8]: BencodeValue]

    /// The trackers to use: `announce-list` when present (BEP 12), else `announce`.
    public var trackerTiers: [[String]] {
        if !announceList.isEmpty { return announceList }
        return announce.map { [[$0]] } ?? []
    }

    /// Reads a `.torrent` file. Errors name the field and byte offset.
    public init(parsing bytes: [UInt8], limits: MetainfoLimits = .standard) throws(MetainfoError) {
        guard bytes.count <= limits.maxTorrentSize else {
            throw .limitExceeded(
                "file of \(bytes.count) bytes is larger than \(limits.maxTorrentSize)", offset: 0)
        }
        let decoder = BencodeDecoder(mode: .lenient, limits: limits.bencode)
        let root: BencodeNode
        do {
            root = try decoder.decodeNode(bytes)
        } catch {
            throw .bencode(error)
        }
        guard let entries = root.entries else {
            throw .wrongType("(top level)", expected: "a dictionary", offset: root.range.lowerBound)
        }
        guard let infoNode = root["info"] else {
            throw .missingField("info", offset: root.range.lowerBound)
        }
        let infoBytes = Array(bytes[infoNode.range])
        let info = try InfoDictionary(node: infoNode, limits: limits, infoHash: Self.hash(infoBytes))
        self.info = info
        self.infoBytes = infoBytes
        self.infoHash = Self.wireHash(infoBytes, version: info.version)
        self.infoHashV2 = info.version.hasV2 ? InfoHashV2(hashing: infoBytes) : nil
        self.pieceLayers = try Self.pieceLayers(root["piece layers"], info: info)

        var extra: [[UInt8]: BencodeValue] = [:]
        var announce: String?
        var announceList: [[String]] = []
        var webSeeds: [String] = []
        var comment: String?
        var createdBy: String?
        var creationDate: Int64?
        // Optional fields of the wrong type are ignored but kept, as libtorrent ignores them.
        for entry in entries where entry.key != Array("info".utf8) && entry.key != Array("piece layers".utf8)
        {
            let key = String(decoding: entry.key, as: UTF8.self)
            let value = entry.value
            var understood = true
            switch key {
            case "announce":
                if let text = value.string { announce = text } else { understood = false }
            case "announce-list":
                if let tiers = value.list {
                    announceList = tiers.compactMap { tier in
                        let urls = tier.list?.compactMap(\.string).filter { !$0.isEmpty } ?? []
                        return urls.isEmpty ? nil : urls
                    }
                } else {
                    understood = false
                }
            case "url-list":
                if let single = value.string {
                    webSeeds = single.isEmpty ? [] : [single]
                } else if let list = value.list {
                    webSeeds = list.compactMap(\.string).filter { !$0.isEmpty }
                } else {
                    understood = false
                }
            case "comment":
                if let text = value.string { comment = text } else { understood = false }
            case "created by":
                if let text = value.string { createdBy = text } else { understood = false }
            case "creation date":
                if let date = value.integer { creationDate = date } else { understood = false }
            default:
                understood = false
            }
            if !understood && extra[entry.key] == nil { extra[entry.key] = value.value }
        }
        if let utf8Comment = root["comment.utf-8"]?.string { comment = utf8Comment }
        self.announce = announce
        self.announceList = announceList
        self.webSeeds = webSeeds
        self.comment = comment
        self.createdBy = createdBy
        self.creationDate = creationDate
        self.extraFields = extra
    }

    /// Reads a `.torrent` file from disk, refusing files larger than `limits.maxTorrentSize`
    /// before reading them.
    public init(contentsOf path: FilePath, limits: MetainfoLimits = .standard) throws(MetainfoError) {
        let bytes: [UInt8]
        do {
            bytes = try SmallFile.read(path, limit: limits.maxTorrentSize)
        } catch let error as SmallFile.TooLarge {
            throw MetainfoError.limitExceeded(
                "file of \(error.size) bytes is larger than the limit of \(error.limit)", offset: 0)
        } catch {
            throw .unreadableFile("cannot read: \(error)")
        }
        try self.init(parsing: bytes, limits: limits)
    }

    /// Wraps an info dictionary (made by ``TorrentCreator`` or fetched with BEP 9) in metainfo.
    public init(
        info: InfoDictionary, announce: String? = nil, announceList: [[String]] = [], webSeeds: [String] = [],
        comment: String? = nil, createdBy: String? = nil, creationDate: Int64? = nil,
        extraFields: [[UInt8]: BencodeValue] = [:], pieceLayers: [[UInt8]: [UInt8]] = [:]
    ) {
        self.info = info
        self.infoBytes = info.encoded()
        self.infoHash = Self.wireHash(infoBytes, version: info.version)
        self.infoHashV2 = info.version.hasV2 ? InfoHashV2(hashing: infoBytes) : nil
        self.pieceLayers = pieceLayers
        self.announce = announce
        self.announceList = announceList
        self.webSeeds = webSeeds
        self.comment = comment
        self.createdBy = createdBy
        self.creationDate = creationDate
        self.extraFields = extraFields
    }

    /// The `.torrent` file: every field in canonical order, the info dictionary's bytes as kept.
    public func encoded() -> [UInt8] {
        var fields = extraFields
        if let announce { fields[Array("announce".utf8)] = .string(announce) }
        if !announceList.isEmpty {
            fields[Array("announce-list".utf8)] = .list(
                announceList.map { .list($0.map(BencodeValue.string)) })
        }
        if let comment { fields[Array("comment".utf8)] = .string(comment) }
        if let createdBy { fields[Array("created by".utf8)] = .string(createdBy) }
        if let creationDate { fields[Array("creation date".utf8)] = .integer(creationDate) }
        if webSeeds.count == 1 {
            fields[Array("url-list".utf8)] = .string(webSeeds[0])
        } else if !webSeeds.isEmpty {
            fields[Array("url-list".utf8)] = .list(webSeeds.map(BencodeValue.string))
        }
        let infoKey = Array("info".utf8)
        fields[infoKey] = nil
        if !pieceLayers.isEmpty {
            fields[Array("piece layers".utf8)] = .dictionary(pieceLayers.mapValues { .bytes($0) })
        }
        var writer = BencodeWriter(capacity: infoBytes.count + 256)
        writer.beginDictionary()
        var wroteInfo = false
        for key in fields.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            if !wroteInfo && !key.lexicographicallyPrecedes(infoKey) {
                writer.writeBytes(infoKey)
                writer.writeRaw(infoBytes)
                wroteInfo = true
            }
            writer.writeBytes(key)
            if let value = fields[key] { writer.write(value) }
        }
        if !wroteInfo {
            writer.writeBytes(infoKey)
            writer.writeRaw(infoBytes)
        }
        writer.end()
        return writer.bytes
    }

    /// A magnet link naming this torrent, its trackers and web seeds.
    public var magnetLink: MagnetLink {
        MagnetLink(
            infoHash: infoHashV1, infoHashV2: infoHashV2.map { [0x12, 0x20] + $0.bytes },
            displayName: info.name, trackers: trackerTiers.flatMap { $0 },
            webSeeds: webSeeds)
    }

    static func hash(_ bytes: [UInt8]) -> InfoHash {
        InfoHash(digest: Insecure.SHA1.hash(data: bytes))
    }

    /// The 20 bytes that name a torrent on the wire: SHA-1 when it has a v1 view, else the
    /// truncated SHA-256 (BEP 52).
    public static func wireHash(_ infoBytes: [UInt8], version: MetaVersion) -> InfoHash {
        version.hasV1 ? hash(infoBytes) : InfoHashV2(hashing: infoBytes).truncated
    }

    /// Reads `piece layers`: a layer of the wrong size is refused (as libtorrent refuses it);
    /// one whose hashes do not lead to its file's root is dropped.
    static func pieceLayers(_ node: BencodeNode?, info: InfoDictionary) throws(MetainfoError) -> [[UInt8]:
        [UInt8]]
    {
        guard info.version.hasV2, let node, let entries = node.entries else { return [:] }
        var pieceCounts: [[UInt8]: Int] = [:]
        for file in info.files where file.length > Int64(info.pieceLength) {
            if let root = file.piecesRoot {
                pieceCounts[root] = Int((file.length + Int64(info.pieceLength) - 1) / Int64(info.pieceLength))
            }
        }
        var layers: [[UInt8]: [UInt8]] = [:]
        for entry in entries {
            guard let count = pieceCounts[entry.key] else { continue }
            guard let bytes = entry.value.bytes, bytes.count == count * MerkleTree.hashSize else {
                throw .invalidValue(
                    "piece layers",
                    reason: "a layer does not hold one 32-byte hash for each of its file's \(count) pieces",
                    offset: entry.value.range.lowerBound)
            }
            let hashes = stride(from: 0, to: bytes.count, by: MerkleTree.hashSize).map {
                Array(bytes[$0..<$0 + MerkleTree.hashSize])
            }
            if MerkleTree.root(pieceLayer: hashes, pieceLength: info.pieceLength) == entry.key {
                layers[entry.key] = bytes
            }
        }
        return layers
    }
}

extension InfoHash {
    /// A SHA-1 digest is always 20 bytes.
    init(digest: Insecure.SHA1.Digest) {
        self.init(uncheckedBytes: Array(digest))
    }
}

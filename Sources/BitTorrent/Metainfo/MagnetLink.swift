/// A magnet link (BEP 9): names a torrent by info-hash, optionally with a display name,
/// trackers, peers and web seeds, so the metadata can be fetched from peers.
///
/// Parameters: `xt=urn:btih:` (v1 info-hash, 40 hex or 32 base32 characters), `xt=urn:btmh:`
/// (v2, BEP 52: a sha2-256 multihash in hex), `dn`, `tr` (repeatable; `tr.1`… too), `x.pe`
/// (peer `host:port`, repeatable), `ws` (web seed, BEP 19), `so` (select-only, BEP 53:
/// `0,2,4-6`). Values are percent-decoded as UTF-8; `+` means a space only in `dn`.
public struct MagnetLink: Hashable, Sendable {
    public var infoHash: InfoHash?
    /// The v2 info-hash's multihash (`0x12 0x20` + 32 bytes), from `xt=urn:btmh:`.
    public var infoHashV2: [UInt8]?
    public var displayName: String?
    public var trackers: [String]
    public var peers: [String]
    public var webSeeds: [String]
    /// BEP 53 `so`: indices of the files to download.
    public var selectOnly: [ClosedRange<Int>]

    public init(
        infoHash: InfoHash?, infoHashV2: [UInt8]? = nil, displayName: String? = nil, trackers: [String] = [],
        peers: [String] = [], webSeeds: [String] = [], selectOnly: [ClosedRange<Int>] = []
    ) {
        self.infoHash = infoHash
        self.infoHashV2 = infoHashV2
        self.displayName = displayName
        self.trackers = trackers
        self.peers = peers
        self.webSeeds = webSeeds
        self.selectOnly = selectOnly
    }

    /// The v2 info-hash named by `xt=urn:btmh:`.
    public var v2InfoHash: InfoHashV2? { infoHashV2.flatMap { InfoHashV2(bytes: $0.dropFirst(2)) } }

    /// The 20 bytes to join the swarm with: the v1 info-hash, else the v2 one truncated
    /// (BEP 52).
    public var wireHash: InfoHash? { infoHash ?? v2InfoHash?.truncated }

    /// Most parameters accepted in one link, and most `so` entries.
    static let maxParameters = 1_000

    /// Parses a magnet URI.
    public init(parsing text: String) throws(MagnetLinkError) {
        let utf8 = Array(text.utf8)
        let prefix = Array("magnet:?".utf8)
        guard utf8.count >= prefix.count,
            utf8[..<prefix.count].map({ $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }) == prefix
        else {
            throw .notAMagnetLink
        }
        self.init(infoHash: nil)
        let query = utf8[prefix.count...]
        let parameters = query.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true)
        guard parameters.count <= Self.maxParameters else { throw .tooManyParameters(Self.maxParameters) }
        for parameter in parameters {
            let parts = parameter.split(
                separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            let rawKey = String(decoding: parts[0], as: UTF8.self).lowercased()
            // BEP 9 allows numbered repeats such as `tr.1`, `xt.2`.
            var key = rawKey
            if let dot = rawKey.lastIndex(of: "."),
                rawKey[rawKey.index(after: dot)...].allSatisfy(\.isNumber),
                rawKey != "x.pe", dot != rawKey.index(before: rawKey.endIndex)
            {
                key = String(rawKey[..<dot])
            }
            let rawValue = parts.count > 1 ? Array(parts[1]) : []
            let value = try Self.percentDecode(rawValue, plusIsSpace: key == "dn", parameter: rawKey)
            switch key {
            case "xt":
                try addExactTopic(value)
            case "dn":
                displayName = value
            case "tr":
                if !value.isEmpty { trackers.append(value) }
            case "x.pe":
                if !value.isEmpty { peers.append(value) }
            case "ws":
                if !value.isEmpty { webSeeds.append(value) }
            case "so":
                selectOnly = try Self.parseSelectOnly(value)
            default:
                continue  // xl, kt, as, mt, …: not used here
            }
        }
        guard infoHash != nil || infoHashV2 != nil else { throw .missingInfoHash }
    }

    private mutating func addExactTopic(_ value: String) throws(MagnetLinkError) {
        let lower = value.lowercased()
        if lower.hasPrefix("urn:btih:") {
            let hash = value.dropFirst("urn:btih:".count)
            guard let parsed = InfoHash(hash) else { throw .invalidInfoHash(String(hash)) }
            infoHash = parsed
        } else if lower.hasPrefix("urn:btmh:") {
            let hash = value.dropFirst("urn:btmh:".count)
            guard let bytes = Hex.decode(Array(hash.utf8)), bytes.count == 34, bytes[0] == 0x12,
                bytes[1] == 0x20
            else {
                throw .invalidInfoHash(String(hash))
            }
            infoHashV2 = bytes
        }
        // Other URNs (ed2k, sha1, …) name the same file in other networks; ignored here.
    }

    private static func parseSelectOnly(_ value: String) throws(MagnetLinkError) -> [ClosedRange<Int>] {
        var ranges: [ClosedRange<Int>] = []
        for item in value.split(separator: ",") {
            guard ranges.count < maxParameters else { throw .tooManyParameters(maxParameters) }
            let bounds = item.split(separator: "-", maxSplits: 1, omittingEmptySubsequences: false)
            guard let low = Int(bounds[0]), low >= 0, low <= Int(Int32.max) else {
                throw .invalidSelectOnly(value)
            }
            var high = low
            if bounds.count == 2 {
                guard let parsed = Int(bounds[1]), parsed >= low, parsed <= Int(Int32.max) else {
                    throw .invalidSelectOnly(value)
                }
                high = parsed
            }
            ranges.append(low...high)
        }
        return ranges
    }

    /// The link as a URI. Values are percent-encoded except RFC 3986 unreserved characters.
    public var uri: String {
        var parts: [String] = []
        if let infoHash { parts.append("xt=urn:btih:" + infoHash.hex) }
        if let infoHashV2 { parts.append("xt=urn:btmh:" + Hex.encode(infoHashV2)) }
        if let displayName { parts.append("dn=" + Self.percentEncode(displayName)) }
        parts += trackers.map { "tr=" + Self.percentEncode($0) }
        parts += webSeeds.map { "ws=" + Self.percentEncode($0) }
        parts += peers.map { "x.pe=" + Self.percentEncode($0) }
        if !selectOnly.isEmpty {
            let items = selectOnly.map {
                $0.lowerBound == $0.upperBound ? "\($0.lowerBound)" : "\($0.lowerBound)-\($0.upperBound)"
            }
            parts.append("so=" + items.joined(separator: ","))
        }
        return "magnet:?" + parts.joined(separator: "&")
    }

    static func percentEncode(_ text: String) -> String {
        percentEncoded(Array(text.utf8))
    }

    static func percentDecode(_ bytes: [UInt8], plusIsSpace: Bool, parameter: String) throws(MagnetLinkError)
        -> String
    {
        guard let out = percentDecoded(bytes, plusIsSpace: plusIsSpace) else {
            throw .badPercentEncoding(parameter: parameter)
        }
        guard let text = String(validating: out, as: UTF8.self) else {
            throw .invalidUTF8(parameter: parameter)
        }
        return text
    }
}

extension MagnetLink: CustomStringConvertible {
    public var description: String { uri }
}

/// Why a string is not a usable magnet link.
public enum MagnetLinkError: Error, Hashable, Sendable, CustomStringConvertible {
    case notAMagnetLink
    case missingInfoHash
    case invalidInfoHash(String)
    case badPercentEncoding(parameter: String)
    case invalidUTF8(parameter: String)
    case invalidSelectOnly(String)
    case tooManyParameters(Int)

    public var description: String {
        switch self {
        case .notAMagnetLink: return "not a magnet link (must start with 'magnet:?')"
        case .missingInfoHash: return "magnet link has no 'xt=urn:btih:' or 'xt=urn:btmh:' info-hash"
        case .invalidInfoHash(let text):
            return
                "invalid info-hash '\(text)' (want 40 hex or 32 base32 characters for btih, 1220 and 64 hex for btmh)"
        case .badPercentEncoding(let parameter): return "bad percent-encoding in parameter '\(parameter)'"
        case .invalidUTF8(let parameter):
            return "parameter '\(parameter)' is not UTF-8 after percent-decoding"
        case .invalidSelectOnly(let value): return "invalid 'so' file selection '\(value)'"
        case .tooManyParameters(let limit): return "more than \(limit) parameters"
        }
    }
}

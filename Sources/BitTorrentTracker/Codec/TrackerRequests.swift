import BitTorrent
import PeerNet

/// One announce, from HTTP (BEP 3) or UDP (BEP 15), in the tracker's terms.
public struct TrackerAnnounce: Sendable, Hashable {
    public var infoHash: InfoHashKey
    /// The port the peer accepts connections on.
    public var port: UInt16
    public var uploaded: Int64 = 0
    public var downloaded: Int64 = 0
    /// Bytes the peer still needs; 0 makes it a seed. Nil (not sent) counts as a leecher.
    public var left: Int64?
    public var event: AnnounceEvent = .none
    /// Peers wanted; nil asks for the tracker's default.
    public var numWant: Int?
    /// The address the peer claims (`ip=`, or the UDP IP field); used only when configured.
    public var claimedIP: IPAddress?
    public var key: UInt32?

    public init(infoHash: InfoHashKey, port: UInt16) {
        self.infoHash = infoHash
        self.port = port
    }

    public var isSeed: Bool { left == 0 }
}

/// Why a request was refused; the text goes back to the client as `failure reason` (HTTP) or in
/// an error packet (UDP, BEP 15 action 3).
public enum TrackerRequestError: Error, Sendable, Hashable, CustomStringConvertible {
    case missingParameter(String)
    case invalidParameter(String, String)
    case requestTooLong(Int)
    case tooManyInfoHashes(Int)
    case fullScrapeRefused
    case notFound(String)
    case torrentNotAllowed(InfoHashKey)
    case trackerFull
    /// UDP (BEP 15).
    case packetTooShort(action: UInt32, length: Int, needed: Int)
    case unknownAction(UInt32)
    case badConnectionID
    case badProtocolID

    public var description: String {
        switch self {
        case .missingParameter(let name): return "missing parameter '\(name)'"
        case .invalidParameter(let name, let why): return "invalid parameter '\(name)': \(why)"
        case .requestTooLong(let limit): return "request longer than \(limit) bytes"
        case .tooManyInfoHashes(let limit): return "more than \(limit) info_hash parameters"
        case .fullScrapeRefused: return "scrape needs at least one info_hash (full scrape is off)"
        case .notFound(let path): return "no such path '\(path)' (try /announce, /scrape or /stats)"
        case .torrentNotAllowed(let key): return "torrent \(key) is not allowed here"
        case .trackerFull: return "tracker is full, try later"
        case .packetTooShort(let action, let length, let needed):
            return "action \(action) packet of \(length) bytes, needs \(needed)"
        case .unknownAction(let action): return "unknown action \(action)"
        case .badConnectionID: return "unknown or expired connection ID"
        case .badProtocolID: return "connect without the BEP 15 protocol ID"
        }
    }
}

/// An HTTP tracker request, read from the request target (path and query).
public enum HTTPTrackerRequest: Sendable, Hashable {
    /// `/announce` (any path whose last component is `announce`, so passkey paths work).
    case announce(TrackerAnnounce, compact: Bool, noPeerID: Bool)
    /// `/scrape` with zero or more info-hashes (BEP 48).
    case scrape([InfoHashKey])
    /// `/stats`: JSON, or Prometheus text with `format=prometheus` (also `/metrics`).
    case stats(prometheus: Bool)

    /// Parses a request target such as `/announce?info_hash=%12…&port=6881`. Total: any bytes
    /// give a request or an error naming the parameter at fault.
    public static func parse(target: some Collection<UInt8>, configuration: TrackerConfiguration)
        throws(TrackerRequestError) -> HTTPTrackerRequest
    {
        guard target.count <= configuration.maxRequestLength else {
            throw .requestTooLong(configuration.maxRequestLength)
        }
        let bytes = Array(target)
        let questionMark = bytes.firstIndex(of: UInt8(ascii: "?")) ?? bytes.count
        let path = bytes[..<questionMark]
        let query = questionMark < bytes.count ? bytes[(questionMark + 1)...] : []
        let last = path.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).last ?? []
        let name = String(decoding: last, as: UTF8.self)
        switch name {
        case "announce", "announce.php":
            return try parseAnnounce(query)
        case "scrape", "scrape.php":
            var hashes: [InfoHashKey] = []
            for (key, value) in try pairs(query) where key == "info_hash" {
                guard hashes.count < configuration.maxScrapeHashes else {
                    throw .tooManyInfoHashes(configuration.maxScrapeHashes)
                }
                guard let hash = InfoHashKey(bytes: value) else {
                    throw .invalidParameter("info_hash", "\(value.count) bytes, must be 20")
                }
                hashes.append(hash)
            }
            return .scrape(hashes)
        case "stats", "metrics":
            let format = try pairs(query).first { $0.0 == "format" }?.1
            let prometheus = name == "metrics" || format == Array("prometheus".utf8)
            return .stats(prometheus: prometheus)
        default:
            throw .notFound(String(decoding: path.prefix(200), as: UTF8.self))
        }
    }

    private static func parseAnnounce(_ query: ArraySlice<UInt8>) throws(TrackerRequestError) -> Self {
        var infoHash: InfoHashKey?
        var port: UInt16?
        var peerIDSeen = false
        var announce = TrackerAnnounce(infoHash: InfoHashKey.zero, port: 0)
        var compact = true
        var noPeerID = false
        for (key, value) in try pairs(query) {
            switch key {
            case "info_hash":
                guard infoHash == nil else { continue }
                guard let hash = InfoHashKey(bytes: value) else {
                    throw .invalidParameter("info_hash", "\(value.count) bytes, must be 20")
                }
                infoHash = hash
            case "peer_id":
                guard value.count == 20 else {
                    throw .invalidParameter("peer_id", "\(value.count) bytes, must be 20")
                }
                peerIDSeen = true
            case "port":
                guard let number = integer(value), number > 0, number < 65_536 else {
                    throw .invalidParameter("port", "must be a number from 1 to 65535")
                }
                port = UInt16(number)
            case "uploaded": announce.uploaded = try counter(key, value)
            case "downloaded": announce.downloaded = try counter(key, value)
            case "left": announce.left = try counter(key, value)
            case "event":
                guard let event = AnnounceEvent(rawValue: String(decoding: value, as: UTF8.self)) else {
                    throw .invalidParameter("event", "must be started, completed, stopped or empty")
                }
                announce.event = event
            case "numwant":
                guard let number = signedInteger(value) else {
                    throw .invalidParameter("numwant", "not a number")
                }
                announce.numWant = number < 0 ? nil : Int(number)
            case "compact": compact = value != [UInt8(ascii: "0")]
            case "no_peer_id": noPeerID = value == [UInt8(ascii: "1")]
            case "ip", "ipv4", "ipv6":
                // Hostnames are not resolved: only literal addresses count.
                announce.claimedIP = IPAddress(String(decoding: value, as: UTF8.self))
            case "key":
                announce.key = UInt32(String(decoding: value.prefix(8), as: UTF8.self), radix: 16)
            default: continue
            }
        }
        guard let infoHash else { throw .missingParameter("info_hash") }
        guard peerIDSeen else { throw .missingParameter("peer_id") }
        guard let port else { throw .missingParameter("port") }
        announce.infoHash = infoHash
        announce.port = port
        return .announce(announce, compact: compact, noPeerID: noPeerID)
    }

    /// The `key=value` pairs, percent-decoded (`+` stays `+`: clients escape it). At most 256.
    private static func pairs(_ query: ArraySlice<UInt8>) throws(TrackerRequestError) -> [(String, [UInt8])] {
        var result: [(String, [UInt8])] = []
        for part in query.split(separator: UInt8(ascii: "&")) {
            guard result.count < 256 else { throw .invalidParameter("query", "more than 256 parameters") }
            let equals = part.firstIndex(of: UInt8(ascii: "=")) ?? part.endIndex
            let key = String(decoding: part[..<equals], as: UTF8.self)
            let rawValue = equals < part.endIndex ? part[(equals + 1)...] : []
            guard let value = percentDecoded(rawValue, plusIsSpace: false) else {
                throw .invalidParameter(String(key.prefix(40)), "bad percent-encoding")
            }
            result.append((key, value))
        }
        return result
    }

    private static func integer(_ bytes: [UInt8]) -> UInt64? {
        guard !bytes.isEmpty, bytes.count <= 18, bytes.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            return nil
        }
        return bytes.reduce(0) { $0 * 10 + UInt64($1 - 0x30) }
    }

    private static func signedInteger(_ bytes: [UInt8]) -> Int64? {
        if bytes.first == UInt8(ascii: "-") { return integer(Array(bytes.dropFirst())).map { -Int64($0) } }
        return integer(bytes).map { Int64($0) }
    }

    private static func counter(_ name: String, _ value: [UInt8]) throws(TrackerRequestError) -> Int64 {
        guard let number = integer(value) else {
            throw .invalidParameter(name, "must be a whole number of bytes")
        }
        return Int64(number)
    }
}

import Bencode
import PeerNet

/// BEP 3 announce events.
public enum AnnounceEvent: String, Sendable, Hashable {
    case none = ""
    case started
    case completed
    case stopped

    /// BEP 15 numbering.
    package var udpCode: UInt32 {
        switch self {
        case .none: return 0
        case .completed: return 1
        case .started: return 2
        case .stopped: return 3
        }
    }

    /// The event with BEP 15 number `code`; nil for an unknown number.
    package init?(udpCode code: UInt32) {
        switch code {
        case 0: self = .none
        case 1: self = .completed
        case 2: self = .started
        case 3: self = .stopped
        default: return nil
        }
    }
}

/// What a client tells a tracker (BEP 3, 15, 23).
public struct AnnounceRequest: Sendable, Hashable {
    public var infoHash: InfoHash
    public var peerID: [UInt8]
    public var port: UInt16
    public var uploaded: Int64 = 0
    public var downloaded: Int64 = 0
    public var left: Int64 = 0
    public var event: AnnounceEvent = .none
    public var numWant: Int = 50
    /// A random number that stays the same for the session, so the tracker can tell us apart.
    public var key: UInt32 = 0
    /// BEP 3 `trackerid` the tracker gave us earlier.
    public var trackerID: String?

    public init(infoHash: InfoHash, peerID: [UInt8], port: UInt16) {
        self.infoHash = infoHash
        self.peerID = peerID
        self.port = port
    }
}

/// What a tracker answers.
public struct AnnounceResponse: Sendable, Hashable {
    public var interval: Int
    public var minInterval: Int?
    public var seeders: Int?
    public var leechers: Int?
    public var peers: [Endpoint]
    public var warning: String?
    public var trackerID: String?
}

/// A tracker's counts for one torrent (scrape, BEP 48 / BEP 15).
public struct ScrapeStats: Sendable, Hashable {
    public var seeders: Int
    public var completed: Int
    public var leechers: Int

    public init(seeders: Int, completed: Int, leechers: Int) {
        self.seeders = seeders
        self.completed = completed
        self.leechers = leechers
    }
}

/// Why an announce failed.
public enum TrackerError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The tracker said no (`failure reason`, or a BEP 15 error).
    case failure(String)
    case badResponse(String)
    case unsupportedURL(String)
    case timedOut
    case transport(String)

    public var description: String {
        switch self {
        case .failure(let reason): return "tracker refused: \(reason)"
        case .badResponse(let what): return "bad tracker response: \(what)"
        case .unsupportedURL(let url): return "unsupported tracker URL \(url)"
        case .timedOut: return "tracker did not answer"
        case .transport(let what): return what
        }
    }
}

/// HTTP tracker protocol (BEP 3, compact peers BEP 23, IPv6 peers BEP 7): the query and the
/// bencoded answer.
public enum HTTPTrackerCodec {
    static func escape(_ bytes: [UInt8]) -> String { percentEncoded(bytes) }

    /// The path and query of the announce GET for `announceURL`'s path and query.
    public static func query(for request: AnnounceRequest, existingQuery: String?) -> String {
        var parts = [
            "info_hash=" + escape(request.infoHash.bytes), "peer_id=" + escape(request.peerID),
            "port=\(request.port)",
            "uploaded=\(request.uploaded)", "downloaded=\(request.downloaded)", "left=\(request.left)",
            "compact=1",
            "numwant=\(request.numWant)", "key=\(String(request.key, radix: 16))",
        ]
        if request.event != .none { parts.append("event=\(request.event.rawValue)") }
        if let trackerID = request.trackerID { parts.append("trackerid=" + escape(Array(trackerID.utf8))) }
        if let existingQuery, !existingQuery.isEmpty { parts.insert(existingQuery, at: 0) }
        return parts.joined(separator: "&")
    }

    /// The scrape URL for an announce URL (BEP 48): the last path component `announce`
    /// becomes `scrape`; nil when the tracker has no scrape convention.
    public static func scrapeURL(forAnnounce url: String) -> String? {
        let base = url.split(separator: "?", maxSplits: 1).first.map(String.init) ?? url
        guard let slash = base.lastIndex(of: "/"), base[base.index(after: slash)...].hasPrefix("announce")
        else {
            return nil
        }
        let rest = base[base.index(after: slash)...].dropFirst("announce".count)
        let query = url.dropFirst(base.count)
        return String(base[...slash]) + "scrape" + rest + query
    }

    /// The query of a scrape for `infoHashes`.
    public static func scrapeQuery(_ infoHashes: [InfoHash], existingQuery: String?) -> String {
        var parts = infoHashes.map { "info_hash=" + escape($0.bytes) }
        if let existingQuery, !existingQuery.isEmpty { parts.insert(existingQuery, at: 0) }
        return parts.joined(separator: "&")
    }

    /// Reads a scrape reply: `files` maps raw info-hashes to counts.
    public static func parseScrape(_ body: [UInt8]) throws(TrackerError) -> [InfoHash: ScrapeStats] {
        let value = try decodeReply(body)
        if let reason = value["failure reason"]?.string { throw .failure(reason) }
        guard let files = value["files"]?.dictionary else {
            throw .badResponse("scrape reply without 'files'")
        }
        var result: [InfoHash: ScrapeStats] = [:]
        for (key, entry) in files {
            guard let hash = InfoHash(bytes: key) else { continue }
            result[hash] = ScrapeStats(
                seeders: Int(clamping: entry["complete"]?.integer ?? 0),
                completed: Int(clamping: entry["downloaded"]?.integer ?? 0),
                leechers: Int(clamping: entry["incomplete"]?.integer ?? 0))
        }
        return result
    }

    /// A tracker reply's bencoded dictionary, bounded: 4 MiB, depth 8, 100,000 values.
    private static func decodeReply(_ body: [UInt8]) throws(TrackerError) -> BencodeValue {
        do {
            return try BencodeDecoder(
                mode: .lenient, limits: .init(maxDepth: 8, maxElements: 100_000, maxInputSize: 4 << 20)
            ).decode(body)
        } catch {
            throw .badResponse("\(error)")
        }
    }

    /// Reads a tracker's bencoded answer.
    public static func parse(_ body: [UInt8]) throws(TrackerError) -> AnnounceResponse {
        let value = try decodeReply(body)
        guard case .dictionary = value else { throw .badResponse("not a dictionary") }
        if let reason = value["failure reason"]?.string { throw .failure(reason) }
        guard let interval = value["interval"]?.integer, interval > 0 else {
            throw .badResponse("no interval")
        }
        var peers: [Endpoint] = []
        switch value["peers"] {
        case .bytes(let compact)?:
            peers = Endpoint.parseCompact(compact, ipLength: 4)
        case .list(let entries)?:
            // The original, non-compact form: dictionaries with `ip` and `port`.
            for entry in entries.prefix(1_000) {
                // Names (which BEP 3 allows here) are not looked up: only address literals count.
                if let ip = entry["ip"]?.string.flatMap(IPAddress.init), let port = entry["port"]?.integer,
                    let port16 = UInt16(exactly: port), port16 > 0
                {
                    peers.append(Endpoint(ip: ip, port: port16))
                }
            }
        default:
            break
        }
        if let compact6 = value["peers6"]?.bytes { peers += Endpoint.parseCompact(compact6, ipLength: 16) }
        return AnnounceResponse(
            interval: Int(clamping: interval),
            minInterval: value["min interval"]?.integer.map { Int(clamping: $0) },
            seeders: value["complete"]?.integer.map { Int(clamping: $0) },
            leechers: value["incomplete"]?.integer.map { Int(clamping: $0) }, peers: peers,
            warning: value["warning message"]?.string, trackerID: value["tracker id"]?.string)
    }
}

/// UDP tracker protocol (BEP 15): connect, announce and the replies, every length checked.
public enum UDPTrackerCodec {
    package static let protocolID: UInt64 = 0x417_2710_1980

    public static func connectRequest(transaction: UInt32) -> [UInt8] {
        var out: [UInt8] = []
        append(protocolID, to: &out)
        append(UInt32(0), to: &out)
        append(transaction, to: &out)
        return out
    }

    /// The connection ID from a connect reply to `transaction`.
    public static func parseConnect(_ packet: [UInt8], transaction: UInt32) throws(TrackerError) -> UInt64 {
        try checkHeader(packet, action: 0, transaction: transaction, minimum: 16)
        return read64(packet, 8)
    }

    /// BEP 41: a URL's path and query travel as an option after the announce.
    public static func announceRequest(
        _ request: AnnounceRequest, connection: UInt64, transaction: UInt32, urlData: String?
    ) -> [UInt8] {
        var out: [UInt8] = []
        append(connection, to: &out)
        append(UInt32(1), to: &out)
        append(transaction, to: &out)
        out += request.infoHash.bytes + request.peerID
        append(UInt64(bitPattern: request.downloaded), to: &out)
        append(UInt64(bitPattern: request.left), to: &out)
        append(UInt64(bitPattern: request.uploaded), to: &out)
        append(request.event.udpCode, to: &out)
        append(UInt32(0), to: &out)  // IP: the sender's
        append(request.key, to: &out)
        append(UInt32(bitPattern: Int32(request.numWant)), to: &out)
        out += [UInt8(request.port >> 8), UInt8(request.port & 0xFF)]
        if let urlData, !urlData.isEmpty {
            for chunk in Array(urlData.utf8).chunked(255) { out += [2, UInt8(chunk.count)] + chunk }
        }
        return out
    }

    /// An announce reply; peers are 6 bytes each (18 when the tracker speaks IPv6).
    public static func parseAnnounce(_ packet: [UInt8], transaction: UInt32, ipv6: Bool) throws(TrackerError)
        -> AnnounceResponse
    {
        try checkHeader(packet, action: 1, transaction: transaction, minimum: 20)
        let peers = Endpoint.parseCompact(packet[20...], ipLength: ipv6 ? 16 : 4)
        return AnnounceResponse(
            interval: Int(read32(packet, 8)), minInterval: nil, seeders: Int(read32(packet, 16)),
            leechers: Int(read32(packet, 12)), peers: peers, warning: nil, trackerID: nil)
    }

    /// Most info-hashes in one UDP scrape (BEP 15: about 74 fit a packet).
    public static let maxScrapeHashes = 74

    public static func scrapeRequest(_ infoHashes: [InfoHash], connection: UInt64, transaction: UInt32)
        -> [UInt8]
    {
        var out: [UInt8] = []
        append(connection, to: &out)
        append(UInt32(2), to: &out)
        append(transaction, to: &out)
        for hash in infoHashes.prefix(maxScrapeHashes) { out += hash.bytes }
        return out
    }

    /// A scrape reply: 12 bytes per info-hash asked, in order.
    public static func parseScrape(_ packet: [UInt8], transaction: UInt32, infoHashes: [InfoHash])
        throws(TrackerError)
        -> [InfoHash: ScrapeStats]
    {
        try checkHeader(packet, action: 2, transaction: transaction, minimum: 8)
        var result: [InfoHash: ScrapeStats] = [:]
        for (index, hash) in infoHashes.prefix(maxScrapeHashes).enumerated() {
            let offset = 8 + index * 12
            guard offset + 12 <= packet.count else { break }
            result[hash] = ScrapeStats(
                seeders: Int(read32(packet, offset)), completed: Int(read32(packet, offset + 4)),
                leechers: Int(read32(packet, offset + 8)))
        }
        return result
    }

    private static func checkHeader(_ packet: [UInt8], action: UInt32, transaction: UInt32, minimum: Int)
        throws(TrackerError)
    {
        guard packet.count >= 8 else { throw .badResponse("UDP packet of \(packet.count) bytes") }
        guard read32(packet, 4) == transaction else { throw .badResponse("transaction ID does not match") }
        let got = read32(packet, 0)
        if got == 3 { throw .failure(String(decoding: packet[8...], as: UTF8.self)) }
        guard got == action else { throw .badResponse("action \(got), expected \(action)") }
        guard packet.count >= minimum else {
            throw .badResponse("UDP reply of \(packet.count) bytes, need \(minimum)")
        }
    }

    package static func read32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) << 24 | UInt32(bytes[offset + 1]) << 16 | UInt32(bytes[offset + 2]) << 8
            | UInt32(bytes[offset + 3])
    }

    package static func read64(_ bytes: [UInt8], _ offset: Int) -> UInt64 {
        UInt64(read32(bytes, offset)) << 32 | UInt64(read32(bytes, offset + 4))
    }

    package static func append(_ value: UInt32, to out: inout [UInt8]) {
        out += [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    package static func append(_ value: UInt64, to out: inout [UInt8]) {
        append(UInt32(value >> 32), to: &out)
        append(UInt32(value & 0xFFFF_FFFF), to: &out)
    }
}

extension Array {
    fileprivate func chunked(_ size: Int) -> [[Element]] {
        stride(from: 0, to: count, by: size).map { Array(self[$0..<Swift.min($0 + size, count)]) }
    }
}

import BitTorrent
import PeerNet

/// A BEP 15 request as the tracker receives it.
public enum UDPTrackerRequest: Sendable, Hashable {
    case connect(transaction: UInt32)
    /// `urlData` is the BEP 41 URL-data option (the announce URL's path and query), empty when
    /// the client sent none.
    case announce(connectionID: UInt64, transaction: UInt32, TrackerAnnounce, urlData: [UInt8])
    case scrape(connectionID: UInt64, transaction: UInt32, [InfoHashKey])
}

/// A UDP packet the tracker cannot serve. `transaction` is set when the packet was long enough
/// to carry one, so the client can be sent an error (action 3); otherwise it is dropped.
public struct UDPTrackerPacketError: Error, Sendable, Hashable, CustomStringConvertible {
    public var transaction: UInt32?
    public var error: TrackerRequestError

    public var description: String { error.description }
}

/// The tracker side of BEP 15: requests in, replies out. Every length is checked before a read;
/// nothing is allocated by a size the sender chose (a scrape's count follows from the packet's
/// length, bounded by ``maxScrapeHashes``).
public enum UDPTrackerPacket {
    public static let connectAction: UInt32 = 0
    public static let announceAction: UInt32 = 1
    public static let scrapeAction: UInt32 = 2
    public static let errorAction: UInt32 = 3
    /// Bytes of an announce request before the BEP 41 options.
    public static let announceLength = 98
    /// Most info-hashes served from one scrape packet (BEP 15: about 74 fit in a reply).
    public static let maxScrapeHashes = UDPTrackerCodec.maxScrapeHashes

    /// Reads one datagram.
    public static func parse(_ packet: [UInt8]) throws(UDPTrackerPacketError) -> UDPTrackerRequest {
        let result = packet.withUnsafeBytes { raw in
            Result { () throws(UDPTrackerPacketError) in try parse(raw) }
        }
        return try result.get()
    }

    /// Reads one datagram in place.
    public static func parse(_ packet: UnsafeRawBufferPointer) throws(UDPTrackerPacketError)
        -> UDPTrackerRequest
    {
        guard packet.count >= 16 else {
            throw UDPTrackerPacketError(
                transaction: nil, error: .packetTooShort(action: 0, length: packet.count, needed: 16))
        }
        let connectionID = packet.loadBigEndian(UInt64.self, at: 0)
        let action = packet.loadBigEndian(UInt32.self, at: 8)
        let transaction = packet.loadBigEndian(UInt32.self, at: 12)
        func fail(_ error: TrackerRequestError) -> UDPTrackerPacketError {
            UDPTrackerPacketError(transaction: transaction, error: error)
        }
        switch action {
        case connectAction:
            guard connectionID == UDPTrackerCodec.protocolID else { throw fail(.badProtocolID) }
            return .connect(transaction: transaction)
        case announceAction:
            guard packet.count >= announceLength else {
                throw fail(.packetTooShort(action: action, length: packet.count, needed: announceLength))
            }
            let port = packet.loadBigEndian(UInt16.self, at: 96)
            guard port != 0 else { throw fail(.invalidParameter("port", "must be from 1 to 65535")) }
            var announce = TrackerAnnounce(infoHash: InfoHashKey(unchecked: packet, at: 16), port: port)
            announce.downloaded = max(0, packet.loadBigEndian(Int64.self, at: 56))
            let left = packet.loadBigEndian(Int64.self, at: 64)
            announce.left = left >= 0 ? left : nil
            announce.uploaded = max(0, packet.loadBigEndian(Int64.self, at: 72))
            guard let event = AnnounceEvent(udpCode: packet.loadBigEndian(UInt32.self, at: 80)) else {
                throw fail(.invalidParameter("event", "must be 0 to 3"))
            }
            announce.event = event
            let ip = packet.loadBigEndian(UInt32.self, at: 84)
            announce.claimedIP = ip == 0 ? nil : IPAddress(v4: ip)
            announce.key = packet.loadBigEndian(UInt32.self, at: 88)
            let numWant = packet.loadBigEndian(Int32.self, at: 92)
            announce.numWant = numWant < 0 ? nil : Int(numWant)
            return .announce(
                connectionID: connectionID, transaction: transaction, announce,
                urlData: urlData(packet, from: announceLength))
        case scrapeAction:
            let count = (packet.count - 16) / 20
            guard count > 0 else {
                throw fail(.packetTooShort(action: action, length: packet.count, needed: 36))
            }
            guard count <= maxScrapeHashes else { throw fail(.tooManyInfoHashes(maxScrapeHashes)) }
            let hashes = (0..<count).map { InfoHashKey(unchecked: packet, at: 16 + $0 * 20) }
            return .scrape(connectionID: connectionID, transaction: transaction, hashes)
        default:
            throw fail(.unknownAction(action))
        }
    }

    /// BEP 41 options: 0 ends them, 1 is padding, 2 carries a length byte and URL data (which
    /// may come in several pieces). An unknown option or a truncated one ends the list: the
    /// announce itself is still served.
    static func urlData(_ packet: UnsafeRawBufferPointer, from start: Int) -> [UInt8] {
        var data: [UInt8] = []
        var offset = start
        while offset < packet.count {
            switch packet[offset] {
            case 0: return data
            case 1: offset += 1
            case 2:
                guard offset + 1 < packet.count else { return data }
                let length = Int(packet[offset + 1])
                let end = min(packet.count, offset + 2 + length)
                data += packet[(offset + 2)..<end]
                offset = end
            default: return data
            }
        }
        return data
    }

    /// Connect reply: the connection ID the client will quote.
    public static func connectReply(transaction: UInt32, connectionID: UInt64, into out: inout [UInt8]) {
        out.appendBigEndian(connectAction)
        out.appendBigEndian(transaction)
        out.appendBigEndian(connectionID)
    }

    /// Announce reply header; the compact peers (6 bytes each over IPv4, 18 over IPv6) follow.
    public static func announceReplyHeader(
        transaction: UInt32, interval: Int, leechers: Int, seeders: Int, into out: inout [UInt8]
    ) {
        out.appendBigEndian(announceAction)
        out.appendBigEndian(transaction)
        out.appendBigEndian(UInt32(clamping: interval))
        out.appendBigEndian(UInt32(clamping: leechers))
        out.appendBigEndian(UInt32(clamping: seeders))
    }

    /// Scrape reply: seeders, completed, leechers for each info-hash, in the order asked.
    public static func scrapeReply(transaction: UInt32, _ stats: [ScrapeStats], into out: inout [UInt8]) {
        out.appendBigEndian(scrapeAction)
        out.appendBigEndian(transaction)
        for entry in stats {
            out.appendBigEndian(UInt32(clamping: entry.seeders))
            out.appendBigEndian(UInt32(clamping: entry.completed))
            out.appendBigEndian(UInt32(clamping: entry.leechers))
        }
    }

    /// Error reply (action 3) with a message of at most 200 bytes.
    public static func errorReply(transaction: UInt32, message: String, into out: inout [UInt8]) {
        out.appendBigEndian(errorAction)
        out.appendBigEndian(transaction)
        out += Array(message.utf8.prefix(200))
    }
}

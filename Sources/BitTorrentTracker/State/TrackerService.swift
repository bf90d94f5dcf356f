import BitTorrent
import Crypto
import PeerNet

/// An HTTP answer, before any socket: status, content type and body.
public struct HTTPTrackerResponse: Sendable, Hashable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
}

/// The whole tracker as a sans-I/O value: it takes requests as bytes (a UDP datagram, an HTTP
/// request target) with the sender's address, the time and a random number, and returns the
/// bytes to answer with. The NIO drivers only move bytes; the simulator and the tests call this
/// directly.
public struct TrackerService: Sendable {
    public private(set) var state: TrackerState
    private let connectionIDs: ConnectionIDs
    private var peers = CompactPeerLists()

    public init(
        configuration: TrackerConfiguration, connectionKey: SymmetricKey = SymmetricKey(size: .bits256)
    ) {
        state = TrackerState(configuration: configuration)
        connectionIDs = ConnectionIDs(key: connectionKey, window: configuration.connectionIDWindow)
    }

    public var configuration: TrackerConfiguration { state.configuration }

    public mutating func setAdmission(_ admission: TrackerAdmission) { state.setAdmission(admission) }

    @discardableResult
    public mutating func expire(now: UInt32) -> Int { state.expire(now: now) }

    /// Serves one BEP 15 datagram from `sender`, appending the reply to `out`. Returns false when
    /// nothing should be sent (a packet too short to carry a transaction ID).
    public mutating func serveUDP(
        _ packet: UnsafeRawBufferPointer, from sender: Endpoint, now: UInt32, random: UInt64,
        into out: inout [UInt8]
    ) -> Bool {
        let request: UDPTrackerRequest
        do {
            request = try UDPTrackerPacket.parse(packet)
        } catch {
            state.countMalformed(via: .udp)
            guard let transaction = error.transaction else { return false }
            UDPTrackerPacket.errorReply(transaction: transaction, message: error.description, into: &out)
            return true
        }
        switch request {
        case .connect(let transaction):
            state.countConnect()
            UDPTrackerPacket.connectReply(
                transaction: transaction, connectionID: connectionIDs.make(for: sender, now: now), into: &out)
        case .announce(let connectionID, let transaction, let announce, _):
            guard connectionIDs.accepts(connectionID, from: sender, now: now) else {
                state.countFailure()
                UDPTrackerPacket.errorReply(
                    transaction: transaction, message: TrackerRequestError.badConnectionID.description,
                    into: &out)
                return true
            }
            let ip = state.listedIP(source: sender.ip, claimed: announce.claimedIP)
            let family: ReplyFamilies
            family = sender.ip.isIPv6 ? .ipv6 : .ipv4
            peers.reset()
            do {
                let summary = try state.announce(
                    announce, from: ip, families: family, via: .udp, now: now, random: random, peers: &peers)
                UDPTrackerPacket.announceReplyHeader(
                    transaction: transaction, interval: summary.interval, leechers: summary.leechers,
                    seeders: summary.seeders, into: &out)
                out += family == .ipv4 ? peers.ipv4 : peers.ipv6
            } catch {
                UDPTrackerPacket.errorReply(transaction: transaction, message: error.description, into: &out)
            }
        case .scrape(let connectionID, let transaction, let hashes):
            guard connectionIDs.accepts(connectionID, from: sender, now: now) else {
                state.countFailure()
                UDPTrackerPacket.errorReply(
                    transaction: transaction, message: TrackerRequestError.badConnectionID.description,
                    into: &out)
                return true
            }
            UDPTrackerPacket.scrapeReply(
                transaction: transaction, state.scrape(hashes, via: .udp), into: &out)
        }
        return true
    }

    /// Serves one HTTP GET: `target` is the request's path and query, `source` the connection's
    /// address, `forwardedFor` its `X-Forwarded-For` header. `uptime` feeds `/stats`.
    public mutating func serveHTTP(
        target: some Collection<UInt8>, source: IPAddress, forwardedFor: String?, now: UInt32, random: UInt64,
        uptime: Int
    ) -> HTTPTrackerResponse {
        let request: HTTPTrackerRequest
        do {
            request = try HTTPTrackerRequest.parse(target: target, configuration: state.configuration)
        } catch {
            state.countMalformed(via: .http)
            if case .notFound = error {
                return HTTPTrackerResponse(
                    status: 404, contentType: "text/plain", body: HTTPTrackerReply.failure(error.description))
            }
            return Self.bencoded(HTTPTrackerReply.failure(error.description))
        }
        switch request {
        case .announce(let announce, let compact, _):
            let client = HTTPTrackerReply.clientIP(
                source: source, forwardedFor: forwardedFor, configuration: state.configuration)
            let ip = state.listedIP(source: client, claimed: announce.claimedIP)
            peers.reset()
            do {
                let summary = try state.announce(
                    announce, from: ip, families: .both, via: .http, now: now, random: random, peers: &peers)
                return Self.bencoded(HTTPTrackerReply.announce(summary, peers: peers, compact: compact))
            } catch {
                return Self.bencoded(HTTPTrackerReply.failure(error.description))
            }
        case .scrape(let hashes):
            if hashes.isEmpty {
                guard state.configuration.allowFullScrape else {
                    state.countFailure()
                    return Self.bencoded(
                        HTTPTrackerReply.failure(TrackerRequestError.fullScrapeRefused.description))
                }
                return Self.bencoded(HTTPTrackerReply.scrape(state.scrapeAll(via: .http)))
            }
            let stats = state.scrape(hashes, via: .http)
            return Self.bencoded(HTTPTrackerReply.scrape(Array(zip(hashes, stats))))
        case .stats(let prometheus):
            let statistics = state.statistics(uptime: uptime)
            return prometheus
                ? HTTPTrackerResponse(
                    status: 200, contentType: "text/plain; version=0.0.4",
                    body: Array(statistics.prometheus.utf8))
                : HTTPTrackerResponse(
                    status: 200, contentType: "application/json", body: Array(statistics.json.utf8))
        }
    }

    private static func bencoded(_ body: [UInt8]) -> HTTPTrackerResponse {
        HTTPTrackerResponse(status: 200, contentType: "text/plain", body: body)
    }
}

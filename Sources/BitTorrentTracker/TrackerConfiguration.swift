import BitTorrent
import PeerNet

/// Which torrents the tracker serves.
public enum TrackerAdmission: Sendable, Hashable {
    /// Any info-hash (an open tracker).
    case open
    /// Only these info-hashes; others get `failure reason` "torrent not allowed here".
    case whitelist(Set<InfoHashKey>)
}

/// A tracker's limits and defaults, in one place. Times are in seconds.
public struct TrackerConfiguration: Sendable {
    /// `interval` in announce replies: how long clients wait between regular announces (BEP 3).
    public var announceInterval = 1_800
    /// `min interval`: clients must not announce more often than this.
    public var minimumInterval = 300
    /// A peer that has not announced for this long is forgotten; a little more than one interval
    /// so one lost announce does not drop it. Kept to a precision of 4 seconds, at most 32 hours.
    public var peerTimeout = 2_700
    /// Peers in a reply when the client names no `numwant` (or -1 over UDP).
    public var defaultNumWant = 50
    /// The most peers in any reply, whatever `numwant` asks.
    public var maxNumWant = 200
    /// The most info-hashes in one HTTP scrape (UDP is bounded by the packet: 74).
    public var maxScrapeHashes = 64
    /// Whether `/scrape` without any `info_hash` lists every torrent (BEP 48 allows it; large
    /// trackers refuse it).
    public var allowFullScrape = false
    /// Use the `ip=` parameter (HTTP) or the IP field (UDP) instead of the packet's source.
    /// Only for trackers behind a NAT that rewrites addresses; otherwise anyone could add a
    /// stranger's address to a swarm.
    public var trustClaimedIP = false
    /// Reverse proxies whose `X-Forwarded-For` header names the real client (the last address
    /// in the header, the one the proxy itself appended).
    public var trustedProxies: Set<IPAddress> = []
    /// Open, or restricted to a whitelist.
    public var admission = TrackerAdmission.open
    /// Bounds on memory: the most torrents, peers per torrent, and peers in all.
    public var maxTorrents = 1_000_000
    public var maxPeersPerTorrent = 200_000
    public var maxPeers = 20_000_000
    /// UDP connection IDs (BEP 15) are valid for one to two windows of this length.
    public var connectionIDWindow = 60
    /// Longest HTTP request line the tracker reads.
    public var maxRequestLength = 8_192
    /// HTTP connections: at most 4,096 at once (past that the oldest is closed for a new one),
    /// 64 per IP (loopback exempt), closed after 30 s of silence; a client that does not read
    /// its replies stops being read past 64 KiB queued and is dropped past 256 KiB.
    public var httpConnections = TCPListener.Configuration(
        limits: ConnectionLimits(
            handshakeTimeout: nil, idleTimeout: .seconds(30), writeBufferHighWater: 64 << 10,
            writeBufferLowWater: 16 << 10, maxQueuedBytes: 256 << 10),
        admission: ConnectionLimiter.Configuration(maxConnections: 4_096, maxPerIP: 64, maxHandshaking: 4_096)
    )
    /// Each HTTP request must arrive whole within 10 s (slowloris), with a body of at most
    /// 16 KiB (a tracker GET has none).
    public var httpRequests = HTTPRequestLimits(requestTimeout: .seconds(10), maxBodyBytes: 16 << 10)

    public init() {}
}

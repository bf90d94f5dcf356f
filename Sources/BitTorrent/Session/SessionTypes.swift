import NIOCore
import PeerNet

/// Identifies one connection within a session; assigned by the driver.
public struct PeerKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let id: Int
    public init(_ id: Int) { self.id = id }
    public static func < (lhs: PeerKey, rhs: PeerKey) -> Bool { lhs.id < rhs.id }
    public var description: String { "#\(id)" }
}

/// Session time: elapsed since an origin the driver chooses (no clock inside the state machine).
public typealias Moment = Duration

/// Limits and timings of a torrent session, with the defaults of common practice.
public struct SessionConfiguration: Sendable {
    /// Our DHT node's UDP port, when one runs: set in the handshake (BEP 5, reserved bit) and
    /// sent to peers that support the DHT as a `port` message.
    public var dhtPort: UInt16?
    /// Most connections for this torrent.
    public var maxPeers = 60
    /// Most outgoing connection attempts started per tick.
    public var connectsPerTick = 8
    /// Regular unchoke slots (BEP 3 practice: 4), plus one optimistic.
    public var unchokeSlots = 4
    public var chokeInterval: Duration = .seconds(10)
    public var optimisticInterval: Duration = .seconds(30)
    /// A peer that sends nothing for this long while we wait for blocks is snubbed.
    public var snubTime: Duration = .seconds(60)
    /// Outstanding requests per peer: adapted between these to ~`requestQueueTime` of data.
    public var minRequestsPerPeer = 8
    public var maxRequestsPerPeer = 400
    public var requestQueueTime: Duration = .seconds(2)
    /// A request unanswered this long is handed to another peer.
    public var requestTimeout: Duration = .seconds(30)
    /// Most requests a peer may have queued with us (larger queues close the connection).
    public var maxIncomingRequests = 2_000
    public var keepAliveInterval: Duration = .seconds(90)
    public var idleTimeout: Duration = .seconds(180)
    /// While we wait on blocks from a peer that has sent nothing for this long, a keep-alive
    /// goes to it this often: a probe its transport must acknowledge. A peer whose uTP socket
    /// timed out and was forgotten (libtorrent sends no RESET then) is so found dead by our own
    /// retransmission timeout within seconds, and redialled, instead of after `idleTimeout`.
    public var stallProbeInterval: Duration = .seconds(10)
    /// Peers remembered from trackers, PEX and the command line.
    public var maxKnownPeers = 2_000
    /// Failed pieces a peer may take part in before it is banned.
    public var maxStrikes = 3
    public var pexInterval: Duration = .seconds(60)
    /// Delay before the first PEX message to a new peer (libtorrent sends its first at once).
    public var firstPEXDelay: Duration = .seconds(3)
    /// Our listening port, told to peers (BEP 10 `p`).
    public var listenPort: UInt16?
    public var clientName = "PeerStack 0.1.0"
    /// Download pieces in order (for streaming).
    public var sequential = false
    /// Serve and use BEP 11 PEX (never for private torrents).
    public var enablePEX = true

    public init() {}
}

/// What the driver must do for the session.
public enum SessionAction: Sendable, Equatable {
    /// Send a message to a peer.
    case send(PeerKey, PeerMessage)
    /// Close a connection. `ban` means never reconnect to this address in this session.
    case close(PeerKey, reason: String, ban: Bool)
    /// Open a connection.
    case connect(Endpoint)
    /// Write a received block to storage, then call ``TorrentSession/blockWritten(_:)``.
    /// The block as it was read from the socket (a slice, not a copy).
    case write(BlockRequest, data: ByteBuffer)
    /// Hash a fully written piece, then call ``TorrentSession/pieceVerified(_:passed:blockDigests:now:)``.
    /// With `blockDigests`, also return the SHA-1 of each 16 KiB block (for smart-ban).
    case verify(piece: Int, blockDigests: Bool)
    /// Read a block a peer asked for, then call ``TorrentSession/blockRead(_:for:data:now:)``.
    case read(BlockRequest, for: PeerKey)
    /// Hash the blocks of a piece we have (BEP 52 leaves, SHA-256 per 16 KiB of the file's
    /// data in it), then call ``TorrentSession/leavesRead(_:leaves:for:now:)``.
    case readLeaves(piece: Int, request: HashRequest, for: PeerKey)
    /// The metadata (BEP 9) arrived and matches the info-hash (and for a v2 torrent, every
    /// piece layer is known): set up storage, then call ``TorrentSession/storageReady(have:now:)``.
    case metadataReceived(InfoDictionary)
    /// A piece passed its hash check.
    case pieceCompleted(Int)
    /// Every wanted piece is verified.
    case downloadCompleted
    /// A peer was banned (for the log).
    case banned(Endpoint, reason: String)
    /// A peer told us of other peers (BEP 11 PEX), for the log.
    case learnedPeers(from: PeerKey, count: Int)
    /// A peer named its DHT node (BEP 5 `port` message): ping it so it joins the routing table.
    case dhtNode(Endpoint)
}

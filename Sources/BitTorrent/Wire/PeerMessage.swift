/// A request for a block: `length` bytes at `offset` within piece `piece` (BEP 3).
public struct BlockRequest: Hashable, Sendable, CustomStringConvertible {
    public var piece: Int
    public var offset: Int
    public var length: Int

    public init(piece: Int, offset: Int, length: Int) {
        self.piece = piece
        self.offset = offset
        self.length = length
    }

    public var description: String { "piece \(piece) +\(offset) (\(length) bytes)" }

    /// The standard block size; larger requests are refused (BEP 3 practice, libtorrent too).
    public static let standardLength = 16_384
}

/// A peer wire message (BEP 3), with the fast extension (BEP 6) and extension protocol (BEP 10).
public enum PeerMessage: Hashable, Sendable {
    case keepAlive
    case choke
    case unchoke
    case interested
    case notInterested
    case have(piece: Int)
    /// The raw bitfield bytes; checked against the piece count by the connection.
    case bitfield([UInt8])
    case request(BlockRequest)
    case piece(piece: Int, offset: Int, data: [UInt8])
    case cancel(BlockRequest)
    /// BEP 5: the sender's DHT port.
    case port(UInt16)
    /// BEP 6.
    case suggest(piece: Int)
    case haveAll
    case haveNone
    case reject(BlockRequest)
    case allowedFast(piece: Int)
    /// BEP 52: a request for merkle tree hashes.
    case hashRequest(HashRequest)
    /// BEP 52: the hashes asked for, then the uncle hashes that prove them.
    case hashes(HashRequest, hashes: [[UInt8]])
    /// BEP 52: a hash request that will not be answered.
    case hashReject(HashRequest)
    /// BEP 10: an extension message, `id` 0 being the extension handshake.
    case extended(id: UInt8, payload: [UInt8])
    /// A message ID this implementation does not know; BEP 3 says to ignore it.
    case unknown(id: UInt8)

    /// The wire ID, nil for keep-alive.
    public var id: UInt8? {
        switch self {
        case .keepAlive: return nil
        case .choke: return 0
        case .unchoke: return 1
        case .interested: return 2
        case .notInterested: return 3
        case .have: return 4
        case .bitfield: return 5
        case .request: return 6
        case .piece: return 7
        case .cancel: return 8
        case .port: return 9
        case .suggest: return 13
        case .haveAll: return 14
        case .haveNone: return 15
        case .reject: return 16
        case .allowedFast: return 17
        case .extended: return 20
        case .hashRequest: return 21
        case .hashes: return 22
        case .hashReject: return 23
        case .unknown(let id): return id
        }
    }

    /// A short name for logs and errors.
    public var name: String {
        switch self {
        case .keepAlive: return "keep-alive"
        case .choke: return "choke"
        case .unchoke: return "unchoke"
        case .interested: return "interested"
        case .notInterested: return "not interested"
        case .have: return "have"
        case .bitfield: return "bitfield"
        case .request: return "request"
        case .piece: return "piece"
        case .cancel: return "cancel"
        case .port: return "port"
        case .suggest: return "suggest"
        case .haveAll: return "have all"
        case .haveNone: return "have none"
        case .reject: return "reject"
        case .allowedFast: return "allowed fast"
        case .hashRequest: return "hash request"
        case .hashes: return "hashes"
        case .hashReject: return "hash reject"
        case .extended: return "extended"
        case .unknown(let id): return "unknown (\(id))"
        }
    }
}

import Bencode
import Kademlia
import PeerNet

/// A mainline DHT node ID or key (BEP 5: 160 bits).
public typealias NodeID = KademliaID<Bits160>

/// A node as `find_node` and `get_peers` replies carry it: ID and address (26 bytes over IPv4,
/// 38 over IPv6).
public struct NodeInfo: Hashable, Sendable {
    public var id: NodeID
    public var address: Endpoint

    public init(id: NodeID, address: Endpoint) {
        self.id = id
        self.address = address
    }
}

/// The queries of BEP 5, BEP 44 and BEP 51's neighbours that this node speaks.
public enum KRPCQuery: Sendable, Hashable {
    case ping
    case findNode(target: NodeID)
    case getPeers(infoHash: NodeID)
    /// `impliedPort`: use the packet's source port instead of `port` (BEP 5).
    case announcePeer(infoHash: NodeID, port: UInt16, token: [UInt8], impliedPort: Bool)
    /// BEP 44: `seq` asks for the item only if newer.
    case get(target: NodeID, seq: Int64?)
    /// BEP 44: `v` is the bencoded value; the mutable fields are set for mutable items.
    case put(PutRequest)

    public var name: String {
        switch self {
        case .ping: return "ping"
        case .findNode: return "find_node"
        case .getPeers: return "get_peers"
        case .announcePeer: return "announce_peer"
        case .get: return "get"
        case .put: return "put"
        }
    }
}

/// A BEP 44 `put`.
public struct PutRequest: Sendable, Hashable {
    public var token: [UInt8]
    /// The value, as bencoded bytes (at most 1000, BEP 44).
    public var value: [UInt8]
    /// Mutable items: the Ed25519 public key (32), signature (64), sequence number, optional salt
    /// (at most 64) and compare-and-swap sequence.
    public var key: [UInt8]?
    public var signature: [UInt8]?
    public var seq: Int64?
    public var salt: [UInt8]?
    public var cas: Int64?

    public init(token: [UInt8], value: [UInt8]) {
        self.token = token
        self.value = value
    }
}

/// A reply's values; which are present depends on the query answered.
public struct KRPCResponse: Sendable, Hashable {
    public var nodes: [NodeInfo] = []
    public var nodes6: [NodeInfo] = []
    /// `get_peers`: peers of the torrent.
    public var values: [Endpoint] = []
    public var token: [UInt8]?
    /// BEP 44 `get`: the item (bencoded), and for mutable items its key, signature and seq.
    public var value: [UInt8]?
    public var key: [UInt8]?
    public var signature: [UInt8]?
    public var seq: Int64?

    public init() {}
}

/// One KRPC message (BEP 5): a query, a response or an error, with its transaction ID.
public struct KRPCMessage: Sendable, Hashable {
    public enum Body: Sendable, Hashable {
        case query(KRPCQuery)
        case response(KRPCResponse)
        case error(code: Int, message: String)
    }

    /// Opaque, chosen by the querier, echoed in the reply (at most 16 bytes accepted).
    public var transactionID: [UInt8]
    /// The sender's ID (queries and responses; errors carry none).
    public var senderID: NodeID?
    public var body: Body
    /// Client version (`v`), if sent.
    public var version: [UInt8]?
    /// BEP 43: the querier is read-only and must not be added to routing tables.
    public var readOnly = false
    /// BEP 42: in a response, the querier's address as the responder saw it.
    public var requesterAddress: Endpoint?

    public init(transactionID: [UInt8], senderID: NodeID?, body: Body) {
        self.transactionID = transactionID
        self.senderID = senderID
        self.body = body
    }
}

/// Why a datagram is not a KRPC message this node serves. `transactionID` is set when it could
/// be read, so a 203 (protocol) or 204 (method unknown) error can go back.
public struct KRPCError: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Reason: Sendable, Hashable {
        case notBencode(String)
        case missing(String)
        case wrongType(String)
        case badLength(String, Int)
        case unknownMethod(String)
        case unknownKind(String)
        case tooMany(String, Int)
    }

    public var transactionID: [UInt8]?
    public var reason: Reason
    /// The message was a query (`y` = `q`): BEP 5 answers a bad query with an error.
    public var isQuery = false

    public init(transactionID: [UInt8]?, reason: Reason) {
        self.transactionID = transactionID
        self.reason = reason
    }

    /// The KRPC error code that answers it (BEP 5: 203 protocol error, 204 method unknown).
    public var code: Int {
        if case .unknownMethod = reason { return 204 }
        return 203
    }

    public var description: String {
        switch reason {
        case .notBencode(let why): return "not bencode: \(why)"
        case .missing(let key): return "missing '\(key)'"
        case .wrongType(let key): return "'\(key)' has the wrong type"
        case .badLength(let key, let length): return "'\(key)' is \(length) bytes long"
        case .unknownMethod(let name): return "unknown method '\(name.prefix(32))'"
        case .unknownKind(let kind): return "unknown message type 'y'='\(kind.prefix(8))'"
        case .tooMany(let key, let limit): return "more than \(limit) entries in '\(key)'"
        }
    }
}

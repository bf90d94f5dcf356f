import Multiformats
import PeerCrypto

/// The pubsub protocols a peer may speak, best first.
public enum PubSubProtocol: String, Sendable, Hashable, CaseIterable {
    case meshsub11 = "/meshsub/1.1.0"
    case meshsub10 = "/meshsub/1.0.0"
    case floodsub = "/floodsub/1.0.0"

    /// Whether the peer takes part in meshes and gossip (not a floodsub peer).
    public var isGossipSub: Bool { self != .floodsub }
    /// Peer exchange and backoff in PRUNE are v1.1 only.
    public var hasPeerExchange: Bool { self == .meshsub11 }
}

/// A peer as the router names it: libp2p's peer ID, or a node number in the simulator. The wire
/// form is what peer exchange (PRUNE) and `from` carry.
public protocol GossipPeer: Hashable, Sendable {
    var wireID: [UInt8] { get }
    init?(wireID: [UInt8])
}

extension PeerID: GossipPeer {
    public var wireID: [UInt8] { multihash.bytes }
    public init?(wireID: [UInt8]) {
        guard let multihash = try? Multihash(bytes: wireID), let id = try? PeerID(multihash: multihash) else {
            return nil
        }
        self = id
    }
}

/// GossipSub's parameters (spec v1.0 "Parameters", v1.1 "Overview of New Parameters"), with
/// go-libp2p's defaults.
public struct GossipSubConfiguration: Sendable {
    /// The mesh degree D and its bounds: below `dLow` the mesh is filled, above `dHigh` pruned.
    public var d = 6
    public var dLow = 5
    public var dHigh = 12
    /// Peers each heartbeat's gossip (IHAVE) goes to, at least.
    public var dLazy = 6
    /// Peers kept by score when a mesh is pruned; outbound peers kept in a mesh.
    public var dScore = 4
    public var dOut = 2
    /// Gossip goes to max(dLazy, gossipFactor × peers not in the mesh).
    public var gossipFactor = 0.25
    public var heartbeatInterval: Duration = .seconds(1)
    public var fanoutTTL: Duration = .seconds(60)
    /// Heartbeat windows kept in the message cache, and the last ones advertised.
    public var historyLength = 5
    public var historyGossip = 3
    public var seenTTL: Duration = .seconds(120)
    /// Times one peer may ask for one message by IWANT.
    public var gossipRetransmission = 3
    public var pruneBackoff: Duration = .seconds(60)
    public var unsubscribeBackoff: Duration = .seconds(10)
    /// Peers offered in a PRUNE (peer exchange).
    public var prunePeers = 16
    /// A GRAFT this soon after a PRUNE costs an extra behaviour penalty.
    public var graftFloodThreshold: Duration = .seconds(10)
    public var opportunisticGraftTicks = 60
    public var opportunisticGraftPeers = 2
    /// IHAVE bounds per peer and heartbeat: messages, and message IDs asked for in IWANT.
    public var maxIHaveMessages = 10
    public var maxIHaveLength = 5_000
    /// How long a peer has to deliver a message it advertised and we asked for.
    public var iwantFollowupTime: Duration = .seconds(3)
    /// A message we publish goes to every peer of the topic above the publish threshold.
    public var floodPublish = true
    public var signaturePolicy = SignaturePolicy.strictSign
    /// Bounds on each RPC read.
    public var limits = PubSubRPC.Limits()
    /// Topics one peer may be subscribed to; further subscriptions are ignored.
    public var maxTopicsPerPeer = 512
    /// Topics this node tracks peers of.
    public var maxTopics = 4_096
    /// Peer scoring (v1.1); nil turns it off.
    public var score: PeerScoreParameters? = PeerScoreParameters()
    public var thresholds = PeerScoreThresholds()
    /// How a message is named in IHAVE/IWANT and the seen cache.
    public var messageID: @Sendable (PubSubMessage) -> [UInt8] = { $0.defaultID }

    public init() {}

    /// The floodsub router: no meshes, no gossip; every message to every subscribed peer.
    public static var floodsub: GossipSubConfiguration {
        var configuration = GossipSubConfiguration()
        configuration.d = 0
        return configuration
    }
}

/// What validation decided about a message (go-libp2p's `ValidationResult`).
public enum ValidationResult: Sendable, Hashable {
    /// Delivered and forwarded.
    case accept
    /// Dropped, and the peer that sent it is penalised (P4).
    case reject
    /// Dropped without penalty.
    case ignore
}

/// A node named by a number (the simulator's nodes, tests): its wire form is 8 bytes, big-endian.
public struct NodeNumber: GossipPeer, Comparable, CustomStringConvertible {
    public let value: Int
    public init(_ value: Int) { self.value = value }
    public var wireID: [UInt8] { UInt64(bitPattern: Int64(value)).bigEndianBytes }
    public init?(wireID: [UInt8]) {
        guard wireID.count == 8 else { return nil }
        value = Int(Int64(bitPattern: wireID.reduce(0) { $0 << 8 | UInt64($1) }))
    }
    public static func < (lhs: NodeNumber, rhs: NodeNumber) -> Bool { lhs.value < rhs.value }
    public var description: String { "node \(value)" }
}

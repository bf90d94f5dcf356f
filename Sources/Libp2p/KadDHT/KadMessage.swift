import Multiformats
import PeerCrypto

/// Why a kad-dht message or record was refused: what was wrong and where.
public enum KadError: Error, Sendable, Hashable, CustomStringConvertible {
    case malformed(String, offset: Int)
    /// More peers, addresses or bytes than one message may carry.
    case tooMany(String, limit: Int)
    /// A record the validator refused (wrong key for its value, unknown namespace, …).
    case invalidRecord(String)
    /// The peer asked for too much too fast.
    case rateLimited
    /// No peer answered (or none is known).
    case unreachable(String)

    public var description: String {
        switch self {
        case .malformed(let why, let offset): return "invalid kad-dht message at byte \(offset): \(why)"
        case .tooMany(let what, let limit): return "a kad-dht message with more than \(limit) \(what)"
        case .invalidRecord(let why): return "refused DHT record: \(why)"
        case .rateLimited: return "too many DHT requests from this peer"
        case .unreachable(let why): return why
        }
    }
}

/// One message of the libp2p Kademlia DHT (`/ipfs/kad/1.0.0`, the kad-dht spec's "RPC
/// messages"), request or response: its type, key, record and the closer and provider peers.
/// Decoding is total and bounded: every count and length is checked before anything is kept,
/// peers with a bad ID are an error, addresses this node cannot read are skipped (peers announce
/// transports it does not know).
public struct KadMessage: Sendable, Hashable {
    public enum Kind: UInt64, Sendable, Hashable {
        case putValue = 0
        case getValue = 1
        case addProvider = 2
        case getProviders = 3
        case findNode = 4
        case ping = 5
    }

    /// What the sender knows of its connection to a peer it names.
    public enum Connection: UInt64, Sendable, Hashable {
        case notConnected = 0
        case connected = 1
        case canConnect = 2
        case cannotConnect = 3
    }

    public struct Peer: Sendable, Hashable {
        public var id: PeerID
        public var addresses: [Multiaddr]
        public var connection: Connection

        public init(id: PeerID, addresses: [Multiaddr], connection: Connection = .notConnected) {
            self.id = id
            self.addresses = addresses
            self.connection = connection
        }
    }

    /// A value stored under a key (`/pk/<peer ID>` here); `timeReceived` is set by the node
    /// that stored it (RFC 3339).
    public struct Record: Sendable, Hashable {
        public var key: [UInt8]
        public var value: [UInt8]
        public var timeReceived: String

        public init(key: [UInt8], value: [UInt8], timeReceived: String = "") {
            self.key = key
            self.value = value
            self.timeReceived = timeReceived
        }
    }

    /// Bounds on what one message may carry (go-libp2p-kad-dht reads at most 4 MiB a message).
    public struct Limits: Sendable, Hashable {
        public var maxMessage = 4 << 20
        public var maxKey = 512
        public var maxValue = 64 << 10
        public var maxPeers = 256
        public var maxAddresses = 32

        public init() {}
    }

    public var kind: Kind
    public var key: [UInt8]
    public var record: Record?
    public var closerPeers: [Peer]
    public var providerPeers: [Peer]

    public init(
        kind: Kind, key: [UInt8] = [], record: Record? = nil, closerPeers: [Peer] = [],
        providerPeers: [Peer] = []
    ) {
        self.kind = kind
        self.key = key
        self.record = record
        self.closerPeers = closerPeers
        self.providerPeers = providerPeers
    }

    public init(decoding bytes: [UInt8], limits: Limits = Limits()) throws(KadError) {
        guard bytes.count <= limits.maxMessage else {
            throw .tooMany("bytes", limit: limits.maxMessage)
        }
        var reader = ProtobufReader(bytes)
        var kind = Kind.putValue
        var key: [UInt8] = []
        var record: Record?
        var closer: [Peer] = []
        var providers: [Peer] = []
        do {
            while let field = try reader.next() {
                switch (field.number, field.value) {
                case (1, .varint(let value)):
                    guard let known = Kind(rawValue: value) else {
                        throw KadError.malformed("message type \(value)", offset: field.offset)
                    }
                    kind = known
                case (2, .bytes(let range)):
                    guard range.count <= limits.maxKey else {
                        throw KadError.tooMany("key bytes", limit: limits.maxKey)
                    }
                    key = reader.slice(range)
                case (3, .bytes(let range)):
                    record = try Self.record(bytes, range, limits: limits)
                case (8, .bytes(let range)), (9, .bytes(let range)):
                    let list = field.number == 8 ? closer.count : providers.count
                    guard list < limits.maxPeers else {
                        throw KadError.tooMany("peers", limit: limits.maxPeers)
                    }
                    let peer = try Self.peer(bytes, range, limits: limits)
                    if field.number == 8 { closer.append(peer) } else { providers.append(peer) }
                case (1, _), (2, _), (3, _), (8, _), (9, _):
                    throw KadError.malformed(
                        "field \(field.number) has the wrong wire type", offset: field.offset)
                default:
                    continue  // clusterLevelRaw (10) and anything newer
                }
            }
        } catch let error as KadError {
            throw error
        } catch let error as ProtobufError {
            throw .malformed(error.what, offset: error.offset)
        } catch {
            throw .malformed("\(error)", offset: 0)
        }
        self.init(kind: kind, key: key, record: record, closerPeers: closer, providerPeers: providers)
    }

    private static func record(_ bytes: [UInt8], _ range: Range<Int>, limits: Limits) throws -> Record {
        var reader = ProtobufReader(bytes, range: range)
        var record = Record(key: [], value: [])
        while let field = try reader.next() {
            switch (field.number, field.value) {
            case (1, .bytes(let value)):
                guard value.count <= limits.maxKey else {
                    throw KadError.tooMany("record key bytes", limit: limits.maxKey)
                }
                record.key = reader.slice(value)
            case (2, .bytes(let value)):
                guard value.count <= limits.maxValue else {
                    throw KadError.tooMany("record value bytes", limit: limits.maxValue)
                }
                record.value = reader.slice(value)
            case (5, .bytes(let value)):
                guard value.count <= 64, let text = String(validating: reader.slice(value), as: UTF8.self)
                else {
                    throw KadError.malformed("the record's timeReceived", offset: field.offset)
                }
                record.timeReceived = text
            case (1, _), (2, _), (5, _):
                throw KadError.malformed(
                    "record field \(field.number) has the wrong wire type", offset: field.offset)
            default:
                continue  // author and signature (3, 4) were removed from the spec
            }
        }
        return record
    }

    private static func peer(_ bytes: [UInt8], _ range: Range<Int>, limits: Limits) throws -> Peer {
        var reader = ProtobufReader(bytes, range: range)
        var id: PeerID?
        var addresses: [Multiaddr] = []
        var seenAddresses = 0
        var connection = Connection.notConnected
        while let field = try reader.next() {
            switch (field.number, field.value) {
            case (1, .bytes(let value)):
                var offset = 0
                let raw = reader.slice(value)
                guard let multihash = try? Multihash.read(raw, at: &offset), offset == raw.count,
                    let peer = try? PeerID(multihash: multihash)
                else { throw KadError.malformed("a peer ID", offset: field.offset) }
                id = peer
            case (2, .bytes(let value)):
                seenAddresses += 1
                guard seenAddresses <= limits.maxAddresses else {
                    throw KadError.tooMany("addresses for one peer", limit: limits.maxAddresses)
                }
                if let address = try? Multiaddr(bytes: reader.slice(value)) { addresses.append(address) }
            case (3, .varint(let value)):
                connection = Connection(rawValue: value) ?? .notConnected
            case (1, _), (2, _), (3, _):
                throw KadError.malformed(
                    "peer field \(field.number) has the wrong wire type", offset: field.offset)
            default:
                continue
            }
        }
        guard let id else { throw KadError.malformed("a peer without an ID", offset: range.lowerBound) }
        return Peer(id: id, addresses: addresses, connection: connection)
    }

    /// The protobuf encoding (proto3: fields at their default, PUT_VALUE's type 0 too, left out).
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        if kind != .putValue { ProtobufWriter.varint(field: 1, kind.rawValue, into: &out) }
        if !key.isEmpty { ProtobufWriter.bytes(field: 2, key, into: &out) }
        if let record {
            var inner: [UInt8] = []
            if !record.key.isEmpty { ProtobufWriter.bytes(field: 1, record.key, into: &inner) }
            if !record.value.isEmpty { ProtobufWriter.bytes(field: 2, record.value, into: &inner) }
            if !record.timeReceived.isEmpty {
                ProtobufWriter.bytes(field: 5, Array(record.timeReceived.utf8), into: &inner)
            }
            ProtobufWriter.bytes(field: 3, inner, into: &out)
        }
        for (number, peers) in [(8, closerPeers), (9, providerPeers)] {
            for peer in peers {
                var inner: [UInt8] = []
                ProtobufWriter.bytes(field: 1, peer.id.multihash.bytes, into: &inner)
                for address in peer.addresses { ProtobufWriter.bytes(field: 2, address.bytes, into: &inner) }
                if peer.connection != .notConnected {
                    ProtobufWriter.varint(field: 3, peer.connection.rawValue, into: &inner)
                }
                ProtobufWriter.bytes(field: number, inner, into: &out)
            }
        }
        return out
    }
}

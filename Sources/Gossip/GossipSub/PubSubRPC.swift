import Multiformats

/// What went wrong in the gossip layer; every decoding error names the field and its offset.
public enum GossipError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Bytes that are not a valid message: what was wrong, and where.
    case malformed(String, offset: Int)
    /// A count or size over a configured bound.
    case tooLarge(String, limit: Int)
    /// A message that fails the signature policy (StrictSign or StrictNoSign).
    case badSignature(String)
    /// A memberlist message that cannot be read or acted on.
    case membership(String)

    public var description: String {
        switch self {
        case .malformed(let what, let offset): "malformed message at byte \(offset): \(what)"
        case .tooLarge(let what, let limit): "\(what) is over the limit of \(limit)"
        case .badSignature(let what): "bad signature: \(what)"
        case .membership(let what): "membership: \(what)"
        }
    }
}

/// One published message as pubsub carries it (the `Message` of libp2p's `rpc.proto`).
public struct PubSubMessage: Sendable, Hashable {
    /// The author's peer ID bytes (field 1).
    public var from: [UInt8]?
    public var data: [UInt8]
    /// The author's sequence number: 8 bytes, big-endian (field 3).
    public var seqno: [UInt8]?
    public var topic: String
    /// Signature over `"libp2p-pubsub:"` and the message without `signature` and `key` (field 5).
    public var signature: [UInt8]?
    /// The author's public key protobuf, when the peer ID does not inline it (field 6).
    public var key: [UInt8]?

    public init(
        from: [UInt8]? = nil, data: [UInt8], seqno: [UInt8]? = nil, topic: String,
        signature: [UInt8]? = nil, key: [UInt8]? = nil
    ) {
        self.from = from
        self.data = data
        self.seqno = seqno
        self.topic = topic
        self.signature = signature
        self.key = key
    }

    /// go-libp2p's and the spec's default message ID: `from` followed by `seqno`.
    public var defaultID: [UInt8] { (from ?? []) + (seqno ?? []) }

    /// The protobuf of this message; without the signature and key, the bytes that are signed.
    public func encoded(signed: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        if let from { ProtobufWriter.bytes(field: 1, from, into: &out) }
        ProtobufWriter.bytes(field: 2, data, into: &out)
        if let seqno { ProtobufWriter.bytes(field: 3, seqno, into: &out) }
        ProtobufWriter.bytes(field: 4, Array(topic.utf8), into: &out)
        if signed {
            if let signature { ProtobufWriter.bytes(field: 5, signature, into: &out) }
            if let key { ProtobufWriter.bytes(field: 6, key, into: &out) }
        }
        return out
    }
}

/// One RPC of libp2p pubsub (`rpc.proto`): subscription changes, messages and, for GossipSub,
/// control messages. On the wire each RPC is preceded by its length as an unsigned varint.
public struct PubSubRPC: Sendable, Hashable {
    public struct Subscription: Sendable, Hashable {
        public var subscribe: Bool
        public var topic: String
        public init(subscribe: Bool, topic: String) {
            self.subscribe = subscribe
            self.topic = topic
        }
    }

    /// IHAVE: message IDs of a topic the sender has in its cache (GossipSub v1.0).
    public struct IHave: Sendable, Hashable {
        public var topic: String
        public var messageIDs: [[UInt8]]
        public init(topic: String, messageIDs: [[UInt8]]) {
            self.topic = topic
            self.messageIDs = messageIDs
        }
    }

    /// A peer to connect to, offered in a PRUNE (peer exchange, GossipSub v1.1).
    public struct PeerInfo: Sendable, Hashable {
        public var peerID: [UInt8]?
        public var signedPeerRecord: [UInt8]?
        public init(peerID: [UInt8]? = nil, signedPeerRecord: [UInt8]? = nil) {
            self.peerID = peerID
            self.signedPeerRecord = signedPeerRecord
        }
    }

    public struct Prune: Sendable, Hashable {
        public var topic: String
        public var peers: [PeerInfo]
        /// Seconds before the pruned peer may GRAFT again (v1.1).
        public var backoff: UInt64?
        public init(topic: String, peers: [PeerInfo] = [], backoff: UInt64? = nil) {
            self.topic = topic
            self.peers = peers
            self.backoff = backoff
        }
    }

    public struct Control: Sendable, Hashable {
        public var ihave: [IHave] = []
        /// IWANT: message IDs asked for after an IHAVE.
        public var iwant: [[[UInt8]]] = []
        /// GRAFT: topics where the sender added us to its mesh.
        public var graft: [String] = []
        public var prune: [Prune] = []
        public init() {}
        public var isEmpty: Bool { ihave.isEmpty && iwant.isEmpty && graft.isEmpty && prune.isEmpty }
    }

    /// Bounds on what one RPC may hold; all are checked while reading, before anything grows.
    public struct Limits: Sendable, Hashable {
        /// go-libp2p's default maximum RPC size.
        public var maxSize = 1 << 20
        public var maxSubscriptions = 1_024
        public var maxMessages = 1_024
        public var maxTopicLength = 1_024
        /// Control entries (IHAVE, IWANT, GRAFT, PRUNE) and the message IDs and peers they carry.
        public var maxControlEntries = 1_024
        public var maxMessageIDs = 5_000
        public var maxMessageIDLength = 512
        public var maxPrunePeers = 64
        public init() {}
    }

    public var subscriptions: [Subscription]
    public var messages: [PubSubMessage]
    public var control: Control?

    public init(subscriptions: [Subscription] = [], messages: [PubSubMessage] = [], control: Control? = nil) {
        self.subscriptions = subscriptions
        self.messages = messages
        self.control = control
    }

    public var isEmpty: Bool { subscriptions.isEmpty && messages.isEmpty && (control?.isEmpty ?? true) }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        for subscription in subscriptions {
            var entry: [UInt8] = []
            ProtobufWriter.varint(field: 1, subscription.subscribe ? 1 : 0, into: &entry)
            ProtobufWriter.bytes(field: 2, Array(subscription.topic.utf8), into: &entry)
            ProtobufWriter.bytes(field: 1, entry, into: &out)
        }
        for message in messages { ProtobufWriter.bytes(field: 2, message.encoded(), into: &out) }
        if let control {
            var body: [UInt8] = []
            for ihave in control.ihave {
                var entry: [UInt8] = []
                ProtobufWriter.bytes(field: 1, Array(ihave.topic.utf8), into: &entry)
                for id in ihave.messageIDs { ProtobufWriter.bytes(field: 2, id, into: &entry) }
                ProtobufWriter.bytes(field: 1, entry, into: &body)
            }
            for iwant in control.iwant {
                var entry: [UInt8] = []
                for id in iwant { ProtobufWriter.bytes(field: 1, id, into: &entry) }
                ProtobufWriter.bytes(field: 2, entry, into: &body)
            }
            for topic in control.graft {
                var entry: [UInt8] = []
                ProtobufWriter.bytes(field: 1, Array(topic.utf8), into: &entry)
                ProtobufWriter.bytes(field: 3, entry, into: &body)
            }
            for prune in control.prune {
                var entry: [UInt8] = []
                ProtobufWriter.bytes(field: 1, Array(prune.topic.utf8), into: &entry)
                for peer in prune.peers {
                    var info: [UInt8] = []
                    if let id = peer.peerID { ProtobufWriter.bytes(field: 1, id, into: &info) }
                    if let record = peer.signedPeerRecord {
                        ProtobufWriter.bytes(field: 2, record, into: &info)
                    }
                    ProtobufWriter.bytes(field: 2, info, into: &entry)
                }
                if let backoff = prune.backoff { ProtobufWriter.varint(field: 3, backoff, into: &entry) }
                ProtobufWriter.bytes(field: 4, entry, into: &body)
            }
            ProtobufWriter.bytes(field: 3, body, into: &out)
        }
        return out
    }

    /// Reads one RPC (without its length prefix). Unknown fields are skipped, as protobuf readers
    /// do (IDONTWANT of v1.2 among them); every count is checked against `limits` as it grows.
    public static func decode(_ bytes: [UInt8], limits: Limits = Limits()) throws(GossipError) -> PubSubRPC {
        guard bytes.count <= limits.maxSize else {
            throw .tooLarge("an RPC of \(bytes.count) bytes", limit: limits.maxSize)
        }
        var decoder = Decoder(bytes: bytes, limits: limits)
        do {
            return try decoder.rpc()
        } catch let error as GossipError {
            throw error
        } catch let error as ProtobufError {
            throw .malformed(error.what, offset: error.offset)
        } catch {
            throw .malformed("\(error)", offset: 0)
        }
    }

    private struct Decoder {
        let bytes: [UInt8]
        let limits: Limits
        var controlEntries = 0
        var messageIDs = 0

        init(bytes: [UInt8], limits: Limits) {
            self.bytes = bytes
            self.limits = limits
        }

        func string(_ range: Range<Int>, _ what: String, at offset: Int) throws -> String {
            guard range.count <= limits.maxTopicLength else {
                throw GossipError.tooLarge(
                    "\(what) of \(range.count) bytes at byte \(offset)", limit: limits.maxTopicLength)
            }
            guard let text = String(validating: bytes[range], as: UTF8.self) else {
                throw GossipError.malformed("\(what) is not UTF-8", offset: offset)
            }
            return text
        }

        func range(_ field: ProtobufReader.Field, _ what: String) throws -> Range<Int> {
            guard let range = field.value.range else {
                throw GossipError.malformed(
                    "\(what) (field \(field.number)) is not length-delimited", offset: field.offset)
            }
            return range
        }

        mutating func rpc() throws -> PubSubRPC {
            var reader = ProtobufReader(bytes)
            var rpc = PubSubRPC()
            while let field = try reader.next() {
                switch field.number {
                case 1:
                    guard rpc.subscriptions.count < limits.maxSubscriptions else {
                        throw GossipError.tooLarge("subscriptions in one RPC", limit: limits.maxSubscriptions)
                    }
                    rpc.subscriptions.append(try subscription(try range(field, "a subscription")))
                case 2:
                    guard rpc.messages.count < limits.maxMessages else {
                        throw GossipError.tooLarge("messages in one RPC", limit: limits.maxMessages)
                    }
                    rpc.messages.append(try message(try range(field, "a message"), at: field.offset))
                case 3:
                    var control = rpc.control ?? Control()
                    try self.control(try range(field, "the control message"), into: &control)
                    rpc.control = control
                default: continue
                }
            }
            return rpc
        }

        func subscription(_ range: Range<Int>) throws -> Subscription {
            var reader = ProtobufReader(bytes, range: range)
            var subscription = Subscription(subscribe: false, topic: "")
            while let field = try reader.next() {
                switch field.number {
                case 1: subscription.subscribe = (field.value.integer ?? 0) != 0
                case 2:
                    subscription.topic = try string(
                        try self.range(field, "a topic"), "a topic", at: field.offset)
                default: continue
                }
            }
            return subscription
        }

        func message(_ range: Range<Int>, at offset: Int) throws -> PubSubMessage {
            var reader = ProtobufReader(bytes, range: range)
            var message = PubSubMessage(data: [], topic: "")
            while let field = try reader.next() {
                switch field.number {
                case 1: message.from = reader.slice(try self.range(field, "from"))
                case 2: message.data = reader.slice(try self.range(field, "data"))
                case 3: message.seqno = reader.slice(try self.range(field, "seqno"))
                case 4:
                    message.topic = try string(try self.range(field, "a topic"), "a topic", at: field.offset)
                case 5: message.signature = reader.slice(try self.range(field, "signature"))
                case 6: message.key = reader.slice(try self.range(field, "key"))
                default: continue
                }
            }
            return message
        }

        mutating func countEntry(at offset: Int) throws {
            controlEntries += 1
            guard controlEntries <= limits.maxControlEntries else {
                throw GossipError.tooLarge(
                    "control entries in one RPC (at byte \(offset))", limit: limits.maxControlEntries)
            }
        }

        mutating func messageID(_ field: ProtobufReader.Field) throws -> [UInt8] {
            let range = try self.range(field, "a message ID")
            messageIDs += 1
            guard messageIDs <= limits.maxMessageIDs else {
                throw GossipError.tooLarge(
                    "message IDs in one RPC (at byte \(field.offset))", limit: limits.maxMessageIDs)
            }
            guard range.count <= limits.maxMessageIDLength else {
                throw GossipError.tooLarge(
                    "a message ID of \(range.count) bytes at byte \(field.offset)",
                    limit: limits.maxMessageIDLength)
            }
            return Array(bytes[range])
        }

        mutating func control(_ range: Range<Int>, into control: inout Control) throws {
            var reader = ProtobufReader(bytes, range: range)
            while let field = try reader.next() {
                switch field.number {
                case 1:
                    try countEntry(at: field.offset)
                    var entry = ProtobufReader(bytes, range: try self.range(field, "an IHAVE"))
                    var ihave = IHave(topic: "", messageIDs: [])
                    while let inner = try entry.next() {
                        switch inner.number {
                        case 1:
                            ihave.topic = try string(
                                try self.range(inner, "a topic"), "a topic", at: inner.offset)
                        case 2: ihave.messageIDs.append(try messageID(inner))
                        default: continue
                        }
                    }
                    control.ihave.append(ihave)
                case 2:
                    try countEntry(at: field.offset)
                    var entry = ProtobufReader(bytes, range: try self.range(field, "an IWANT"))
                    var ids: [[UInt8]] = []
                    while let inner = try entry.next() {
                        if inner.number == 1 { ids.append(try messageID(inner)) }
                    }
                    control.iwant.append(ids)
                case 3:
                    try countEntry(at: field.offset)
                    var entry = ProtobufReader(bytes, range: try self.range(field, "a GRAFT"))
                    var topic = ""
                    while let inner = try entry.next() {
                        if inner.number == 1 {
                            topic = try string(try self.range(inner, "a topic"), "a topic", at: inner.offset)
                        }
                    }
                    control.graft.append(topic)
                case 4:
                    try countEntry(at: field.offset)
                    var entry = ProtobufReader(bytes, range: try self.range(field, "a PRUNE"))
                    var prune = Prune(topic: "")
                    while let inner = try entry.next() {
                        switch inner.number {
                        case 1:
                            prune.topic = try string(
                                try self.range(inner, "a topic"), "a topic", at: inner.offset)
                        case 2:
                            guard prune.peers.count < limits.maxPrunePeers else {
                                throw GossipError.tooLarge(
                                    "peers in a PRUNE (at byte \(inner.offset))", limit: limits.maxPrunePeers)
                            }
                            var info = ProtobufReader(bytes, range: try self.range(inner, "a PRUNE's peer"))
                            var peer = PeerInfo()
                            while let part = try info.next() {
                                switch part.number {
                                case 1: peer.peerID = info.slice(try self.range(part, "a peer ID"))
                                case 2:
                                    peer.signedPeerRecord = info.slice(
                                        try self.range(part, "a signed peer record"))
                                default: continue
                                }
                            }
                            prune.peers.append(peer)
                        case 3:
                            guard let backoff = inner.value.integer else {
                                throw GossipError.malformed(
                                    "the PRUNE backoff is not a varint", offset: inner.offset)
                            }
                            prune.backoff = backoff
                        default: continue
                        }
                    }
                    control.prune.append(prune)
                default: continue
                }
            }
        }
    }
}

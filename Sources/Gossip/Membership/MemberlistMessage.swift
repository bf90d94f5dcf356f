import Crypto
import Foundation
import PeerNet

/// memberlist's message types: the first byte of every packet, compound part and stream.
public enum MemberlistMessageType: UInt8, Sendable, CaseIterable {
    case ping = 0
    case indirectPing = 1
    case ack = 2
    case suspect = 3
    case alive = 4
    case dead = 5
    case pushPull = 6
    case compound = 7
    case user = 8
    case compress = 9
    case encrypt = 10
    case nack = 11
    case hasCRC = 12
    case error = 13
    /// A label header (type, length, label) before anything else; memberlist 0.3+.
    case hasLabel = 244
}

/// A member's state as push-pull carries it (memberlist's `NodeStateType`).
public enum MemberState: UInt8, Sendable, Hashable, Codable, CustomStringConvertible {
    case alive = 0
    case suspect = 1
    case dead = 2
    case left = 3

    /// As serf prints it: a dead member is "failed".
    public var description: String {
        switch self {
        case .alive: "alive"
        case .suspect: "suspect"
        case .dead: "failed"
        case .left: "left"
        }
    }
}

/// `ping`: a direct probe; `node` names the intended target so a restarted agent with another
/// name does not answer for the old one. The source fields let the target answer directly.
public struct MemberPing: Sendable, Hashable {
    public var sequence: UInt32
    public var node: String
    public var sourceAddress: [UInt8] = []
    public var sourcePort: UInt16 = 0
    public var sourceNode: String = ""

    public init(sequence: UInt32, node: String, source: Endpoint? = nil, sourceNode: String = "") {
        self.sequence = sequence
        self.node = node
        if let source {
            sourceAddress = source.ip.bytes
            sourcePort = source.port
        }
        self.sourceNode = sourceNode
    }

    public var source: Endpoint? { sourcePort == 0 ? nil : Endpoint(ip: sourceAddress, port: sourcePort) }
}

/// `indirectPingReq`: ask a member to probe `target` for us (SWIM's ping-req), with a nack
/// back when it gets no ack (Lifeguard's signal that the fault may be our own).
public struct MemberIndirectPing: Sendable, Hashable {
    public var sequence: UInt32
    public var target: [UInt8]
    public var port: UInt16
    public var node: String
    public var wantsNack: Bool
    public var sourceAddress: [UInt8] = []
    public var sourcePort: UInt16 = 0
    public var sourceNode: String = ""

    public init(
        sequence: UInt32, target: Endpoint, node: String, wantsNack: Bool, source: Endpoint?,
        sourceNode: String
    ) {
        self.sequence = sequence
        self.target = target.ip.bytes
        self.port = target.port
        self.node = node
        self.wantsNack = wantsNack
        if let source {
            sourceAddress = source.ip.bytes
            sourcePort = source.port
        }
        self.sourceNode = sourceNode
    }

    public var targetEndpoint: Endpoint? { Endpoint(ip: target, port: port) }
    public var source: Endpoint? { sourcePort == 0 ? nil : Endpoint(ip: sourceAddress, port: sourcePort) }
}

/// `alive`, `suspect` and `dead`: membership news, ordered by the member's incarnation.
public struct MemberAlive: Sendable, Hashable {
    public var incarnation: UInt32
    public var node: String
    public var address: [UInt8]
    public var port: UInt16
    public var meta: [UInt8]
    /// pmin, pmax, pcur, dmin, dmax, dcur: memberlist's and its delegate's protocol versions.
    public var versions: [UInt8]

    public init(
        incarnation: UInt32, node: String, address: [UInt8], port: UInt16, meta: [UInt8], versions: [UInt8]
    ) {
        self.incarnation = incarnation
        self.node = node
        self.address = address
        self.port = port
        self.meta = meta
        self.versions = versions
    }
}

public struct MemberAccusation: Sendable, Hashable {
    public var incarnation: UInt32
    public var node: String
    /// Who suspects it, or declares it dead; `from == node` on a dead message is a graceful leave.
    public var from: String

    public init(incarnation: UInt32, node: String, from: String) {
        self.incarnation = incarnation
        self.node = node
        self.from = from
    }
}

/// One member in a push-pull exchange (`pushNodeState`).
public struct PushNodeState: Sendable, Hashable {
    public var name: String
    public var address: [UInt8]
    public var port: UInt16
    public var meta: [UInt8]
    public var incarnation: UInt32
    public var state: MemberState
    public var versions: [UInt8]

    public init(
        name: String, address: [UInt8], port: UInt16, meta: [UInt8], incarnation: UInt32, state: MemberState,
        versions: [UInt8]
    ) {
        self.name = name
        self.address = address
        self.port = port
        self.meta = meta
        self.incarnation = incarnation
        self.state = state
        self.versions = versions
    }
}

/// A push-pull: the sender's whole view, and its delegate's (serf's) opaque state.
public struct PushPull: Sendable, Hashable {
    public var join: Bool
    public var nodes: [PushNodeState]
    public var userState: [UInt8]

    public init(join: Bool, nodes: [PushNodeState], userState: [UInt8] = []) {
        self.join = join
        self.nodes = nodes
        self.userState = userState
    }
}

/// One memberlist message, after compound, compression, CRC and encryption are undone.
public enum MemberlistMessage: Sendable, Hashable {
    case ping(MemberPing)
    case indirectPing(MemberIndirectPing)
    case ack(sequence: UInt32, payload: [UInt8])
    case nack(sequence: UInt32)
    case suspect(MemberAccusation)
    case alive(MemberAlive)
    case dead(MemberAccusation)
    /// A delegate's message (serf's events and intents), carried opaquely.
    case user([UInt8])
    case error(String)
    /// Streams only.
    case pushPull(PushPull)

    public var type: MemberlistMessageType {
        switch self {
        case .ping: .ping
        case .indirectPing: .indirectPing
        case .ack: .ack
        case .nack: .nack
        case .suspect: .suspect
        case .alive: .alive
        case .dead: .dead
        case .user: .user
        case .error: .error
        case .pushPull: .pushPull
        }
    }
}

/// Why memberlist bytes were refused; each case names what and where.
public enum MemberlistError: Error, Sendable, Hashable, CustomStringConvertible {
    case empty
    case unknownType(UInt8)
    case messagePack(MemberlistMessageType, MessagePackError)
    case field(MemberlistMessageType, String, expected: String)
    case badCRC(expected: UInt32, computed: UInt32)
    case compound(String)
    case compression(String)
    case decryption(String)
    case tooLarge(String, Int, limit: Int)
    case nesting
    case unexpected(MemberlistMessageType, where: String)
    case label

    public var description: String {
        switch self {
        case .empty: "memberlist: empty message"
        case .unknownType(let byte): "memberlist: unknown message type \(byte)"
        case .messagePack(let type, let error): "memberlist \(type): \(error)"
        case .field(let type, let name, let expected): "memberlist \(type): field \(name) is not \(expected)"
        case .badCRC(let expected, let computed):
            "memberlist: CRC \(String(expected, radix: 16)) does not match the content's \(String(computed, radix: 16))"
        case .compound(let why): "memberlist compound: \(why)"
        case .compression(let why): "memberlist compressed message: \(why)"
        case .decryption(let why): "memberlist encrypted message: \(why)"
        case .tooLarge(let what, let size, let limit): "memberlist: \(what) of \(size) exceeds \(limit)"
        case .nesting: "memberlist: compound or compressed messages nested too deep"
        case .unexpected(let type, let place): "memberlist: \(type) is not expected in a \(place)"
        case .label: "memberlist: a labelled message, and this member has no label"
        }
    }
}

/// Bounds on what a remote member can make this one hold.
public struct MemberlistLimits: Sendable, Hashable {
    /// A UDP packet, before and after decompression.
    public var packetSize = 65_536
    /// A push-pull stream (memberlist itself refuses more than 20 MB).
    public var streamSize = 8 << 20
    /// Members in one push-pull.
    public var pushPullNodes = 10_000
    /// memberlist's `MetaMaxSize`.
    public var metaSize = 512
    public var nameLength = 512
    public init() {}
}

extension MessagePackValue {
    fileprivate static func text(_ string: String) -> MessagePackValue { .bytes(Array(string.utf8)) }
}

/// memberlist's encoding of each message: a type byte, then a msgpack map of the Go struct's
/// fields (memberlist `util.go`, `net.go`).
public enum MemberlistCodec {
    // MARK: Messages

    public static func encode(_ message: MemberlistMessage) -> [UInt8] {
        var out: [UInt8] = [message.type.rawValue]
        switch message {
        case .user(let payload):
            out.append(contentsOf: payload)
            return out
        case .pushPull(let pushPull):
            appendPushPull(pushPull, to: &out)
            return out
        default:
            MessagePack.append(body(message), to: &out)
            return out
        }
    }

    static func body(_ message: MemberlistMessage) -> MessagePackValue {
        switch message {
        case .ping(let ping):
            var fields: [(String, MessagePackValue)] = [
                ("SeqNo", .uint(UInt64(ping.sequence))), ("Node", .text(ping.node)),
            ]
            if !ping.sourceAddress.isEmpty { fields.append(("SourceAddr", .bytes(ping.sourceAddress))) }
            if ping.sourcePort != 0 { fields.append(("SourcePort", .uint(UInt64(ping.sourcePort)))) }
            if !ping.sourceNode.isEmpty { fields.append(("SourceNode", .text(ping.sourceNode))) }
            return MessagePack.structure(fields)
        case .indirectPing(let request):
            var fields: [(String, MessagePackValue)] = [
                ("SeqNo", .uint(UInt64(request.sequence))), ("Target", .bytes(request.target)),
                ("Port", .uint(UInt64(request.port))), ("Node", .text(request.node)),
                ("Nack", .bool(request.wantsNack)),
            ]
            if !request.sourceAddress.isEmpty { fields.append(("SourceAddr", .bytes(request.sourceAddress))) }
            if request.sourcePort != 0 { fields.append(("SourcePort", .uint(UInt64(request.sourcePort)))) }
            if !request.sourceNode.isEmpty { fields.append(("SourceNode", .text(request.sourceNode))) }
            return MessagePack.structure(fields)
        case .ack(let sequence, let payload):
            return MessagePack.structure([("SeqNo", .uint(UInt64(sequence))), ("Payload", .bytes(payload))])
        case .nack(let sequence):
            return MessagePack.structure([("SeqNo", .uint(UInt64(sequence)))])
        case .suspect(let accusation), .dead(let accusation):
            return MessagePack.structure([
                ("Incarnation", .uint(UInt64(accusation.incarnation))), ("Node", .text(accusation.node)),
                ("From", .text(accusation.from)),
            ])
        case .alive(let alive):
            return MessagePack.structure([
                ("Incarnation", .uint(UInt64(alive.incarnation))), ("Node", .text(alive.node)),
                ("Addr", .bytes(alive.address)), ("Port", .uint(UInt64(alive.port))),
                ("Meta", .bytes(alive.meta)),
                ("Vsn", .bytes(alive.versions)),
            ])
        case .error(let text):
            return MessagePack.structure([("Error", .text(text))])
        case .user, .pushPull:
            return .null
        }
    }

    static func appendPushPull(_ pushPull: PushPull, to out: inout [UInt8]) {
        MessagePack.append(
            MessagePack.structure([
                ("Nodes", .int(Int64(pushPull.nodes.count))),
                ("UserStateLen", .int(Int64(pushPull.userState.count))),
                ("Join", .bool(pushPull.join)),
            ]), to: &out)
        for node in pushPull.nodes {
            MessagePack.append(
                MessagePack.structure([
                    ("Name", .text(node.name)), ("Addr", .bytes(node.address)),
                    ("Port", .uint(UInt64(node.port))),
                    ("Meta", .bytes(node.meta)), ("Incarnation", .uint(UInt64(node.incarnation))),
                    ("State", .int(Int64(node.state.rawValue))), ("Vsn", .bytes(node.versions)),
                ]), to: &out)
        }
        out.append(contentsOf: pushPull.userState)
    }

    /// Decodes one message (no compound, compression, CRC or encryption around it).
    public static func decode(_ bytes: [UInt8], limits: MemberlistLimits = MemberlistLimits())
        throws(MemberlistError) -> MemberlistMessage
    {
        guard let first = bytes.first else { throw .empty }
        guard let type = MemberlistMessageType(rawValue: first) else { throw .unknownType(first) }
        if type == .user { return .user(Array(bytes.dropFirst())) }
        if type == .pushPull {
            switch try decodePushPull(bytes, limits: limits) {
            case .complete(let pushPull, _): return .pushPull(pushPull)
            case .needMore: throw .messagePack(.pushPull, .truncated(offset: bytes.count))
            }
        }
        let value: MessagePackValue
        do {
            value = try MessagePack.decode(bytes, at: 1, maxLength: limits.packetSize).value
        } catch {
            throw .messagePack(type, error)
        }
        let fields = Fields(type: type, value: value, limits: limits)
        switch type {
        case .ping:
            var ping = MemberPing(sequence: try fields.uint32("SeqNo"), node: try fields.string("Node"))
            ping.sourceAddress = try fields.bytes("SourceAddr")
            ping.sourcePort = try fields.uint16("SourcePort")
            ping.sourceNode = try fields.string("SourceNode")
            return .ping(ping)
        case .indirectPing:
            var request = MemberIndirectPing(
                sequence: try fields.uint32("SeqNo"), target: Endpoint(ip: .anyV4, port: 0),
                node: try fields.string("Node"),
                wantsNack: try fields.bool("Nack"), source: nil, sourceNode: try fields.string("SourceNode"))
            request.target = try fields.bytes("Target")
            request.port = try fields.uint16("Port")
            request.sourceAddress = try fields.bytes("SourceAddr")
            request.sourcePort = try fields.uint16("SourcePort")
            return .indirectPing(request)
        case .ack: return .ack(sequence: try fields.uint32("SeqNo"), payload: try fields.bytes("Payload"))
        case .nack: return .nack(sequence: try fields.uint32("SeqNo"))
        case .suspect, .dead:
            let accusation = MemberAccusation(
                incarnation: try fields.uint32("Incarnation"), node: try fields.string("Node"),
                from: try fields.string("From"))
            return type == .suspect ? .suspect(accusation) : .dead(accusation)
        case .alive:
            let meta = try fields.bytes("Meta")
            guard meta.count <= limits.metaSize else {
                throw .tooLarge("alive Meta", meta.count, limit: limits.metaSize)
            }
            return .alive(
                MemberAlive(
                    incarnation: try fields.uint32("Incarnation"), node: try fields.string("Node"),
                    address: try fields.bytes("Addr"), port: try fields.uint16("Port"), meta: meta,
                    versions: try fields.bytes("Vsn")))
        case .error: return .error(try fields.string("Error"))
        default: throw .unexpected(type, where: "message")
        }
    }

    public enum PushPullResult: Sendable, Hashable {
        case complete(PushPull, consumed: Int)
        case needMore
    }

    /// Where an incremental push-pull read stands: bytes already parsed are not parsed again,
    /// so a stream trickled a byte at a time costs linear, not quadratic, work.
    public struct PushPullProgress: Sendable {
        var offset = 1
        var header: (count: Int, userLength: Int, join: Bool)?
        var nodes: [PushNodeState] = []

        public init() {}
    }

    /// Reads a push-pull from a stream buffer that starts with its type byte; `.needMore` until
    /// the whole of it (header, every member, the user state) has arrived.
    public static func decodePushPull(_ bytes: [UInt8], limits: MemberlistLimits) throws(MemberlistError)
        -> PushPullResult
    {
        var progress = PushPullProgress()
        return try decodePushPull(bytes, limits: limits, progress: &progress)
    }

    /// As ``decodePushPull(_:limits:)``, resuming from `progress` (the same, growing buffer).
    public static func decodePushPull(
        _ bytes: [UInt8], limits: MemberlistLimits, progress: inout PushPullProgress
    ) throws(MemberlistError) -> PushPullResult {
        guard bytes.first == MemberlistMessageType.pushPull.rawValue else {
            throw .unknownType(bytes.first ?? 0)
        }
        var offset = progress.offset
        func next() throws(MemberlistError) -> MessagePackValue? {
            do {
                let (value, end) = try MessagePack.decode(bytes, at: offset, maxLength: limits.streamSize)
                offset = end
                return value
            } catch {
                if case .truncated = error { return nil }
                throw .messagePack(.pushPull, error)
            }
        }
        if progress.header == nil {
            guard let headerValue = try next() else { return .needMore }
            let header = Fields(type: .pushPull, value: headerValue, limits: limits)
            let count = try header.int("Nodes")
            let userLength = try header.int("UserStateLen")
            guard count >= 0, count <= limits.pushPullNodes else {
                throw .tooLarge("push-pull Nodes", count, limit: limits.pushPullNodes)
            }
            guard userLength >= 0, userLength <= limits.streamSize else {
                throw .tooLarge("push-pull UserStateLen", userLength, limit: limits.streamSize)
            }
            progress.header = (count, userLength, try header.bool("Join"))
            progress.offset = offset
        }
        guard let (count, userLength, join) = progress.header else { return .needMore }
        while progress.nodes.count < count {
            guard let value = try next() else { return .needMore }
            let fields = Fields(type: .pushPull, value: value, limits: limits)
            let stateValue = try fields.int("State")
            guard let state = MemberState(rawValue: UInt8(clamping: max(0, stateValue))), stateValue <= 3
            else {
                throw .field(.pushPull, "State", expected: "a node state 0-3")
            }
            let meta = try fields.bytes("Meta")
            guard meta.count <= limits.metaSize else {
                throw .tooLarge("push-pull Meta", meta.count, limit: limits.metaSize)
            }
            progress.nodes.append(
                PushNodeState(
                    name: try fields.string("Name"), address: try fields.bytes("Addr"),
                    port: try fields.uint16("Port"),
                    meta: meta, incarnation: try fields.uint32("Incarnation"), state: state,
                    versions: try fields.bytes("Vsn")))
            progress.offset = offset
        }
        guard bytes.count - offset >= userLength else { return .needMore }
        let user = Array(bytes[offset..<offset + userLength])
        return .complete(
            PushPull(join: join, nodes: progress.nodes, userState: user), consumed: offset + userLength)
    }

    /// Go's zero value for a missing field, a typed error for a field of the wrong type.
    struct Fields {
        let type: MemberlistMessageType
        let value: MessagePackValue
        let limits: MemberlistLimits

        func field(_ name: String) throws(MemberlistError) -> MessagePackValue? {
            guard case .map = value else { throw .field(type, "(body)", expected: "a map") }
            let found = value[name]
            if found == .null { return nil }
            return found
        }

        func unsigned(_ name: String, max: UInt64) throws(MemberlistError) -> UInt64 {
            guard let found = try field(name) else { return 0 }
            guard let number = found.unsigned, number <= max else {
                throw .field(type, name, expected: "an unsigned integer up to \(max)")
            }
            return number
        }

        func uint32(_ name: String) throws(MemberlistError) -> UInt32 {
            UInt32(try unsigned(name, max: UInt64(UInt32.max)))
        }
        func uint16(_ name: String) throws(MemberlistError) -> UInt16 {
            UInt16(try unsigned(name, max: UInt64(UInt16.max)))
        }
        func int(_ name: String) throws(MemberlistError) -> Int {
            guard let found = try field(name) else { return 0 }
            switch found {
            case .int(let number) where number >= Int64(Int32.min) && number <= Int64(Int32.max):
                return Int(number)
            case .uint(let number) where number <= UInt64(Int32.max): return Int(number)
            default: throw .field(type, name, expected: "an integer")
            }
        }

        func bool(_ name: String) throws(MemberlistError) -> Bool {
            guard let found = try field(name) else { return false }
            guard let flag = found.boolean else { throw .field(type, name, expected: "a boolean") }
            return flag
        }

        func bytes(_ name: String) throws(MemberlistError) -> [UInt8] {
            guard let found = try field(name) else { return [] }
            guard let bytes = found.byteString else { throw .field(type, name, expected: "bytes") }
            return bytes
        }

        func string(_ name: String) throws(MemberlistError) -> String {
            let raw = try bytes(name)
            guard raw.count <= limits.nameLength else {
                throw .tooLarge("\(type) \(name)", raw.count, limit: limits.nameLength)
            }
            return String(decoding: raw, as: UTF8.self)
        }
    }
}

/// Serf's node tags in memberlist's `Meta`: byte 255, then a msgpack map of strings. Meta
/// without the magic byte is read as serf's old single `role` tag.
public enum SerfTags {
    public static func encode(_ tags: [String: String]) -> [UInt8] {
        var out: [UInt8] = [0xFF]
        MessagePack.append(
            .map(
                tags.sorted { $0.key < $1.key }.map {
                    (key: .bytes(Array($0.key.utf8)), value: .bytes(Array($0.value.utf8)))
                }),
            to: &out)
        return out
    }

    public static func decode(_ meta: [UInt8]) -> [String: String] {
        guard meta.first == 0xFF else {
            return meta.isEmpty ? [:] : ["role": String(decoding: meta, as: UTF8.self)]
        }
        guard case .map(let entries)? = try? MessagePack.decode(meta, at: 1, maxLength: 512).value else {
            return [:]
        }
        var tags: [String: String] = [:]
        for entry in entries {
            guard let key = entry.key.byteString, let value = entry.value.byteString else { continue }
            tags[String(decoding: key, as: UTF8.self)] = String(decoding: value, as: UTF8.self)
        }
        return tags
    }
}

import Bencode
import PeerNet

/// The BEP 10 extension handshake: which extensions the sender speaks and under which message
/// IDs (`m`), plus `v` (client), `p` (listen port), `yourip`, `reqq` and, for BEP 9,
/// `metadata_size`.
public struct ExtensionHandshake: Hashable, Sendable {
    /// Extension name → the ID the sender wants to receive it under (0 = disabled).
    public var messageIDs: [String: UInt8]
    public var client: String?
    public var listenPort: UInt16?
    public var yourIP: [UInt8]?
    public var requestQueueLength: Int?
    public var metadataSize: Int?

    public init(
        messageIDs: [String: UInt8] = [:], client: String? = nil, listenPort: UInt16? = nil,
        yourIP: [UInt8]? = nil,
        requestQueueLength: Int? = nil, metadataSize: Int? = nil
    ) {
        self.messageIDs = messageIDs
        self.client = client
        self.listenPort = listenPort
        self.yourIP = yourIP
        self.requestQueueLength = requestQueueLength
        self.metadataSize = metadataSize
    }

    /// Largest metadata accepted (libtorrent's limit is 4 MiB too).
    public static let maxMetadataSize = 4 << 20

    public init(decoding payload: [UInt8]) throws(PeerWireError) {
        let value: BencodeValue
        do {
            value = try BencodeDecoder(mode: .lenient).decode(payload)
        } catch {
            throw .badExtensionMessage("extension handshake: \(error)")
        }
        guard case .dictionary = value else {
            throw .badExtensionMessage("extension handshake is not a dictionary")
        }
        var ids: [String: UInt8] = [:]
        if let m = value["m"]?.dictionary {
            for (key, id) in m {
                guard let name = String(validating: key, as: UTF8.self), let number = id.integer,
                    number >= 0, number <= 255
                else { continue }
                ids[name] = UInt8(number)
            }
        }
        messageIDs = ids
        client = value["v"]?.string
        listenPort = value["p"]?.integer.flatMap { $0 > 0 && $0 <= 65_535 ? UInt16($0) : nil }
        yourIP = value["yourip"]?.bytes.flatMap { $0.count == 4 || $0.count == 16 ? $0 : nil }
        requestQueueLength = value["reqq"]?.integer.flatMap { $0 > 0 ? Int(clamping: $0) : nil }
        metadataSize = value["metadata_size"]?.integer.flatMap {
            $0 > 0 && $0 <= Int64(Self.maxMetadataSize) ? Int($0) : nil
        }
    }

    public func encoded() -> [UInt8] {
        var dict: [[UInt8]: BencodeValue] = [
            Array("m".utf8): .dictionary(
                Dictionary(
                    uniqueKeysWithValues: messageIDs.map { (Array($0.key.utf8), .integer(Int64($0.value))) }))
        ]
        if let client { dict[Array("v".utf8)] = .string(client) }
        if let listenPort { dict[Array("p".utf8)] = .integer(Int64(listenPort)) }
        if let yourIP { dict[Array("yourip".utf8)] = .bytes(yourIP) }
        if let requestQueueLength { dict[Array("reqq".utf8)] = .integer(Int64(requestQueueLength)) }
        if let metadataSize { dict[Array("metadata_size".utf8)] = .integer(Int64(metadataSize)) }
        return BencodeValue.dictionary(dict).encoded()
    }
}

/// A BEP 9 `ut_metadata` message: request, data (with the piece's bytes after the dictionary)
/// or reject. Metadata travels in 16 KiB pieces.
public enum MetadataMessage: Hashable, Sendable {
    case request(piece: Int)
    case data(piece: Int, totalSize: Int, bytes: [UInt8])
    case reject(piece: Int)

    public static let pieceLength = 16_384

    public init(decoding payload: [UInt8]) throws(PeerWireError) {
        let (value, length): (BencodeValue, Int)
        do {
            (value, length) = try BencodeDecoder(mode: .lenient).decodePrefix(payload[...])
        } catch {
            throw .badExtensionMessage("ut_metadata: \(error)")
        }
        guard let type = value["msg_type"]?.integer, let piece = value["piece"]?.integer,
            piece >= 0, piece < Int64(ExtensionHandshake.maxMetadataSize / Self.pieceLength)
        else {
            throw .badExtensionMessage("ut_metadata without a valid msg_type and piece")
        }
        switch type {
        case 0: self = .request(piece: Int(piece))
        case 1:
            guard let total = value["total_size"]?.integer, total > 0,
                total <= Int64(ExtensionHandshake.maxMetadataSize)
            else {
                throw .badExtensionMessage("ut_metadata data without a valid total_size")
            }
            let bytes = Array(payload[length...])
            guard bytes.count <= Self.pieceLength else {
                throw .badExtensionMessage("ut_metadata piece of \(bytes.count) bytes")
            }
            self = .data(piece: Int(piece), totalSize: Int(total), bytes: bytes)
        case 2: self = .reject(piece: Int(piece))
        default: throw .badExtensionMessage("ut_metadata msg_type \(type)")
        }
    }

    public func encoded() -> [UInt8] {
        switch self {
        case .request(let piece):
            return (["msg_type": 0, "piece": .integer(Int64(piece))] as BencodeValue).encoded()
        case .data(let piece, let totalSize, let bytes):
            let dict: BencodeValue = [
                "msg_type": 1, "piece": .integer(Int64(piece)), "total_size": .integer(Int64(totalSize)),
            ]
            return dict.encoded() + bytes
        case .reject(let piece):
            return (["msg_type": 2, "piece": .integer(Int64(piece))] as BencodeValue).encoded()
        }
    }
}

/// A BEP 11 `ut_pex` message: peers added and dropped since the last one.
public struct PEXMessage: Hashable, Sendable {
    public var added: [Endpoint]
    public var dropped: [Endpoint]

    /// BEP 11 caps a message at 50 added and 50 dropped peers of each family.
    public static let maxPeers = 50

    public init(added: [Endpoint] = [], dropped: [Endpoint] = []) {
        self.added = added
        self.dropped = dropped
    }

    public init(decoding payload: [UInt8]) throws(PeerWireError) {
        let value: BencodeValue
        do {
            value = try BencodeDecoder(mode: .lenient).decode(payload)
        } catch {
            throw .badExtensionMessage("ut_pex: \(error)")
        }
        func peers(_ key: String, _ ipLength: Int) -> [Endpoint] {
            // Read at most a few hundred; anything beyond is ignored, not refused.
            guard let bytes = value[key]?.bytes else { return [] }
            return Array(Endpoint.parseCompact(bytes.prefix((ipLength + 2) * 200), ipLength: ipLength))
        }
        added = peers("added", 4) + peers("added6", 16)
        dropped = peers("dropped", 4) + peers("dropped6", 16)
    }

    public func encoded() -> [UInt8] {
        func compact(_ peers: [Endpoint], v6: Bool) -> BencodeValue {
            .bytes(peers.filter { $0.isIPv6 == v6 }.prefix(Self.maxPeers).flatMap(\.compact))
        }
        let added4 = added.filter { !$0.isIPv6 }.prefix(Self.maxPeers).count
        let added6 = added.filter { $0.isIPv6 }.prefix(Self.maxPeers).count
        let dict: BencodeValue = [
            "added": compact(added, v6: false), "added.f": .bytes([UInt8](repeating: 0, count: added4)),
            "added6": compact(added, v6: true), "added6.f": .bytes([UInt8](repeating: 0, count: added6)),
            "dropped": compact(dropped, v6: false), "dropped6": compact(dropped, v6: true),
        ]
        return dict.encoded()
    }
}

import Bencode
import Kademlia
import PeerNet

/// KRPC over bencode (BEP 5, with BEP 32's `nodes6`/`want`, BEP 42's `ip`, BEP 43's `ro` and
/// BEP 44's `get`/`put`). Decoding is total and bounded: at most ``maxPacket`` bytes, depth 16,
/// 2,000 values; every ID, token and compact entry has its length checked.
public enum KRPCCodec {
    public static let maxPacket = 8_192
    /// Most peers read from one `values` list.
    public static let maxValues = 500
    private static let limits = BencodeDecoder.Limits(
        maxDepth: 16, maxElements: 2_000, maxInputSize: maxPacket)

    // MARK: Decoding

    public static func decode(_ packet: [UInt8]) throws(KRPCError) -> KRPCMessage {
        let value: BencodeValue
        do {
            value = try BencodeDecoder(mode: .lenient, limits: limits).decode(packet)
        } catch {
            throw KRPCError(transactionID: nil, reason: .notBencode("\(error)"))
        }
        guard case .dictionary = value else {
            throw KRPCError(transactionID: nil, reason: .wrongType("message"))
        }
        guard let transaction = value["t"]?.bytes else {
            throw KRPCError(transactionID: nil, reason: .missing("t"))
        }
        guard transaction.count <= 16 else {
            throw KRPCError(transactionID: nil, reason: .badLength("t", transaction.count))
        }
        func fail(_ reason: KRPCError.Reason) -> KRPCError {
            KRPCError(transactionID: transaction, reason: reason)
        }
        guard let kind = value["y"]?.string else { throw fail(.missing("y")) }
        var message: KRPCMessage
        switch kind {
        case "q":
            do throws(KRPCError) {
                guard let method = value["q"]?.string else { throw fail(.missing("q")) }
                guard let arguments = value["a"], case .dictionary = arguments else {
                    throw fail(.missing("a"))
                }
                let sender = try id(arguments, "id", transaction)
                message = KRPCMessage(
                    transactionID: transaction, senderID: sender,
                    body: .query(try query(method, arguments, transaction)))
                message.readOnly = value["ro"]?.integer == 1
            } catch {
                var refused = error
                refused.isQuery = true
                throw refused
            }
        case "r":
            guard let reply = value["r"], case .dictionary = reply else { throw fail(.missing("r")) }
            let sender = try id(reply, "id", transaction)
            message = KRPCMessage(
                transactionID: transaction, senderID: sender,
                body: .response(try response(reply, transaction)))
            if let ip = value["ip"]?.bytes { message.requesterAddress = Endpoint(compact: ip) }
        case "e":
            guard let list = value["e"]?.list, list.count >= 2, let code = list[0].integer,
                let text = list[1].bytes
            else { throw fail(.wrongType("e")) }
            message = KRPCMessage(
                transactionID: transaction, senderID: nil,
                body: .error(
                    code: Int(clamping: code), message: String(decoding: text.prefix(256), as: UTF8.self)))
        default:
            throw fail(.unknownKind(kind))
        }
        message.version = value["v"]?.bytes.map { Array($0.prefix(8)) }
        return message
    }

    private static func id(_ dictionary: BencodeValue, _ key: String, _ transaction: [UInt8])
        throws(KRPCError) -> NodeID
    {
        guard let bytes = dictionary[key]?.bytes else {
            throw KRPCError(transactionID: transaction, reason: .missing(key))
        }
        guard let id = NodeID(bytes: bytes) else {
            throw KRPCError(transactionID: transaction, reason: .badLength(key, bytes.count))
        }
        return id
    }

    private static func bytes(_ dictionary: BencodeValue, _ key: String, max: Int, _ transaction: [UInt8])
        throws(KRPCError) -> [UInt8]
    {
        guard let value = dictionary[key] else {
            throw KRPCError(transactionID: transaction, reason: .missing(key))
        }
        guard let bytes = value.bytes else {
            throw KRPCError(transactionID: transaction, reason: .wrongType(key))
        }
        guard bytes.count <= max else {
            throw KRPCError(transactionID: transaction, reason: .badLength(key, bytes.count))
        }
        return bytes
    }

    private static func query(_ method: String, _ arguments: BencodeValue, _ transaction: [UInt8])
        throws(KRPCError) -> KRPCQuery
    {
        switch method {
        case "ping":
            return .ping
        case "find_node":
            return .findNode(target: try id(arguments, "target", transaction))
        case "get_peers":
            return .getPeers(infoHash: try id(arguments, "info_hash", transaction))
        case "announce_peer":
            let infoHash = try id(arguments, "info_hash", transaction)
            let token = try bytes(arguments, "token", max: 64, transaction)
            let implied = arguments["implied_port"]?.integer ?? 0 != 0
            let port = arguments["port"]?.integer ?? 0
            guard implied || (1...65_535).contains(port) else {
                throw KRPCError(transactionID: transaction, reason: .wrongType("port"))
            }
            return .announcePeer(
                infoHash: infoHash, port: UInt16(clamping: port), token: token, impliedPort: implied)
        case "get":
            return .get(target: try id(arguments, "target", transaction), seq: arguments["seq"]?.integer)
        case "put":
            guard let value = arguments["v"] else {
                throw KRPCError(transactionID: transaction, reason: .missing("v"))
            }
            var put = PutRequest(
                token: try bytes(arguments, "token", max: 64, transaction), value: value.encoded())
            if arguments["k"] != nil {
                put.key = try bytes(arguments, "k", max: 32, transaction)
                put.signature = try bytes(arguments, "sig", max: 64, transaction)
                guard put.key?.count == 32, put.signature?.count == 64 else {
                    throw KRPCError(
                        transactionID: transaction, reason: .badLength("k/sig", put.key?.count ?? 0))
                }
                guard let seq = arguments["seq"]?.integer else {
                    throw KRPCError(transactionID: transaction, reason: .missing("seq"))
                }
                put.seq = seq
                if arguments["salt"] != nil { put.salt = try bytes(arguments, "salt", max: 64, transaction) }
                put.cas = arguments["cas"]?.integer
            }
            return .put(put)
        default:
            throw KRPCError(transactionID: transaction, reason: .unknownMethod(method))
        }
    }

    private static func response(_ reply: BencodeValue, _ transaction: [UInt8]) throws(KRPCError)
        -> KRPCResponse
    {
        var response = KRPCResponse()
        if let nodes = reply["nodes"]?.bytes { response.nodes = compactNodes(nodes, ipLength: 4) }
        if let nodes = reply["nodes6"]?.bytes { response.nodes6 = compactNodes(nodes, ipLength: 16) }
        if let values = reply["values"] {
            guard let list = values.list else {
                throw KRPCError(transactionID: transaction, reason: .wrongType("values"))
            }
            guard list.count <= maxValues else {
                throw KRPCError(transactionID: transaction, reason: .tooMany("values", maxValues))
            }
            response.values = list.compactMap { $0.bytes.flatMap(Endpoint.init(compact:)) }
        }
        if reply["token"] != nil { response.token = try bytes(reply, "token", max: 64, transaction) }
        if let value = reply["v"] { response.value = value.encoded() }
        if reply["k"] != nil { response.key = try bytes(reply, "k", max: 32, transaction) }
        if reply["sig"] != nil { response.signature = try bytes(reply, "sig", max: 64, transaction) }
        response.seq = reply["seq"]?.integer
        return response
    }

    /// 26-byte (IPv4) or 38-byte (IPv6) entries; a trailing partial entry is ignored.
    static func compactNodes(_ bytes: [UInt8], ipLength: Int) -> [NodeInfo] {
        let stride = 20 + ipLength + 2
        var result: [NodeInfo] = []
        result.reserveCapacity(bytes.count / stride)
        bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset + stride <= buffer.count {
                let entry = UnsafeBufferPointer(rebasing: buffer[offset..<offset + stride])
                if let id = NodeID(bytes: UnsafeBufferPointer(rebasing: entry[0..<20])),
                    let host = IPAddress(bytes: UnsafeBufferPointer(rebasing: entry[20..<(20 + ipLength)]))
                {
                    let port = UInt16(entry[stride - 2]) << 8 | UInt16(entry[stride - 1])
                    result.append(NodeInfo(id: id, address: Endpoint(ip: host, port: port)))
                }
                offset += stride
            }
        }
        return result
    }

    // MARK: Encoding

    /// The canonical bencoding of `message` (keys sorted).
    public static func encode(_ message: KRPCMessage) -> [UInt8] {
        var top: [[UInt8]: BencodeValue] = [Array("t".utf8): .bytes(message.transactionID)]
        if let version = message.version { top[Array("v".utf8)] = .bytes(version) }
        switch message.body {
        case .query(let query):
            top[Array("y".utf8)] = "q"
            top[Array("q".utf8)] = .string(query.name)
            var arguments: [[UInt8]: BencodeValue] = [:]
            if let sender = message.senderID { arguments[Array("id".utf8)] = .bytes(sender.bytes) }
            switch query {
            case .ping:
                break
            case .findNode(let target):
                arguments[Array("target".utf8)] = .bytes(target.bytes)
            case .getPeers(let infoHash):
                arguments[Array("info_hash".utf8)] = .bytes(infoHash.bytes)
            case .announcePeer(let infoHash, let port, let token, let implied):
                arguments[Array("info_hash".utf8)] = .bytes(infoHash.bytes)
                arguments[Array("port".utf8)] = .integer(Int64(port))
                arguments[Array("token".utf8)] = .bytes(token)
                if implied { arguments[Array("implied_port".utf8)] = .integer(1) }
            case .get(let target, let seq):
                arguments[Array("target".utf8)] = .bytes(target.bytes)
                if let seq { arguments[Array("seq".utf8)] = .integer(seq) }
            case .put(let put):
                arguments[Array("token".utf8)] = .bytes(put.token)
                arguments[Array("v".utf8)] = (try? BencodeDecoder().decode(put.value)) ?? .bytes(put.value)
                if let key = put.key { arguments[Array("k".utf8)] = .bytes(key) }
                if let signature = put.signature { arguments[Array("sig".utf8)] = .bytes(signature) }
                if let seq = put.seq { arguments[Array("seq".utf8)] = .integer(seq) }
                if let salt = put.salt { arguments[Array("salt".utf8)] = .bytes(salt) }
                if let cas = put.cas { arguments[Array("cas".utf8)] = .integer(cas) }
            }
            top[Array("a".utf8)] = .dictionary(arguments)
            if message.readOnly { top[Array("ro".utf8)] = .integer(1) }
        case .response(let response):
            top[Array("y".utf8)] = "r"
            var reply: [[UInt8]: BencodeValue] = [:]
            if let sender = message.senderID { reply[Array("id".utf8)] = .bytes(sender.bytes) }
            if !response.nodes.isEmpty {
                reply[Array("nodes".utf8)] = .bytes(
                    response.nodes.flatMap { $0.id.bytes + $0.address.compact })
            }
            if !response.nodes6.isEmpty {
                reply[Array("nodes6".utf8)] = .bytes(
                    response.nodes6.flatMap { $0.id.bytes + $0.address.compact })
            }
            if !response.values.isEmpty {
                reply[Array("values".utf8)] = .list(response.values.map { .bytes($0.compact) })
            }
            if let token = response.token { reply[Array("token".utf8)] = .bytes(token) }
            if let value = response.value {
                reply[Array("v".utf8)] = (try? BencodeDecoder().decode(value)) ?? .bytes(value)
            }
            if let key = response.key { reply[Array("k".utf8)] = .bytes(key) }
            if let signature = response.signature { reply[Array("sig".utf8)] = .bytes(signature) }
            if let seq = response.seq { reply[Array("seq".utf8)] = .integer(seq) }
            top[Array("r".utf8)] = .dictionary(reply)
            if let address = message.requesterAddress { top[Array("ip".utf8)] = .bytes(address.compact) }
        case .error(let code, let text):
            top[Array("y".utf8)] = "e"
            top[Array("e".utf8)] = .list([.integer(Int64(code)), .string(text)])
        }
        return BencodeValue.dictionary(top).encoded()
    }
}

import PeerNet

/// An inventory vector: what a peer has or wants (BIP 144 adds witness variants).
public struct Inventory: Hashable, Sendable {
    public var type: UInt32
    public var hash: Hash256

    public static let tx: UInt32 = 1
    public static let block: UInt32 = 2
    public static let witnessFlag: UInt32 = 1 << 30

    public init(type: UInt32, hash: Hash256) {
        self.type = type
        self.hash = hash
    }
}

/// A peer's address as `addr` and `version` carry it: IPv6 (IPv4 mapped), port big-endian.
public struct NetworkAddress: Hashable, Sendable {
    public var time: UInt32
    public var services: UInt64
    /// 16 bytes.
    public var ip: [UInt8]
    public var port: UInt16

    public init(time: UInt32 = 0, services: UInt64, ip: [UInt8], port: UInt16) {
        self.time = time
        self.services = services
        self.ip = ip.count == 4 ? [UInt8](repeating: 0, count: 10) + [0xff, 0xff] + ip : ip
        self.port = port
    }

    public var ipv4: [UInt8]? {
        ip.prefix(12).elementsEqual([UInt8](repeating: 0, count: 10) + [0xff, 0xff])
            ? Array(ip.suffix(4)) : nil
    }

    func write(to writer: inout ByteWriter, withTime: Bool) {
        if withTime { writer.littleEndian(time) }
        writer.littleEndian(services)
        writer.append(ip)
        writer.append([UInt8(port >> 8), UInt8(port & 0xff)])
    }

    init(from reader: inout ByteReader, withTime: Bool) throws(BlockchainError) {
        time = withTime ? try reader.littleEndian(UInt32.self, "address time") : 0
        services = try reader.littleEndian(UInt64.self, "services")
        ip = Array(try reader.take(16, "address"))
        let port = try reader.take(2, "port")
        self.port = UInt16(port[port.startIndex]) << 8 | UInt16(port[port.startIndex + 1])
    }
}

/// An address as BIP 155's `addrv2` carries it: any network, its services as a CompactSize.
/// Only IPv4 and IPv6 entries have an ``endpoint``; the others (Tor, I2P, CJDNS) are parsed,
/// checked and otherwise ignored, since this node cannot reach them.
public struct AddressV2: Hashable, Sendable {
    public var time: UInt32
    public var services: UInt64
    public var networkID: UInt8
    public var address: [UInt8]
    public var port: UInt16

    public static let ipv4: UInt8 = 1
    public static let ipv6: UInt8 = 2
    /// Bytes each known network's address has (BIP 155); TORv2 (3) is no longer valid.
    static let lengths: [UInt8: Int] = [1: 4, 2: 16, 4: 32, 5: 32, 6: 16]
    /// Longest address of any network (BIP 155's 512 bytes).
    public static let maxAddressLength = 512

    public init(time: UInt32, services: UInt64, networkID: UInt8, address: [UInt8], port: UInt16) {
        self.time = time
        self.services = services
        self.networkID = networkID
        self.address = address
        self.port = port
    }

    public init(time: UInt32, services: UInt64, endpoint: Endpoint) {
        self.init(
            time: time, services: services, networkID: endpoint.isIPv6 ? Self.ipv6 : Self.ipv4,
            address: endpoint.ip.bytes, port: endpoint.port)
    }

    /// The IP endpoint of an IPv4 or IPv6 entry (an IPv4-mapped IPv6 one reads as IPv4).
    public var endpoint: Endpoint? {
        guard networkID == Self.ipv4 || networkID == Self.ipv6 else { return nil }
        return Endpoint(ip: address, port: port)
    }

    func write(to writer: inout ByteWriter) {
        writer.littleEndian(time)
        writer.compactSize(services)
        writer.append([networkID])
        writer.varBytes(address)
        writer.append([UInt8(port >> 8), UInt8(port & 0xff)])
    }

    init(from reader: inout ByteReader) throws(BlockchainError) {
        time = try reader.littleEndian(UInt32.self, "address time")
        services = try reader.compactSize("services", limit: UInt64.max)
        networkID = try reader.uint8("network id")
        let start = reader.offset
        address = try reader.varBytes("address", limit: Self.maxAddressLength)
        if networkID == 3 { throw .invalid("a TORv2 address (no longer valid, BIP 155)", offset: start) }
        if let length = Self.lengths[networkID], address.count != length {
            throw .invalid("an address of network \(networkID) with \(address.count) bytes", offset: start)
        }
        let port = try reader.take(2, "port")
        self.port = UInt16(port[port.startIndex]) << 8 | UInt16(port[port.startIndex + 1])
    }
}

extension NetworkAddress {
    /// The endpoint this address names (IPv4-mapped read as IPv4).
    public var endpoint: Endpoint? { Endpoint(ip: ip, port: port) }
}

/// The `version` handshake message.
public struct VersionMessage: Hashable, Sendable {
    public var version: Int32
    public var services: UInt64
    public var timestamp: Int64
    public var receiver: NetworkAddress
    public var sender: NetworkAddress
    public var nonce: UInt64
    public var userAgent: String
    public var startHeight: Int32
    public var relay: Bool

    public init(
        version: Int32 = 70016, services: UInt64, timestamp: Int64, receiver: NetworkAddress,
        sender: NetworkAddress,
        nonce: UInt64, userAgent: String, startHeight: Int32, relay: Bool = true
    ) {
        self.version = version
        self.services = services
        self.timestamp = timestamp
        self.receiver = receiver
        self.sender = sender
        self.nonce = nonce
        self.userAgent = userAgent
        self.startHeight = startHeight
        self.relay = relay
    }
}

/// A Bitcoin P2P message (the subset this node speaks; others are kept as unknown).
public enum P2PMessage: Hashable, Sendable {
    case version(VersionMessage)
    case verack
    case ping(UInt64)
    case pong(UInt64)
    case addr([NetworkAddress])
    /// BIP 155: addresses of any network; `sendaddrv2` (between version and verack) asks for them.
    case addrv2([AddressV2])
    case sendaddrv2
    case getaddr
    case inv([Inventory])
    case getdata([Inventory])
    case notfound([Inventory])
    case tx(Transaction)
    case block(Block)
    case getheaders(version: UInt32, locator: [Hash256], stop: Hash256)
    case headers([BlockHeader])
    case sendheaders
    case mempool
    case unknown(command: String, payload: [UInt8])

    public var command: String {
        switch self {
        case .version: return "version"
        case .verack: return "verack"
        case .ping: return "ping"
        case .pong: return "pong"
        case .addr: return "addr"
        case .addrv2: return "addrv2"
        case .sendaddrv2: return "sendaddrv2"
        case .getaddr: return "getaddr"
        case .inv: return "inv"
        case .getdata: return "getdata"
        case .notfound: return "notfound"
        case .tx: return "tx"
        case .block: return "block"
        case .getheaders: return "getheaders"
        case .headers: return "headers"
        case .sendheaders: return "sendheaders"
        case .mempool: return "mempool"
        case .unknown(let command, _): return command
        }
    }
}

/// Bitcoin's message framing: 4 magic bytes, a 12-byte NUL-padded command, payload length
/// (little-endian), the first 4 bytes of the payload's double SHA-256, then the payload. Sans
/// I/O: ``decode(_:magic:)`` takes what has arrived and returns a message once a whole one has.
public enum P2PCodec {
    public static let headerSize = 24
    /// Largest payload accepted (a block of the weight limit, with room).
    public static let maxPayload = 4_000_000 + 1_024
    /// Most entries in inv/getdata/notfound (Core's MAX_INV_SZ), addr (1,000), headers (2,000).
    public static let maxInventory = 50_000
    public static let maxAddresses = 1_000
    public static let maxHeaders = 2_000
    public static let maxLocator = 101

    public static func encode(_ message: P2PMessage, magic: [UInt8]) -> [UInt8] {
        let body = payload(message)
        var out = magic
        let name = Array(message.command.utf8.prefix(12))
        out += name + [UInt8](repeating: 0, count: 12 - name.count)
        var writer = ByteWriter()
        writer.littleEndian(UInt32(body.count))
        out += writer.bytes
        out += Hash256.doubleSHA256(body).bytes.prefix(4)
        return out + body
    }

    public static func payload(_ message: P2PMessage) -> [UInt8] {
        var writer = ByteWriter()
        switch message {
        case .version(let v):
            writer.littleEndian(v.version)
            writer.littleEndian(v.services)
            writer.littleEndian(v.timestamp)
            v.receiver.write(to: &writer, withTime: false)
            v.sender.write(to: &writer, withTime: false)
            writer.littleEndian(v.nonce)
            writer.varBytes(Array(v.userAgent.utf8))
            writer.littleEndian(v.startHeight)
            writer.append([v.relay ? 1 : 0])
        case .verack, .getaddr, .sendheaders, .mempool, .sendaddrv2: break
        case .addrv2(let addresses):
            writer.compactSize(UInt64(addresses.count))
            for address in addresses { address.write(to: &writer) }
        case .ping(let nonce), .pong(let nonce): writer.littleEndian(nonce)
        case .addr(let addresses):
            writer.compactSize(UInt64(addresses.count))
            for address in addresses { address.write(to: &writer, withTime: true) }
        case .inv(let items), .getdata(let items), .notfound(let items):
            writer.compactSize(UInt64(items.count))
            for item in items {
                writer.littleEndian(item.type)
                writer.append(item.hash.bytes)
            }
        case .tx(let transaction): transaction.write(to: &writer)
        case .block(let block): writer.append(block.serialized())
        case .getheaders(let version, let locator, let stop):
            writer.littleEndian(version)
            writer.compactSize(UInt64(locator.count))
            for hash in locator { writer.append(hash.bytes) }
            writer.append(stop.bytes)
        case .headers(let headers):
            writer.compactSize(UInt64(headers.count))
            for header in headers {
                header.write(to: &writer)
                writer.compactSize(0)
            }
        case .unknown(_, let payload): writer.append(payload)
        }
        return writer.bytes
    }

    /// Why a frame was refused (the peer is then dropped).
    public enum FrameError: Error, Sendable, Hashable, CustomStringConvertible {
        case badMagic([UInt8])
        case badCommand
        case oversized(Int)
        case badChecksum(String)
        case badPayload(String, BlockchainError)

        public var description: String {
            switch self {
            case .badMagic(let magic): return "wrong network magic \(Hex.encode(magic))"
            case .badCommand: return "command is not NUL-padded ASCII"
            case .oversized(let size): return "payload of \(size) bytes is over the limit"
            case .badChecksum(let command): return "checksum of '\(command)' does not match"
            case .badPayload(let command, let error): return "'\(command)': \(error)"
            }
        }
    }

    /// Checks a 24-byte header (magic, command, length) before any payload byte is buffered
    /// and returns the payload's length.
    public static func payloadLength(header: some Collection<UInt8>, magic: [UInt8]) throws(FrameError) -> Int
    {
        let bytes = Array(header.prefix(headerSize))
        guard bytes.count == headerSize else { return 0 }
        guard bytes[0..<4].elementsEqual(magic) else { throw .badMagic(Array(bytes[0..<4])) }
        let commandBytes = bytes[4..<16]
        let nameBytes = commandBytes.prefix { $0 != 0 }
        guard commandBytes.dropFirst(nameBytes.count).allSatisfy({ $0 == 0 }),
            nameBytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f })
        else { throw .badCommand }
        let length = bytes[16..<20].reversed().reduce(0) { $0 << 8 | Int($1) }
        guard length <= maxPayload else { throw .oversized(length) }
        return length
    }

    /// Decodes the first whole message in `buffer`; nil when more bytes are needed.
    public static func decode(_ buffer: ArraySlice<UInt8>, magic: [UInt8]) throws(FrameError) -> (
        P2PMessage, Int
    )? {
        guard buffer.count >= headerSize else { return nil }
        let start = buffer.startIndex
        guard buffer[start..<start + 4].elementsEqual(magic) else {
            throw .badMagic(Array(buffer[start..<start + 4]))
        }
        let commandBytes = buffer[(start + 4)..<(start + 16)]
        let nameBytes = commandBytes.prefix { $0 != 0 }
        guard commandBytes.dropFirst(nameBytes.count).allSatisfy({ $0 == 0 }),
            nameBytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7f })
        else { throw .badCommand }
        let command = String(decoding: nameBytes, as: UTF8.self)
        let length = buffer[(start + 16)..<(start + 20)].reversed().reduce(0) { $0 << 8 | Int($1) }
        guard length <= maxPayload else { throw .oversized(length) }
        guard buffer.count >= headerSize + length else { return nil }
        let body = Array(buffer[(start + headerSize)..<(start + headerSize + length)])
        guard Hash256.doubleSHA256(body).bytes.prefix(4).elementsEqual(buffer[(start + 20)..<(start + 24)])
        else {
            throw .badChecksum(command)
        }
        do {
            return (try decodePayload(command: command, body), headerSize + length)
        } catch {
            throw .badPayload(command, error)
        }
    }

    static func inventory(_ reader: inout ByteReader) throws(BlockchainError) -> [Inventory] {
        let count = try reader.compactSize("inventory count", limit: UInt64(maxInventory))
        guard count * 36 <= UInt64(reader.remaining) else {
            throw .truncated("inventory", offset: reader.offset)
        }
        var items: [Inventory] = []
        for _ in 0..<count {
            let type = try reader.littleEndian(UInt32.self, "inventory type")
            items.append(Inventory(type: type, hash: try reader.hash("inventory hash")))
        }
        return items
    }

    public static func decodePayload(command: String, _ body: [UInt8]) throws(BlockchainError) -> P2PMessage {
        var reader = ByteReader(body)
        let message: P2PMessage
        switch command {
        case "version":
            let version = try reader.littleEndian(Int32.self, "version")
            let services = try reader.littleEndian(UInt64.self, "services")
            let timestamp = try reader.littleEndian(Int64.self, "timestamp")
            let receiver = try NetworkAddress(from: &reader, withTime: false)
            let sender = try NetworkAddress(from: &reader, withTime: false)
            let nonce = try reader.littleEndian(UInt64.self, "nonce")
            let agent = try reader.varBytes("user agent", limit: 256)
            let height = try reader.littleEndian(Int32.self, "start height")
            let relay = reader.atEnd ? true : try reader.uint8("relay") != 0
            message = .version(
                VersionMessage(
                    version: version, services: services, timestamp: timestamp, receiver: receiver,
                    sender: sender,
                    nonce: nonce, userAgent: String(decoding: agent, as: UTF8.self), startHeight: height,
                    relay: relay))
        case "verack": message = .verack
        case "sendaddrv2": message = .sendaddrv2
        case "addrv2":
            let count = try reader.compactSize("address count", limit: UInt64(maxAddresses))
            var addresses: [AddressV2] = []
            for _ in 0..<count { addresses.append(try AddressV2(from: &reader)) }
            message = .addrv2(addresses)
        case "getaddr": message = .getaddr
        case "sendheaders": message = .sendheaders
        case "mempool": message = .mempool
        case "ping": message = .ping(try reader.littleEndian(UInt64.self, "nonce"))
        case "pong": message = .pong(try reader.littleEndian(UInt64.self, "nonce"))
        case "addr":
            let count = try reader.compactSize("address count", limit: UInt64(maxAddresses))
            var addresses: [NetworkAddress] = []
            for _ in 0..<count { addresses.append(try NetworkAddress(from: &reader, withTime: true)) }
            message = .addr(addresses)
        case "inv": message = .inv(try inventory(&reader))
        case "getdata": message = .getdata(try inventory(&reader))
        case "notfound": message = .notfound(try inventory(&reader))
        case "tx": message = .tx(try Transaction(from: &reader))
        case "block": return .block(try Block(bytes: body))
        case "getheaders":
            let version = try reader.littleEndian(UInt32.self, "version")
            let count = try reader.compactSize("locator count", limit: UInt64(maxLocator))
            var locator: [Hash256] = []
            for _ in 0..<count { locator.append(try reader.hash("locator hash")) }
            message = .getheaders(version: version, locator: locator, stop: try reader.hash("stop hash"))
        case "headers":
            let count = try reader.compactSize("header count", limit: UInt64(maxHeaders))
            var headers: [BlockHeader] = []
            for _ in 0..<count {
                headers.append(try BlockHeader(from: &reader))
                guard try reader.compactSize("transaction count") == 0 else {
                    throw .invalid("a header with transactions", offset: reader.offset)
                }
            }
            message = .headers(headers)
        default:
            return .unknown(command: command, payload: body)
        }
        guard reader.atEnd else { throw .trailingBytes(reader.remaining, offset: reader.offset) }
        return message
    }
}

/// A 16-byte GUID: a descriptor's ID (the key of duplicate suppression and of the reverse path
/// replies take) or a servent's ID. Gnutella 0.6 marks modern servents' GUIDs with byte 8 =
/// 0xFF and byte 15 = 0x00.
public struct GUID: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(_ bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// A new GUID from `random` (16 bytes or more), marked as 0.6 servents mark theirs.
    public init(random: [UInt8]) {
        var bytes = Array(random.prefix(16))
        bytes += [UInt8](repeating: 0, count: 16 - bytes.count)
        bytes[8] = 0xFF
        bytes[15] = 0x00
        self.bytes = bytes
    }

    /// Parses 32 hex digits (as GIV lines and logs write a GUID).
    public init?(hexPrefix text: some StringProtocol) {
        let digits = Array(text.utf8)
        guard digits.count == 32 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: 32, by: 2) {
            guard let byte = UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16)
            else {
                return nil
            }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    public var description: String { bytes.map { String($0, radix: 16).leftPadded(2) }.joined() }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}

/// The payload descriptor byte of the 23-byte header.
public enum PayloadType: UInt8, Sendable, CaseIterable {
    case ping = 0x00
    case pong = 0x01
    case bye = 0x02
    /// The Query Routing Protocol's route table update (RESET or PATCH).
    case routeTableUpdate = 0x30
    case vendor = 0x31
    case standardVendor = 0x32
    case push = 0x40
    case query = 0x80
    case queryHit = 0x81
}

/// The 23-byte descriptor header (Gnutella 0.6, section 2.2): GUID, payload type, TTL, hops and
/// the payload's length, little-endian.
public struct DescriptorHeader: Sendable, Equatable {
    public static let size = 23
    /// The largest payload accepted (64 KiB): the length is checked before anything is buffered.
    public static let maxPayload = 64 * 1024
    /// TTL + hops may not exceed this (0.6 servents drop or trim anything beyond).
    public static let maxTTL: UInt8 = 7

    public var guid: GUID
    /// The raw payload type byte (unknown types are kept so they can be skipped or counted).
    public var type: UInt8
    public var ttl: UInt8
    public var hops: UInt8
    public var payloadLength: Int

    public init(guid: GUID, type: PayloadType, ttl: UInt8, hops: UInt8 = 0, payloadLength: Int = 0) {
        self.init(guid: guid, rawType: type.rawValue, ttl: ttl, hops: hops, payloadLength: payloadLength)
    }

    public init(guid: GUID, rawType: UInt8, ttl: UInt8, hops: UInt8, payloadLength: Int) {
        self.guid = guid
        self.type = rawType
        self.ttl = ttl
        self.hops = hops
        self.payloadLength = payloadLength
    }

    public var payloadType: PayloadType? { PayloadType(rawValue: type) }

    /// Parses 23 bytes; a payload length over `maxPayload` is refused here, before the payload.
    public init(parsing bytes: [UInt8], maxPayload: Int = DescriptorHeader.maxPayload) throws(GnutellaError) {
        var reader = PayloadReader(bytes)
        guard let guid = GUID(try reader.take(16, "descriptor GUID")) else {
            throw .truncated(field: "descriptor GUID", offset: 0)
        }
        let type = try reader.byte("payload type")
        let ttl = try reader.byte("TTL")
        let hops = try reader.byte("hops")
        let length = Int(try reader.uint32LE("payload length"))
        guard length <= maxPayload else {
            throw .tooLarge(field: "descriptor payload", size: length, limit: maxPayload)
        }
        self.init(guid: guid, rawType: type, ttl: ttl, hops: hops, payloadLength: length)
    }

    public func encoded() -> [UInt8] {
        var out = guid.bytes
        out += [type, ttl, hops]
        out.appendLE(UInt32(payloadLength))
        return out
    }
}

/// A whole descriptor: header and typed payload. Unknown payload types are kept raw.
public struct Descriptor: Sendable, Equatable {
    public var header: DescriptorHeader
    public var payload: Payload

    public enum Payload: Sendable, Equatable {
        case ping(Ping)
        case pong(Pong)
        case bye(Bye)
        case routeTableUpdate(RouteTableUpdate)
        case push(Push)
        case query(Query)
        case queryHit(QueryHit)
        /// A vendor message or an unknown type: its bytes, unparsed.
        case other([UInt8])
    }

    public init(header: DescriptorHeader, payload: Payload) {
        self.header = header
        self.payload = payload
    }

    /// A descriptor of `payload`'s type with `guid`, `ttl` and `hops`; its length is filled in.
    public init(guid: GUID, ttl: UInt8, hops: UInt8 = 0, _ payload: Payload) {
        let type: UInt8 =
            switch payload {
            case .ping: PayloadType.ping.rawValue
            case .pong: PayloadType.pong.rawValue
            case .bye: PayloadType.bye.rawValue
            case .routeTableUpdate: PayloadType.routeTableUpdate.rawValue
            case .push: PayloadType.push.rawValue
            case .query: PayloadType.query.rawValue
            case .queryHit: PayloadType.queryHit.rawValue
            case .other: PayloadType.vendor.rawValue
            }
        self.header = DescriptorHeader(guid: guid, rawType: type, ttl: ttl, hops: hops, payloadLength: 0)
        self.payload = payload
    }

    /// Parses a payload of `header`'s type (the bytes after the header, `header.payloadLength`
    /// of them).
    public init(header: DescriptorHeader, payload bytes: [UInt8]) throws(GnutellaError) {
        guard bytes.count == header.payloadLength else {
            throw .invalid(
                field: "payload", offset: DescriptorHeader.size,
                reason: "\(bytes.count) bytes where the header says \(header.payloadLength)")
        }
        self.header = header
        switch header.payloadType {
        case .ping: payload = .ping(try Ping(parsing: bytes))
        case .pong: payload = .pong(try Pong(parsing: bytes))
        case .bye: payload = .bye(try Bye(parsing: bytes))
        case .routeTableUpdate: payload = .routeTableUpdate(try RouteTableUpdate(parsing: bytes))
        case .push: payload = .push(try Push(parsing: bytes))
        case .query: payload = .query(try Query(parsing: bytes))
        case .queryHit: payload = .queryHit(try QueryHit(parsing: bytes))
        case .vendor, .standardVendor, nil: payload = .other(bytes)
        }
    }

    /// Parses one whole descriptor (header and payload, nothing after).
    public init(parsing bytes: [UInt8]) throws(GnutellaError) {
        guard bytes.count >= DescriptorHeader.size else {
            throw .truncated(field: "descriptor header", offset: bytes.count)
        }
        let header = try DescriptorHeader(parsing: Array(bytes[0..<DescriptorHeader.size]))
        try self.init(header: header, payload: Array(bytes[DescriptorHeader.size...]))
    }

    public func payloadBytes() -> [UInt8] {
        switch payload {
        case .ping(let p): p.encoded()
        case .pong(let p): p.encoded()
        case .bye(let p): p.encoded()
        case .routeTableUpdate(let p): p.encoded()
        case .push(let p): p.encoded()
        case .query(let p): p.encoded()
        case .queryHit(let p): p.encoded()
        case .other(let bytes): bytes
        }
    }

    /// Header and payload, the header's length set to the payload's.
    public func encoded() -> [UInt8] {
        let body = payloadBytes()
        var header = header
        header.payloadLength = body.count
        return header.encoded() + body
    }
}

/// Splits a byte stream into descriptors: the header is read first and a length over the
/// bound is an error before any of the payload is buffered.
public struct DescriptorFramer: Sendable {
    private var buffer: [UInt8] = []
    public let maxPayload: Int

    public init(maxPayload: Int = DescriptorHeader.maxPayload) { self.maxPayload = maxPayload }

    /// Bytes waiting for the rest of their descriptor.
    public var buffered: Int { buffer.count }

    public mutating func append(_ bytes: [UInt8]) { buffer += bytes }

    /// The next whole descriptor, nil until one has arrived.
    public mutating func next() throws(GnutellaError) -> Descriptor? {
        guard buffer.count >= DescriptorHeader.size else { return nil }
        let header = try DescriptorHeader(
            parsing: Array(buffer[0..<DescriptorHeader.size]), maxPayload: maxPayload)
        let total = DescriptorHeader.size + header.payloadLength
        guard buffer.count >= total else { return nil }
        let payload = Array(buffer[DescriptorHeader.size..<total])
        buffer.removeFirst(total)
        return try Descriptor(header: header, payload: payload)
    }
}

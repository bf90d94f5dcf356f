import NIOCore
import PeerNet

/// What was wrong with bytes from an eDonkey peer or server, and where.
public enum EDonkeyError: Error, Sendable, Equatable, CustomStringConvertible {
    case truncated(field: String, offset: Int)
    case invalid(field: String, offset: Int, reason: String)
    case tooLarge(field: String, size: Int, limit: Int)
    case compression(String)

    public var description: String {
        switch self {
        case .truncated(let field, let offset): "truncated \(field) at byte \(offset)"
        case .invalid(let field, let offset, let reason): "invalid \(field) at byte \(offset): \(reason)"
        case .tooLarge(let field, let size, let limit): "\(field) of \(size) is over the limit of \(limit)"
        case .compression(let reason): "zlib: \(reason)"
        }
    }
}

/// Reads the little-endian fields eDonkey packets are made of, naming what is missing.
public struct EDonkeyReader {
    public let bytes: [UInt8]
    public private(set) var offset: Int

    public init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    public var remaining: Int { bytes.count - offset }
    public var isAtEnd: Bool { offset >= bytes.count }

    public mutating func take(_ count: Int, _ field: String) throws(EDonkeyError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw .truncated(field: field, offset: offset) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    public mutating func u8(_ field: String) throws(EDonkeyError) -> UInt8 { try take(1, field)[0] }

    public mutating func u16(_ field: String) throws(EDonkeyError) -> UInt16 {
        let b = try take(2, field)
        return UInt16(b[0]) | UInt16(b[1]) << 8
    }

    public mutating func u32(_ field: String) throws(EDonkeyError) -> UInt32 {
        let b = try take(4, field)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    public mutating func u64(_ field: String) throws(EDonkeyError) -> UInt64 {
        UInt64(try u32(field)) | UInt64(try u32(field)) << 32
    }

    public mutating func hash(_ field: String) throws(EDonkeyError) -> [UInt8] { try take(16, field) }

    /// A u16-length-prefixed string (UTF-8; invalid bytes replaced).
    public mutating func string(_ field: String) throws(EDonkeyError) -> String {
        let length = Int(try u16("\(field) length"))
        return String(decoding: try take(length, field), as: UTF8.self)
    }

    public mutating func rest() -> [UInt8] {
        defer { offset = bytes.count }
        return Array(bytes[offset...])
    }
}

/// Appends eDonkey's little-endian fields.
public struct EDonkeyWriter {
    public private(set) var bytes: [UInt8] = []
    public init() {}
    public mutating func u8(_ v: UInt8) { bytes.append(v) }
    public mutating func u16(_ v: UInt16) {
        bytes += [UInt8(truncatingIfNeeded: v), UInt8(truncatingIfNeeded: v >> 8)]
    }
    public mutating func u32(_ v: UInt32) {
        for s in stride(from: 0, to: 32, by: 8) { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(s))) }
    }
    public mutating func u64(_ v: UInt64) {
        u32(UInt32(truncatingIfNeeded: v))
        u32(UInt32(truncatingIfNeeded: v >> 32))
    }
    public mutating func raw(_ b: [UInt8]) { bytes += b }
    public mutating func string(_ s: String) {
        let utf8 = Array(s.utf8.prefix(Int(UInt16.max)))
        u16(UInt16(utf8.count))
        bytes += utf8
    }
}

/// One packet: the protocol byte (0xE3 eDonkey, 0xC5 eMule's extensions; 0xD4 marks a
/// zlib-packed one, unpacked here), a u32 length covering opcode and payload, the opcode.
public struct EDonkeyPacket: Sendable, Equatable {
    public enum ProtocolByte: UInt8, Sendable {
        case edonkey = 0xE3
        case emule = 0xC5
        case packed = 0xD4
    }

    /// The protocol after unpacking (a 0xD4 packet's payload is inflated; its protocol becomes
    /// `.emule` for client traffic, `.edonkey` for server traffic, as the caller says).
    public var proto: ProtocolByte
    public var opcode: UInt8
    public var payload: [UInt8]

    public init(_ proto: ProtocolByte = .edonkey, opcode: UInt8, payload: [UInt8]) {
        self.proto = proto
        self.opcode = opcode
        self.payload = payload
    }

    /// Header and payload; `pack` deflates the payload (protocol 0xD4) when that makes it smaller.
    public func encoded(pack: Bool = false) -> [UInt8] {
        var body = payload
        var protocolByte = proto.rawValue
        if pack, let packed = Self.deflate(payload), packed.count < payload.count {
            body = packed
            protocolByte = ProtocolByte.packed.rawValue
        }
        var writer = EDonkeyWriter()
        writer.u8(protocolByte)
        writer.u32(UInt32(body.count + 1))
        writer.u8(opcode)
        writer.raw(body)
        return writer.bytes
    }

    static func deflate(_ bytes: [UInt8]) -> [UInt8]? {
        Zlib.compress(bytes, level: Zlib.bestCompression)
    }

    /// Inflates at most `limit` bytes of zlib data.
    static func inflate(_ bytes: [UInt8], limit: Int) throws(EDonkeyError) -> [UInt8] {
        do {
            return try Zlib.decompress(bytes, limit: limit)
        } catch {
            switch error {
            case .tooLarge(let size, let limit):
                throw .tooLarge(field: "unpacked payload", size: size, limit: limit)
            case .truncated: throw .compression("the stream ends early")
            default: throw .compression("bad data (\(error))")
            }
        }
    }
}

/// Splits a TCP stream into packets: the 6-byte header first, a length over `maxSize` is an
/// error before any of the payload is buffered; packed payloads inflated within `maxUnpacked`.
public struct EDonkeyFramer: Sendable {
    private var buffer: [UInt8] = []
    public let maxSize: Int
    public let maxUnpacked: Int
    /// The protocol a packed packet unpacks to.
    public let unpackedProtocol: EDonkeyPacket.ProtocolByte

    public init(
        maxSize: Int = 512 * 1024, maxUnpacked: Int = 2 << 20,
        unpackedProtocol: EDonkeyPacket.ProtocolByte = .edonkey
    ) {
        self.maxSize = maxSize
        self.maxUnpacked = maxUnpacked
        self.unpackedProtocol = unpackedProtocol
    }

    public var buffered: Int { buffer.count }

    public mutating func append(_ bytes: [UInt8]) { buffer += bytes }

    public mutating func next() throws(EDonkeyError) -> EDonkeyPacket? {
        guard buffer.count >= 6 else { return nil }
        guard let proto = EDonkeyPacket.ProtocolByte(rawValue: buffer[0]) else {
            throw .invalid(field: "protocol byte", offset: 0, reason: "0x\(String(buffer[0], radix: 16))")
        }
        let length = Int(
            UInt32(buffer[1]) | UInt32(buffer[2]) << 8 | UInt32(buffer[3]) << 16 | UInt32(buffer[4]) << 24)
        guard length >= 1 else { throw .invalid(field: "packet length", offset: 1, reason: "zero") }
        guard length <= maxSize else { throw .tooLarge(field: "packet", size: length, limit: maxSize) }
        guard buffer.count >= 5 + length else { return nil }
        let opcode = buffer[5]
        var payload = Array(buffer[6..<(5 + length)])
        buffer.removeFirst(5 + length)
        var unpacked = proto
        if proto == .packed {
            payload = try EDonkeyPacket.inflate(payload, limit: maxUnpacked)
            unpacked = unpackedProtocol
        }
        return EDonkeyPacket(unpacked, opcode: opcode, payload: payload)
    }
}

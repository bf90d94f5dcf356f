/// What was wrong with bytes from a Gnutella peer, and where: every parser in this module
/// answers any input with a value or one of these, never a trap.
public enum GnutellaError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The input ended inside `field` (at byte `offset` of what was being parsed).
    case truncated(field: String, offset: Int)
    /// `field` at `offset` holds a value the protocol does not allow.
    case invalid(field: String, offset: Int, reason: String)
    /// A length or count over this module's bound, refused before anything was allocated.
    case tooLarge(field: String, size: Int, limit: Int)
    /// Deflate data that zlib could not inflate (or that inflated past its bound).
    case compression(String)
    /// A handshake the other side refused, or that broke the 0.6 exchange.
    case handshake(String)

    public var description: String {
        switch self {
        case .truncated(let field, let offset): "truncated \(field) at byte \(offset)"
        case .invalid(let field, let offset, let reason): "invalid \(field) at byte \(offset): \(reason)"
        case .tooLarge(let field, let size, let limit):
            "\(field) of \(size) bytes is over the limit of \(limit)"
        case .compression(let reason): "deflate: \(reason)"
        case .handshake(let reason): "handshake: \(reason)"
        }
    }
}

/// Reads little-endian integers and byte runs from a payload, naming the field and offset of
/// anything missing.
struct PayloadReader {
    let bytes: [UInt8]
    private(set) var offset: Int
    let end: Int

    init(_ bytes: [UInt8], from start: Int = 0, to end: Int? = nil) {
        self.bytes = bytes
        self.offset = start
        self.end = end ?? bytes.count
    }

    var remaining: Int { end - offset }
    var isAtEnd: Bool { offset >= end }

    mutating func byte(_ field: String) throws(GnutellaError) -> UInt8 {
        guard offset < end else { throw .truncated(field: field, offset: offset) }
        defer { offset += 1 }
        return bytes[offset]
    }

    mutating func take(_ count: Int, _ field: String) throws(GnutellaError) -> [UInt8] {
        guard count >= 0, count <= remaining else { throw .truncated(field: field, offset: offset) }
        defer { offset += count }
        return Array(bytes[offset..<offset + count])
    }

    mutating func uint16LE(_ field: String) throws(GnutellaError) -> UInt16 {
        let b = try take(2, field)
        return UInt16(b[0]) | UInt16(b[1]) << 8
    }

    mutating func uint32LE(_ field: String) throws(GnutellaError) -> UInt32 {
        let b = try take(4, field)
        return UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
    }

    /// Bytes up to a NUL (consumed, not returned); `field` names it if there is none.
    mutating func nulTerminated(_ field: String) throws(GnutellaError) -> [UInt8] {
        guard let nul = bytes[offset..<end].firstIndex(of: 0) else {
            throw .truncated(field: "\(field) (no NUL)", offset: offset)
        }
        defer { offset = nul + 1 }
        return Array(bytes[offset..<nul])
    }

    /// Everything left.
    mutating func rest() -> [UInt8] {
        defer { offset = end }
        return Array(bytes[offset..<end])
    }
}

extension Array where Element == UInt8 {
    mutating func appendLE(_ value: UInt16) {
        append(UInt8(truncatingIfNeeded: value))
        append(UInt8(truncatingIfNeeded: value >> 8))
    }

    mutating func appendLE(_ value: UInt32) {
        for shift in stride(from: 0, to: 32, by: 8) {
            append(UInt8(truncatingIfNeeded: value >> UInt32(shift)))
        }
    }
}

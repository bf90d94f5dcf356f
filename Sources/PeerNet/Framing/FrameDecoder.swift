import NIOCore

/// How a protocol frames its messages on a byte stream: a fixed-size header that tells the
/// length of the body that follows. The header is checked (magic, limits) before any body byte
/// is buffered, so a peer cannot make a connection hold more than `headerLength + limit` bytes.
public protocol FrameFormat {
    /// Bytes of header needed before the body's length is known.
    var headerLength: Int { get }
    /// The body's length from a whole header, or an error for a bad header or a length over the
    /// protocol's limit (the connection is then closed).
    mutating func bodyLength(header: ByteBuffer) throws -> Int
}

/// Cuts a byte stream into whole frames (header and body, as one `ByteBuffer` slice of what was
/// read: no copy) for any ``FrameFormat``; use it in NIO's `ByteToMessageHandler`.
public struct FrameDecoder<Format: FrameFormat>: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public var format: Format
    private var pendingBody: Int?

    public init(_ format: Format) {
        self.format = format
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        let headerLength = format.headerLength
        let body: Int
        if let pendingBody {
            body = pendingBody
        } else {
            guard buffer.readableBytes >= headerLength,
                let header = buffer.getSlice(at: buffer.readerIndex, length: headerLength)
            else { return nil }
            body = try format.bodyLength(header: header)
            pendingBody = body
        }
        guard buffer.readableBytes >= headerLength + body else { return nil }
        pendingBody = nil
        return buffer.readSlice(length: headerLength + body)
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}

/// A 4-byte big-endian length, then that many bytes (BitTorrent's peer wire after the handshake,
/// BEP 3), optionally after one fixed-size preamble (the 68-byte handshake) that is its own frame.
public struct LengthPrefixedFormat: FrameFormat {
    /// The largest body accepted.
    public var maxFrameLength: Int
    private var preamble: Int?
    /// Bytes of the big-endian length: 4 (BitTorrent's peer wire) or 2 (libp2p's Noise frames).
    public let prefixLength: Int

    public init(maxFrameLength: Int, preamble: Int? = nil, prefixLength: Int = 4) {
        precondition(prefixLength == 2 || prefixLength == 4, "a length prefix of 2 or 4 bytes")
        self.maxFrameLength = maxFrameLength
        self.preamble = preamble
        self.prefixLength = prefixLength
    }

    public var headerLength: Int { preamble ?? prefixLength }

    public mutating func bodyLength(header: ByteBuffer) throws -> Int {
        if preamble != nil {
            preamble = nil
            return 0
        }
        let length =
            prefixLength == 2
            ? Int(header.getInteger(at: header.readerIndex, as: UInt16.self) ?? 0)
            : Int(header.getInteger(at: header.readerIndex, as: UInt32.self) ?? 0)
        guard length <= maxFrameLength else {
            throw FrameError.tooLong(length: length, limit: maxFrameLength)
        }
        return length
    }
}

/// Why a stream could not be cut into frames.
public enum FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    /// A frame announced more bytes than the protocol allows.
    case tooLong(length: Int, limit: Int)
    /// The header is not the protocol's (wrong magic, bad command).
    case badHeader(String)

    public var description: String {
        switch self {
        case .tooLong(let length, let limit): return "frame of \(length) bytes is over the limit of \(limit)"
        case .badHeader(let reason): return "bad frame header: \(reason)"
        }
    }
}

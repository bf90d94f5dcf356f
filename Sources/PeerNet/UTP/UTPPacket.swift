import NIOCore

/// One uTP packet (BEP 29): a 20-byte header, a chain of extensions, the payload.
///
/// ```
/// type:4 ver:4 | extension:8 | connection_id:16
/// timestamp_microseconds:32
/// timestamp_difference_microseconds:32
/// wnd_size:32
/// seq_nr:16 | ack_nr:16
/// ```
/// Extension 1 is the selective ack: a bitmask (BEP 29: a multiple of 4 bytes; libtorrent sends
/// any length) whose bit `i` (least
/// significant bit of each byte first) says packet `ack_nr + 2 + i` has arrived. Other extensions
/// are skipped.
public struct UTPPacket: Sendable, Equatable {
    public enum Kind: UInt8, Sendable {
        case data = 0
        case fin = 1
        case state = 2
        case reset = 3
        case syn = 4
    }

    public var kind: Kind
    public var connectionID: UInt16
    /// The sender's clock when it sent this, in microseconds (the low 32 bits).
    public var timestamp: UInt32
    /// The sender's last one-way delay sample: its clock on receipt minus our timestamp.
    public var timestampDifference: UInt32
    /// Bytes the sender can still take in (its receive window).
    public var windowSize: UInt32
    public var sequenceNumber: UInt16
    public var ackNumber: UInt16
    /// The selective-ack bitmask (extension 1), if present.
    public var selectiveAck: [UInt8]?
    public var payload: ByteBuffer

    /// Bytes of the fixed header.
    public static let headerLength = 20
    /// The protocol version in the low nibble of the first byte.
    public static let version: UInt8 = 1
    /// Most bytes of selective-ack bitmask read or written (256 packets beyond the ack).
    public static let maxSelectiveAck = 32
    /// Most extensions in one packet.
    static let maxExtensions = 8

    public init(
        kind: Kind, connectionID: UInt16, timestamp: UInt32 = 0, timestampDifference: UInt32 = 0,
        windowSize: UInt32 = 0, sequenceNumber: UInt16, ackNumber: UInt16, selectiveAck: [UInt8]? = nil,
        payload: ByteBuffer = ByteBuffer()
    ) {
        self.kind = kind
        self.connectionID = connectionID
        self.timestamp = timestamp
        self.timestampDifference = timestampDifference
        self.windowSize = windowSize
        self.sequenceNumber = sequenceNumber
        self.ackNumber = ackNumber
        self.selectiveAck = selectiveAck
        self.payload = payload
    }

    /// Whether a datagram may be uTP: long enough, version 1, a known type. A bencoded DHT
    /// message starts with `d` (0x64) and never passes (how libtorrent shares one UDP port).
    public static func isUTP(_ datagram: ByteBuffer) -> Bool {
        guard datagram.readableBytes >= headerLength,
            let first = datagram.getInteger(at: datagram.readerIndex, as: UInt8.self)
        else { return false }
        return first & 0x0F == version && first >> 4 <= Kind.syn.rawValue
    }

    /// Parses one datagram. Total: any bytes give a packet or a ``UTPError`` naming the field.
    /// The payload is a slice of `datagram`, not a copy.
    public init(decoding datagram: ByteBuffer) throws(UTPError) {
        var buffer = datagram
        guard buffer.readableBytes >= Self.headerLength else {
            throw .truncated(field: "header", offset: 0)
        }
        let first = buffer.readInteger(as: UInt8.self) ?? 0
        guard first & 0x0F == Self.version else { throw .badVersion(first & 0x0F) }
        guard let kind = Kind(rawValue: first >> 4) else { throw .badType(first >> 4) }
        var nextExtension = buffer.readInteger(as: UInt8.self) ?? 0
        self.kind = kind
        connectionID = buffer.readInteger(as: UInt16.self) ?? 0
        timestamp = buffer.readInteger(as: UInt32.self) ?? 0
        timestampDifference = buffer.readInteger(as: UInt32.self) ?? 0
        windowSize = buffer.readInteger(as: UInt32.self) ?? 0
        sequenceNumber = buffer.readInteger(as: UInt16.self) ?? 0
        ackNumber = buffer.readInteger(as: UInt16.self) ?? 0
        selectiveAck = nil
        var extensions = 0
        while nextExtension != 0 {
            let offset = buffer.readerIndex - datagram.readerIndex
            extensions += 1
            guard extensions <= Self.maxExtensions else {
                throw .tooManyExtensions(limit: Self.maxExtensions)
            }
            guard let following = buffer.readInteger(as: UInt8.self),
                let length = buffer.readInteger(as: UInt8.self),
                let body = buffer.readSlice(length: Int(length))
            else { throw .truncated(field: "extension \(nextExtension)", offset: offset) }
            // BEP 29 asks for a multiple of 4 bytes, but libtorrent sends any length (94 bytes
            // seen here): take whatever comes, as libtorrent does.
            if nextExtension == 1, length > 0 {
                if selectiveAck == nil {
                    selectiveAck = Array(body.readableBytesView.prefix(Self.maxSelectiveAck))
                }
            }
            nextExtension = following
        }
        payload = buffer
    }

    /// Bytes of the datagram ``write(into:)`` writes.
    public var encodedLength: Int {
        Self.headerLength + (selectiveAck.map { 2 + min($0.count, Self.maxSelectiveAck) } ?? 0)
            + payload.readableBytes
    }

    /// The datagram for this packet.
    public func encoded(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(
            capacity: Self.headerLength + 2 + (selectiveAck?.count ?? 0) + payload.readableBytes)
        write(into: &buffer)
        return buffer
    }

    /// Appends this packet's bytes to `buffer`.
    public func write(into buffer: inout ByteBuffer) {
        let sack = selectiveAck.map { Array($0.prefix(Self.maxSelectiveAck)) }
        buffer.writeInteger(kind.rawValue << 4 | Self.version)
        buffer.writeInteger(UInt8(sack == nil ? 0 : 1))
        buffer.writeInteger(connectionID)
        buffer.writeInteger(timestamp)
        buffer.writeInteger(timestampDifference)
        buffer.writeInteger(windowSize)
        buffer.writeInteger(sequenceNumber)
        buffer.writeInteger(ackNumber)
        if let sack {
            buffer.writeInteger(UInt8(0))
            buffer.writeInteger(UInt8(sack.count))
            buffer.writeBytes(sack)
        }
        var body = payload
        buffer.writeBuffer(&body)
    }
}

/// Why a uTP datagram or connection failed.
public enum UTPError: Error, Sendable, Hashable, CustomStringConvertible {
    case truncated(field: String, offset: Int)
    case badVersion(UInt8)
    case badType(UInt8)
    case tooManyExtensions(limit: Int)
    /// The peer reset the connection (ST_RESET).
    case reset
    /// No answer to our SYN, or our packets went unacknowledged too many times.
    case timedOut(String)
    /// The peer broke a rule of the protocol.
    case protocolViolation(String)

    public var description: String {
        switch self {
        case .truncated(let field, let offset): return "uTP: \(field) cut short at byte \(offset)"
        case .badVersion(let version): return "uTP: version \(version) (only 1 exists)"
        case .badType(let type): return "uTP: packet type \(type) (0 to 4 exist)"
        case .tooManyExtensions(let limit): return "uTP: more than \(limit) extensions"
        case .reset: return "uTP: connection reset by the peer"
        case .timedOut(let what): return "uTP: timed out \(what)"
        case .protocolViolation(let what): return "uTP: \(what)"
        }
    }
}

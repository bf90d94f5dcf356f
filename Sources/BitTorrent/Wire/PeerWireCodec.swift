/// Bytes ⇄ ``PeerMessage`` for one length-prefixed frame (BEP 3: a 4-byte big-endian length,
/// then the ID and payload). Total: any frame gives a message or a ``PeerWireError``.
public enum PeerWireCodec {
    /// Decodes a frame's body (the bytes after the length prefix; empty is a keep-alive).
    public static func decode(_ body: ArraySlice<UInt8>) throws(PeerWireError) -> PeerMessage {
        guard let id = body.first else { return .keepAlive }
        let payload = body.dropFirst()
        func expect(_ length: Int, _ name: String) throws(PeerWireError) {
            guard payload.count == length else { throw .badLength(message: name, length: payload.count) }
        }
        switch id {
        case 0:
            try expect(0, "choke")
            return .choke
        case 1:
            try expect(0, "unchoke")
            return .unchoke
        case 2:
            try expect(0, "interested")
            return .interested
        case 3:
            try expect(0, "not interested")
            return .notInterested
        case 4:
            try expect(4, "have")
            return .have(piece: Int(readUInt32(payload, 0)))
        case 5:
            return .bitfield(Array(payload))
        case 6, 8, 16:
            try expect(12, id == 6 ? "request" : id == 8 ? "cancel" : "reject")
            let request = BlockRequest(
                piece: Int(readUInt32(payload, 0)), offset: Int(readUInt32(payload, 4)),
                length: Int(readUInt32(payload, 8)))
            return id == 6 ? .request(request) : id == 8 ? .cancel(request) : .reject(request)
        case 7:
            guard payload.count >= 8 else { throw .badLength(message: "piece", length: payload.count) }
            return .piece(
                piece: Int(readUInt32(payload, 0)), offset: Int(readUInt32(payload, 4)),
                data: Array(payload.dropFirst(8)))
        case 9:
            try expect(2, "port")
            let start = payload.startIndex
            return .port(UInt16(payload[start]) << 8 | UInt16(payload[start + 1]))
        case 13:
            try expect(4, "suggest")
            return .suggest(piece: Int(readUInt32(payload, 0)))
        case 14:
            try expect(0, "have all")
            return .haveAll
        case 15:
            try expect(0, "have none")
            return .haveNone
        case 17:
            try expect(4, "allowed fast")
            return .allowedFast(piece: Int(readUInt32(payload, 0)))
        case 20:
            guard let extensionID = payload.first else { throw .badLength(message: "extended", length: 0) }
            return .extended(id: extensionID, payload: Array(payload.dropFirst()))
        default:
            return .unknown(id: id)
        }
    }

    /// Appends the frame for `message`, length prefix included.
    public static func encode(_ message: PeerMessage, into out: inout [UInt8]) {
        func header(_ length: Int, _ id: UInt8) {
            appendUInt32(UInt32(length + 1), to: &out)
            out.append(id)
        }
        switch message {
        case .keepAlive:
            appendUInt32(0, to: &out)
        case .choke, .unchoke, .interested, .notInterested, .haveAll, .haveNone:
            header(0, message.id ?? 0)
        case .have(let piece), .suggest(let piece), .allowedFast(let piece):
            header(4, message.id ?? 0)
            appendUInt32(UInt32(truncatingIfNeeded: piece), to: &out)
        case .bitfield(let bytes):
            header(bytes.count, 5)
            out.append(contentsOf: bytes)
        case .request(let request), .cancel(let request), .reject(let request):
            header(12, message.id ?? 0)
            appendUInt32(UInt32(truncatingIfNeeded: request.piece), to: &out)
            appendUInt32(UInt32(truncatingIfNeeded: request.offset), to: &out)
            appendUInt32(UInt32(truncatingIfNeeded: request.length), to: &out)
        case .piece(let piece, let offset, let data):
            header(8 + data.count, 7)
            appendUInt32(UInt32(truncatingIfNeeded: piece), to: &out)
            appendUInt32(UInt32(truncatingIfNeeded: offset), to: &out)
            out.append(contentsOf: data)
        case .port(let port):
            header(2, 9)
            out.append(UInt8(port >> 8))
            out.append(UInt8(port & 0xFF))
        case .extended(let id, let payload):
            header(1 + payload.count, 20)
            out.append(id)
            out.append(contentsOf: payload)
        case .unknown(let id):
            header(0, id)
        }
    }

    public static func encode(_ message: PeerMessage) -> [UInt8] {
        var out: [UInt8] = []
        encode(message, into: &out)
        return out
    }

    static func readUInt32(_ bytes: ArraySlice<UInt8>, _ offset: Int) -> UInt32 {
        let start = bytes.startIndex + offset
        return UInt32(bytes[start]) << 24 | UInt32(bytes[start + 1]) << 16 | UInt32(bytes[start + 2]) << 8
            | UInt32(bytes[start + 3])
    }

    static func appendUInt32(_ value: UInt32, to out: inout [UInt8]) {
        out.append(UInt8(value >> 24))
        out.append(UInt8(value >> 16 & 0xFF))
        out.append(UInt8(value >> 8 & 0xFF))
        out.append(UInt8(value & 0xFF))
    }
}

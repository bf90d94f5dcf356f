import NIOCore

/// A frame as the connection reads it: a block, its data a slice of the frame's buffer (no
/// copy: blocks are most of the traffic), or any other message.
public enum PeerFrame: Equatable, Sendable {
    case block(piece: Int, offset: Int, data: ByteBuffer)
    case message(PeerMessage)
}

/// Bytes ⇄ ``PeerMessage`` for one length-prefixed frame (BEP 3: a 4-byte big-endian length,
/// then the ID and payload), on `ByteBuffer`. Total: any frame gives a message or a
/// ``PeerWireError``.
public enum PeerWireCodec {
    /// Decodes a whole frame, its length prefix included (as PeerNet's framing cuts it),
    /// refusing a body longer than `maxLength`.
    public static func decodeFrame(_ frame: ByteBuffer, maxLength: Int) throws(PeerWireError) -> PeerFrame {
        var body = frame
        guard let length = body.readInteger(as: UInt32.self), Int(length) == body.readableBytes else {
            throw .badLength(message: "frame", length: frame.readableBytes)
        }
        guard Int(length) <= maxLength else { throw .frameTooLong(length: Int(length), limit: maxLength) }
        return try decode(body: body)
    }

    /// Decodes a frame's body (the bytes after the length prefix; empty is a keep-alive).
    public static func decode(body: ByteBuffer) throws(PeerWireError) -> PeerFrame {
        var payload = body
        guard let id = payload.readInteger(as: UInt8.self) else { return .message(.keepAlive) }
        func expect(_ length: Int, _ name: String) throws(PeerWireError) {
            guard payload.readableBytes == length else {
                throw .badLength(message: name, length: payload.readableBytes)
            }
        }
        /// The next big-endian 32-bit value as an index or length (checked lengths first).
        func index() -> Int { Int(payload.readInteger(as: UInt32.self) ?? 0) }
        switch id {
        case 0:
            try expect(0, "choke")
            return .message(.choke)
        case 1:
            try expect(0, "unchoke")
            return .message(.unchoke)
        case 2:
            try expect(0, "interested")
            return .message(.interested)
        case 3:
            try expect(0, "not interested")
            return .message(.notInterested)
        case 4:
            try expect(4, "have")
            return .message(.have(piece: index()))
        case 5:
            return .message(.bitfield(Array(payload.readableBytesView)))
        case 6, 8, 16:
            try expect(12, id == 6 ? "request" : id == 8 ? "cancel" : "reject")
            let request = BlockRequest(piece: index(), offset: index(), length: index())
            return .message(id == 6 ? .request(request) : id == 8 ? .cancel(request) : .reject(request))
        case 7:
            guard payload.readableBytes >= 8 else {
                throw .badLength(message: "piece", length: payload.readableBytes)
            }
            let piece = index()
            let offset = index()
            return .block(piece: piece, offset: offset, data: payload)
        case 9:
            try expect(2, "port")
            return .message(.port(payload.readInteger(as: UInt16.self) ?? 0))
        case 13:
            try expect(4, "suggest")
            return .message(.suggest(piece: index()))
        case 14:
            try expect(0, "have all")
            return .message(.haveAll)
        case 15:
            try expect(0, "have none")
            return .message(.haveNone)
        case 17:
            try expect(4, "allowed fast")
            return .message(.allowedFast(piece: index()))
        case 20:
            guard let extensionID = payload.readInteger(as: UInt8.self) else {
                throw .badLength(message: "extended", length: 0)
            }
            return .message(.extended(id: extensionID, payload: Array(payload.readableBytesView)))
        case 21, 23:
            try expect(hashHeaderLength, id == 21 ? "hash request" : "hash reject")
            let request = readHashRequest(&payload)
            return .message(id == 21 ? .hashRequest(request) : .hashReject(request))
        case 22:
            guard payload.readableBytes >= hashHeaderLength,
                (payload.readableBytes - hashHeaderLength) % MerkleTree.hashSize == 0
            else { throw .badLength(message: "hashes", length: payload.readableBytes) }
            let request = readHashRequest(&payload)
            var hashes: [[UInt8]] = []
            hashes.reserveCapacity(payload.readableBytes / MerkleTree.hashSize)
            while let hash = payload.readBytes(length: MerkleTree.hashSize) { hashes.append(hash) }
            return .message(.hashes(request, hashes: hashes))
        default:
            return .message(.unknown(id: id))
        }
    }

    /// A BEP 52 hash message's fixed part: the pieces root and four 32-bit numbers.
    static let hashHeaderLength = MerkleTree.hashSize + 16

    private static func readHashRequest(_ payload: inout ByteBuffer) -> HashRequest {
        let root = payload.readBytes(length: MerkleTree.hashSize) ?? []
        func next() -> Int { Int(payload.readInteger(as: UInt32.self) ?? 0) }
        let base = next()
        let index = next()
        let length = next()
        return HashRequest(
            piecesRoot: root, baseLayer: base, index: index, length: length, proofLayers: next())
    }

    private static func writeHashRequest(_ request: HashRequest, into out: inout ByteBuffer) {
        var root = request.piecesRoot.prefix(MerkleTree.hashSize)
        if root.count < MerkleTree.hashSize {
            root += repeatElement(0, count: MerkleTree.hashSize - root.count)
        }
        out.writeBytes(root)
        for value in [request.baseLayer, request.index, request.length, request.proofLayers] {
            out.writeInteger(UInt32(truncatingIfNeeded: value))
        }
    }

    /// Decodes a frame's body given as bytes; a block's data is copied into the message.
    public static func decode(_ body: ArraySlice<UInt8>) throws(PeerWireError) -> PeerMessage {
        switch try decode(body: ByteBuffer(bytes: body)) {
        case .message(let message): return message
        case .block(let piece, let offset, let data):
            return .piece(piece: piece, offset: offset, data: Array(data.readableBytesView))
        }
    }

    /// Appends the frame for `message`, length prefix included.
    public static func encode(_ message: PeerMessage, into out: inout ByteBuffer) {
        func header(_ length: Int, _ id: UInt8) {
            out.writeInteger(UInt32(length + 1))
            out.writeInteger(id)
        }
        func write(_ value: Int) { out.writeInteger(UInt32(truncatingIfNeeded: value)) }
        switch message {
        case .keepAlive:
            out.writeInteger(UInt32(0))
        case .choke, .unchoke, .interested, .notInterested, .haveAll, .haveNone:
            header(0, message.id ?? 0)
        case .have(let piece), .suggest(let piece), .allowedFast(let piece):
            header(4, message.id ?? 0)
            write(piece)
        case .bitfield(let bytes):
            header(bytes.count, 5)
            out.writeBytes(bytes)
        case .request(let request), .cancel(let request), .reject(let request):
            header(12, message.id ?? 0)
            write(request.piece)
            write(request.offset)
            write(request.length)
        case .piece(let piece, let offset, let data):
            header(8 + data.count, 7)
            write(piece)
            write(offset)
            out.writeBytes(data)
        case .port(let port):
            header(2, 9)
            out.writeInteger(port)
        case .extended(let id, let payload):
            header(1 + payload.count, 20)
            out.writeInteger(id)
            out.writeBytes(payload)
        case .hashRequest(let request), .hashReject(let request):
            header(hashHeaderLength, message.id ?? 0)
            writeHashRequest(request, into: &out)
        case .hashes(let request, let hashes):
            header(hashHeaderLength + hashes.count * MerkleTree.hashSize, 22)
            writeHashRequest(request, into: &out)
            for hash in hashes { out.writeBytes(hash) }
        case .unknown(let id):
            header(0, id)
        }
    }

    /// The bytes a message's frame needs, length prefix included.
    public static func frameLength(_ message: PeerMessage) -> Int {
        switch message {
        case .keepAlive: return 4
        case .bitfield(let bytes): return 5 + bytes.count
        case .piece(_, _, let data): return 13 + data.count
        case .extended(_, let payload): return 6 + payload.count
        case .request, .cancel, .reject: return 17
        case .have, .suggest, .allowedFast: return 9
        case .port: return 7
        case .hashRequest, .hashReject: return 5 + hashHeaderLength
        case .hashes(_, let hashes): return 5 + hashHeaderLength + hashes.count * MerkleTree.hashSize
        default: return 5
        }
    }

    /// The frame for `message`, length prefix included.
    public static func encode(_ message: PeerMessage) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(frameLength(message))
        encode(message, into: &buffer)
        return Array(buffer.readableBytesView)
    }

    static func readUInt32(_ bytes: ArraySlice<UInt8>, _ offset: Int) -> UInt32 {
        let start = bytes.startIndex + offset
        return UInt32(bytes[start]) << 24 | UInt32(bytes[start + 1]) << 16 | UInt32(bytes[start + 2]) << 8
            | UInt32(bytes[start + 3])
    }
}

/// Client ↔ client messages (protocol 0xE3, and eMule's 0xC5 ones named below), for one file
/// transfer: hellos, the file request, the file's part status and hashset, the upload queue,
/// part requests and the parts themselves.
public enum ClientMessage: Sendable, Equatable {
    /// 0x01 (with the hash length byte 16 first) / 0x4C: who we are — user hash, client ID,
    /// TCP port, tags (name, version), and the server we are on.
    case hello(
        userHash: [UInt8], clientID: UInt32, port: UInt16, tags: [Tag], serverIP: UInt32, serverPort: UInt16)
    case helloAnswer(
        userHash: [UInt8], clientID: UInt32, port: UInt16, tags: [Tag], serverIP: UInt32, serverPort: UInt16)
    /// 0x58 / 0x59: which file; its name.
    case requestFileName(hash: [UInt8])
    case fileNameAnswer(hash: [UInt8], name: String)
    /// 0x48: the peer does not have the file.
    case noSuchFile(hash: [UInt8])
    /// 0x4F / 0x50: select the file; the parts the peer has (an empty bitmap: all of them).
    case setRequestedFile(hash: [UInt8])
    case fileStatus(hash: [UInt8], parts: Int, bitmap: [UInt8])
    /// 0x51 / 0x52: the part hashes.
    case hashSetRequest(hash: [UInt8])
    case hashSetAnswer(hash: [UInt8], parts: [[UInt8]])
    /// 0x54 / 0x55 / 0x56: ask for an upload slot; granted; the downloader cancels. 0x57: the
    /// uploader ends the slot (out of part requests).
    case startUploadRequest(hash: [UInt8])
    case acceptUpload
    case cancelTransfer
    case outOfPartRequests
    /// 0x60 (0xC5): our place in the peer's upload queue.
    case queueRank(UInt16)
    /// 0x47: up to three byte ranges, [start, end) each (0, 0 for unused).
    case requestParts(hash: [UInt8], ranges: [(start: UInt32, end: UInt32)])
    /// 0x46: a block of the file, [start, end).
    case sendingPart(hash: [UInt8], start: UInt32, end: UInt32, data: [UInt8])
    /// 0x40 (0xC5): a zlib-packed block; `start` and the packed length, then packed bytes (a
    /// block may come in several of these).
    case compressedPart(hash: [UInt8], start: UInt32, packedLength: UInt32, data: [UInt8])
    /// 0x9B (0xC5): AICH recovery data for a part, under the root the asker trusts.
    case aichRequest(hash: [UInt8], part: UInt16, root: [UInt8])
    /// 0x9C (0xC5): the recovery data (see ``AICHTree``), with 32-bit identifiers for files
    /// over 4 GiB; or, with `root` empty, "not available".
    case aichAnswer(
        hash: [UInt8], part: UInt16, root: [UInt8], recovery: [(ident: UInt32, hash: [UInt8])], large: Bool)
    case other(protocolByte: UInt8, opcode: UInt8, payload: [UInt8])

    public static let maxParts = 27_000  // 256 GB / 9.28 MB
    public static let maxBlock = 10_240 * 18

    public static func == (a: ClientMessage, b: ClientMessage) -> Bool { a.packet() == b.packet() }

    public init(_ packet: EDonkeyPacket) throws(EDonkeyError) {
        var r = EDonkeyReader(packet.payload)
        func hash() throws(EDonkeyError) -> [UInt8] { try r.hash("file hash") }
        switch (packet.proto, packet.opcode) {
        case (.edonkey, 0x01), (.edonkey, 0x4C):
            if packet.opcode == 0x01 {
                let length = try r.u8("hash length")
                guard length == 16 else {
                    throw .invalid(field: "hello hash length", offset: 0, reason: "\(length)")
                }
            }
            let user = try r.hash("user hash")
            let id = try r.u32("client ID")
            let port = try r.u16("port")
            let tags = try Tag.parseList(&r)
            let serverIP = r.remaining >= 6 ? try r.u32("server IP") : 0
            let serverPort = r.remaining >= 2 ? try r.u16("server port") : 0
            self =
                packet.opcode == 0x01
                ? .hello(
                    userHash: user, clientID: id, port: port, tags: tags, serverIP: serverIP,
                    serverPort: serverPort)
                : .helloAnswer(
                    userHash: user, clientID: id, port: port, tags: tags, serverIP: serverIP,
                    serverPort: serverPort)
        case (.edonkey, 0x58): self = .requestFileName(hash: try hash())
        case (.edonkey, 0x59):
            let h = try hash()
            self = .fileNameAnswer(hash: h, name: try r.string("file name"))
        case (.edonkey, 0x48): self = .noSuchFile(hash: try hash())
        case (.edonkey, 0x4F): self = .setRequestedFile(hash: try hash())
        case (.edonkey, 0x50):
            let h = try hash()
            let parts = Int(try r.u16("part count"))
            guard parts <= Self.maxParts else {
                throw .tooLarge(field: "part count", size: parts, limit: Self.maxParts)
            }
            self = .fileStatus(
                hash: h, parts: parts, bitmap: parts == 0 ? [] : try r.take((parts + 7) / 8, "part bitmap"))
        case (.edonkey, 0x51): self = .hashSetRequest(hash: try hash())
        case (.edonkey, 0x52):
            let h = try hash()
            let count = Int(try r.u16("part hash count"))
            guard count <= Self.maxParts else {
                throw .tooLarge(field: "hashset", size: count, limit: Self.maxParts)
            }
            var parts: [[UInt8]] = []
            for _ in 0..<count { parts.append(try r.hash("part hash")) }
            self = .hashSetAnswer(hash: h, parts: parts)
        case (.edonkey, 0x54): self = .startUploadRequest(hash: r.remaining >= 16 ? try hash() : [])
        case (.edonkey, 0x55): self = .acceptUpload
        case (.edonkey, 0x56): self = .cancelTransfer
        case (.edonkey, 0x57): self = .outOfPartRequests
        case (.emule, 0x60): self = .queueRank(try r.u16("queue rank"))
        case (.edonkey, 0x47):
            let h = try hash()
            let starts = [try r.u32("start 1"), try r.u32("start 2"), try r.u32("start 3")]
            let ends = [try r.u32("end 1"), try r.u32("end 2"), try r.u32("end 3")]
            self = .requestParts(hash: h, ranges: zip(starts, ends).map { ($0, $1) })
        case (.edonkey, 0x46):
            let h = try hash()
            let start = try r.u32("part start")
            let end = try r.u32("part end")
            guard end >= start, Int(end - start) == r.remaining, Int(end - start) <= Self.maxBlock else {
                throw .invalid(
                    field: "part range", offset: 20, reason: "\(start)..<\(end) with \(r.remaining) bytes")
            }
            self = .sendingPart(hash: h, start: start, end: end, data: r.rest())
        case (.emule, 0x40):
            let h = try hash()
            let start = try r.u32("packed part start")
            let length = try r.u32("packed length")
            guard Int(length) <= Self.maxBlock else {
                throw .tooLarge(field: "packed part", size: Int(length), limit: Self.maxBlock)
            }
            self = .compressedPart(hash: h, start: start, packedLength: length, data: r.rest())
        case (.emule, 0x9B):
            let h = try hash()
            let part = try r.u16("AICH part")
            self = .aichRequest(hash: h, part: part, root: try r.take(20, "AICH root"))
        case (.emule, 0x9C):
            let h = try hash()
            guard !r.isAtEnd else {
                self = .aichAnswer(hash: h, part: 0, root: [], recovery: [], large: false)
                return
            }
            let part = try r.u16("AICH part")
            let root = try r.take(20, "AICH root")
            var recovery: [(ident: UInt32, hash: [UInt8])] = []
            func entries(_ wide: Bool) throws(EDonkeyError) {
                let count = Int(try r.u16("AICH hash count"))
                guard count <= 1_024 else { throw .tooLarge(field: "AICH hashes", size: count, limit: 1_024) }
                for _ in 0..<count {
                    let ident = wide ? try r.u32("AICH identifier") : UInt32(try r.u16("AICH identifier"))
                    recovery.append((ident, try r.take(20, "AICH hash")))
                }
            }
            try entries(false)
            // 16-bit identifiers, then a zero count; or a zero count, then 32-bit ones.
            let large = recovery.isEmpty && r.remaining >= 2
            if large {
                try entries(true)
            } else if r.remaining >= 2, try r.u16("AICH 32-bit count") != 0 {
                throw .invalid(
                    field: "AICH answer", offset: r.offset - 2, reason: "both 16- and 32-bit hashes")
            }
            self = .aichAnswer(hash: h, part: part, root: root, recovery: recovery, large: large)
        default:
            self = .other(protocolByte: packet.proto.rawValue, opcode: packet.opcode, payload: packet.payload)
        }
    }

    public func packet() -> EDonkeyPacket {
        var w = EDonkeyWriter()
        func hash(_ h: [UInt8]) { w.raw(Array((h + [UInt8](repeating: 0, count: 16)).prefix(16))) }
        var proto = EDonkeyPacket.ProtocolByte.edonkey
        let opcode: UInt8
        switch self {
        case .hello(let user, let id, let port, let tags, let ip, let serverPort),
            .helloAnswer(let user, let id, let port, let tags, let ip, let serverPort):
            if case .hello = self {
                opcode = 0x01
                w.u8(16)
            } else {
                opcode = 0x4C
            }
            hash(user)
            w.u32(id)
            w.u16(port)
            Tag.encodeList(tags, into: &w, newStyle: false)
            w.u32(ip)
            w.u16(serverPort)
        case .requestFileName(let h):
            opcode = 0x58
            hash(h)
        case .fileNameAnswer(let h, let name):
            opcode = 0x59
            hash(h)
            w.string(name)
        case .noSuchFile(let h):
            opcode = 0x48
            hash(h)
        case .setRequestedFile(let h):
            opcode = 0x4F
            hash(h)
        case .fileStatus(let h, let parts, let bitmap):
            opcode = 0x50
            hash(h)
            w.u16(UInt16(clamping: parts))
            if parts > 0 {
                w.raw(Array((bitmap + [UInt8](repeating: 0, count: (parts + 7) / 8)).prefix((parts + 7) / 8)))
            }
        case .hashSetRequest(let h):
            opcode = 0x51
            hash(h)
        case .hashSetAnswer(let h, let parts):
            opcode = 0x52
            hash(h)
            w.u16(UInt16(clamping: parts.count))
            for part in parts.prefix(Int(UInt16.max)) { hash(part) }
        case .startUploadRequest(let h):
            opcode = 0x54
            if !h.isEmpty { hash(h) }
        case .acceptUpload: opcode = 0x55
        case .cancelTransfer: opcode = 0x56
        case .outOfPartRequests: opcode = 0x57
        case .queueRank(let rank):
            proto = .emule
            opcode = 0x60
            w.u16(rank)
            w.raw([UInt8](repeating: 0, count: 10))
        case .requestParts(let h, let ranges):
            opcode = 0x47
            hash(h)
            let padded = Array((ranges + Array(repeating: (UInt32(0), UInt32(0)), count: 3)).prefix(3))
            for range in padded { w.u32(range.start) }
            for range in padded { w.u32(range.end) }
        case .sendingPart(let h, let start, let end, let data):
            opcode = 0x46
            hash(h)
            w.u32(start)
            w.u32(end)
            w.raw(data)
        case .compressedPart(let h, let start, let length, let data):
            proto = .emule
            opcode = 0x40
            hash(h)
            w.u32(start)
            w.u32(length)
            w.raw(data)
        case .aichRequest(let h, let part, let root):
            proto = .emule
            opcode = 0x9B
            hash(h)
            w.u16(part)
            w.raw(Array((root + [UInt8](repeating: 0, count: 20)).prefix(20)))
        case .aichAnswer(let h, let part, let root, let recovery, let large):
            proto = .emule
            opcode = 0x9C
            hash(h)
            if !root.isEmpty {
                w.u16(part)
                w.raw(Array((root + [UInt8](repeating: 0, count: 20)).prefix(20)))
                let list = recovery.prefix(1_024)
                if large { w.u16(0) }
                w.u16(UInt16(list.count))
                for entry in list {
                    if large { w.u32(entry.ident) } else { w.u16(UInt16(truncatingIfNeeded: entry.ident)) }
                    w.raw(Array((entry.hash + [UInt8](repeating: 0, count: 20)).prefix(20)))
                }
                if !large { w.u16(0) }
            }
        case .other(let protocolByte, let code, let payload):
            proto = EDonkeyPacket.ProtocolByte(rawValue: protocolByte) ?? .edonkey
            opcode = code
            w.raw(payload)
        }
        return EDonkeyPacket(proto, opcode: opcode, payload: w.bytes)
    }
}

extension ClientMessage {
    /// The tags of our hellos: name, eDonkey version 0x3C, and eMule's extended info (the eMule
    /// version tag 0xFB and misc options 0xFA), advertising what PeerStack does: AICH version 1
    /// (recovery data), unicode names and zlib-packed parts (data compression version 1). No
    /// multipacket, extended requests, source exchange, secure ident or client UDP: eMule and
    /// aMule then use the plain messages for those.
    public static func helloTags(name: String = "PeerStack") -> [Tag] {
        // Compatible-client byte 0x50 (not eMule, not aMule: shown as its own client), 0.1.0.
        let version: UInt64 = 0x50 << 24 | 0 << 17 | 1 << 10 | 0 << 7
        let misc: UInt64 = 1 << 29 | 1 << 28 | 1 << 20
        return [
            Tag(.id(Tag.fileName), .string(name)), Tag(.id(Tag.version), .uint(0x3C)),
            Tag(.id(Tag.emuleVersion), .uint(version)), Tag(.id(0xFA), .uint(misc)),
        ]
    }
}

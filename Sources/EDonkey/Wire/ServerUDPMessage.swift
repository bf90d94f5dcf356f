/// Client ↔ server datagrams on the server's UDP port (its TCP port + 4): `0xE3`, the opcode,
/// then the payload, no length (the datagram is the frame). eMule's opcodes.h names them
/// OP_GLOB…: searches and source requests from clients not connected to this server, and the
/// status and description pings eMule and aMule send every server in their list, each with a
/// challenge the answer repeats so a forged answer cannot pass.
public enum ServerUDPMessage: Sendable, Equatable {
    /// 0x98 (eMule also sends 0x92, and 0x90 with a tag list first): a search.
    case globalSearch(SearchExpression)
    /// 0x99: one result (a server may put several in one datagram, each after its own header).
    case globalSearchResult(FileEntry)
    /// 0x9A: sources of these files.
    case globalGetSources([[UInt8]])
    /// 0x94: sources of these files, each with its size (eMule's large-file form).
    case globalGetSources2([(hash: [UInt8], size: UInt64)])
    /// 0x9B: one file's sources (high ID and TCP port each).
    case globalFoundSources(hash: [UInt8], sources: [(id: UInt32, port: UInt16)])
    /// 0x96: the server's status, please; the challenge comes back in the answer.
    case statusRequest(challenge: UInt32)
    /// 0x97: users, files, the soft and hard file limits, UDP flags and low-ID users.
    case status(ServerStatus)
    /// 0xA2: the server's name and description (the challenge's low 16 bits 0xF0FF ask for
    /// the tagged answer).
    case descriptionRequest(challenge: UInt32?)
    /// 0xA3: tagged (challenge, then tags: name 0x01, description 0x0B) or, for the old
    /// request, two strings.
    case description(challenge: UInt32?, name: String, description: String)
    case other(opcode: UInt8, payload: [UInt8])

    /// eMule's low 16 bits of a description challenge that asks for the tagged answer.
    public static let taggedDescription: UInt32 = 0xF0FF
    /// Files asked for in one datagram (a full 1,400-byte datagram holds about 70).
    public static let maxHashes = 128

    public static func == (a: Self, b: Self) -> Bool { a.encoded() == b.encoded() }

    public var opcode: UInt8 {
        switch self {
        case .globalSearch: 0x98
        case .globalSearchResult: 0x99
        case .globalGetSources: 0x9A
        case .globalGetSources2: 0x94
        case .globalFoundSources: 0x9B
        case .statusRequest: 0x96
        case .status: 0x97
        case .descriptionRequest: 0xA2
        case .description: 0xA3
        case .other(let opcode, _): opcode
        }
    }

    /// Parses one datagram; never traps.
    public init(datagram: [UInt8]) throws(EDonkeyError) {
        guard datagram.count >= 2 else { throw .truncated(field: "UDP header", offset: 0) }
        guard datagram[0] == 0xE3 else {
            throw .invalid(field: "UDP protocol", offset: 0, reason: "0x\(String(datagram[0], radix: 16))")
        }
        var r = EDonkeyReader(datagram, offset: 2)
        switch datagram[1] {
        case 0x98, 0x92: self = .globalSearch(try SearchExpression.parse(&r))
        case 0x90:
            _ = try Tag.parseList(&r)  // the client's search options: nothing we need
            self = .globalSearch(try SearchExpression.parse(&r))
        case 0x99: self = .globalSearchResult(try FileEntry.parse(&r))
        case 0x9A:
            var hashes: [[UInt8]] = []
            while !r.isAtEnd {
                guard hashes.count < Self.maxHashes else {
                    throw .tooLarge(field: "hashes", size: hashes.count + 1, limit: Self.maxHashes)
                }
                hashes.append(try r.hash("file hash"))
            }
            self = .globalGetSources(hashes)
        case 0x94:
            var files: [(hash: [UInt8], size: UInt64)] = []
            while !r.isAtEnd {
                guard files.count < Self.maxHashes else {
                    throw .tooLarge(field: "hashes", size: files.count + 1, limit: Self.maxHashes)
                }
                let hash = try r.hash("file hash")
                let low = try r.u32("file size")
                files.append((hash, low == 0 ? try r.u64("large file size") : UInt64(low)))
            }
            self = .globalGetSources2(files)
        case 0x9B:
            let hash = try r.hash("file hash")
            let count = Int(try r.u8("source count"))
            var sources: [(UInt32, UInt16)] = []
            for _ in 0..<count { sources.append((try r.u32("source ID"), try r.u16("source port"))) }
            self = .globalFoundSources(hash: hash, sources: sources)
        case 0x96: self = .statusRequest(challenge: try r.u32("challenge"))
        case 0x97: self = .status(try ServerStatus(&r))
        case 0xA2: self = .descriptionRequest(challenge: r.remaining >= 4 ? try r.u32("challenge") : nil)
        case 0xA3:
            // The tagged form starts with the challenge, whose low half is 0xF0FF; the old form
            // with a string length, which is never that large in a datagram.
            if r.remaining >= 4, UInt32(datagram[2]) | UInt32(datagram[3]) << 8 == Self.taggedDescription {
                let challenge = try r.u32("challenge")
                let tags = try Tag.parseList(&r)
                self = .description(
                    challenge: challenge, name: tags.string(0x01) ?? "", description: tags.string(0x0B) ?? "")
            } else {
                let name = try r.string("server name")
                self = .description(
                    challenge: nil, name: name, description: try r.string("server description"))
            }
        default: self = .other(opcode: datagram[1], payload: Array(datagram[2...]))
        }
    }

    public func encoded() -> [UInt8] {
        var w = EDonkeyWriter()
        switch self {
        case .globalSearch(let expression): expression.encode(into: &w)
        case .globalSearchResult(let entry): entry.encode(into: &w, newStyle: true)
        case .globalGetSources(let hashes):
            for hash in hashes { w.raw(Array((hash + [UInt8](repeating: 0, count: 16)).prefix(16))) }
        case .globalGetSources2(let files):
            for file in files {
                w.raw(Array((file.hash + [UInt8](repeating: 0, count: 16)).prefix(16)))
                // A size of 0 or over 4 GiB goes as 0 then 64 bits (0 alone would read as "64 bits follow").
                if file.size == 0 || file.size > UInt64(UInt32.max) {
                    w.u32(0)
                    w.u64(file.size)
                } else {
                    w.u32(UInt32(file.size))
                }
            }
        case .globalFoundSources(let hash, let sources):
            w.raw(Array((hash + [UInt8](repeating: 0, count: 16)).prefix(16)))
            let list = sources.prefix(ServerMessage.maxSources)
            w.u8(UInt8(list.count))
            for source in list {
                w.u32(source.id)
                w.u16(source.port)
            }
        case .statusRequest(let challenge): w.u32(challenge)
        case .status(let status): status.encode(into: &w)
        case .descriptionRequest(let challenge): if let challenge { w.u32(challenge) }
        case .description(let challenge, let name, let description):
            if let challenge {
                w.u32(challenge)
                Tag.encodeList(
                    [Tag(.id(0x01), .string(name)), Tag(.id(0x0B), .string(description))], into: &w,
                    newStyle: true)
            } else {
                w.string(name)
                w.string(description)
            }
        case .other(_, let payload): w.raw(payload)
        }
        return [0xE3, opcode] + w.bytes
    }
}

/// What a server says of itself in a UDP status answer (0x97), in eMule's order; the fields
/// after users and files are optional on the wire (older servers stop early).
public struct ServerStatus: Sendable, Equatable {
    public var challenge: UInt32
    public var users: UInt32
    public var files: UInt32
    public var maxUsers: UInt32 = 0
    public var softFiles: UInt32 = 0
    public var hardFiles: UInt32 = 0
    /// UDP flags: 0x01 GETSOURCES, 0x02 GETFILES, 0x08 NEWTAGS, 0x10 UNICODE, 0x20
    /// GETEXTENDEDINFO, 0x40 LARGEFILES…
    public var udpFlags: UInt32 = 0
    public var lowIDUsers: UInt32 = 0

    public init(challenge: UInt32, users: UInt32, files: UInt32) {
        self.challenge = challenge
        self.users = users
        self.files = files
    }

    init(_ r: inout EDonkeyReader) throws(EDonkeyError) {
        challenge = try r.u32("challenge")
        users = try r.u32("users")
        files = try r.u32("files")
        if r.remaining >= 4 { maxUsers = try r.u32("max users") }
        if r.remaining >= 8 {
            softFiles = try r.u32("soft file limit")
            hardFiles = try r.u32("hard file limit")
        }
        if r.remaining >= 4 { udpFlags = try r.u32("UDP flags") }
        if r.remaining >= 4 { lowIDUsers = try r.u32("low-ID users") }
    }

    func encode(into w: inout EDonkeyWriter) {
        for value in [challenge, users, files, maxUsers, softFiles, hardFiles, udpFlags, lowIDUsers] {
            w.u32(value)
        }
    }
}

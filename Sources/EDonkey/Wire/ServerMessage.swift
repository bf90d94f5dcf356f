/// A search expression (OP_SEARCHREQUEST's payload): a tree in prefix order of boolean
/// operators (0x00 then AND 0x00, OR 0x01, NOT 0x02 — "left and not right"), string terms
/// (0x01), string constraints on a tag such as the file type (0x02) and numeric ones such as
/// size or availability (0x03 with a u32, 0x08 with a u64; then a comparison operator).
public indirect enum SearchExpression: Sendable, Equatable {
    case and(SearchExpression, SearchExpression)
    case or(SearchExpression, SearchExpression)
    case not(SearchExpression, SearchExpression)
    case term(String)
    case meta(value: String, tag: Tag.Name)
    case numeric(value: UInt64, comparison: Comparison, tag: Tag.Name)

    public enum Comparison: UInt8, Sendable {
        case equal = 0
        case greater = 1
        case less = 2
        case greaterOrEqual = 3
        case lessOrEqual = 4
        case notEqual = 5
    }

    /// Deepest tree accepted (a hostile client could nest thousands of operators).
    public static let maxDepth = 32
    public static let maxNodes = 256

    public static func parse(_ reader: inout EDonkeyReader) throws(EDonkeyError) -> SearchExpression {
        var nodes = 0
        return try parse(&reader, depth: 0, nodes: &nodes)
    }

    static func parse(_ reader: inout EDonkeyReader, depth: Int, nodes: inout Int) throws(EDonkeyError)
        -> SearchExpression
    {
        guard depth < maxDepth else {
            throw .tooLarge(field: "search expression depth", size: depth, limit: maxDepth)
        }
        nodes += 1
        guard nodes <= maxNodes else {
            throw .tooLarge(field: "search expression", size: nodes, limit: maxNodes)
        }
        let at = reader.offset
        switch try reader.u8("search node type") {
        case 0x00:
            let op = try reader.u8("boolean operator")
            let left = try parse(&reader, depth: depth + 1, nodes: &nodes)
            let right = try parse(&reader, depth: depth + 1, nodes: &nodes)
            switch op {
            case 0x00: return .and(left, right)
            case 0x01: return .or(left, right)
            case 0x02: return .not(left, right)
            default: throw .invalid(field: "boolean operator", offset: at + 1, reason: "\(op)")
            }
        case 0x01:
            return .term(try reader.string("search term"))
        case 0x02:
            let value = try reader.string("search constraint value")
            return .meta(value: value, tag: try tagName(&reader))
        case 0x03:
            let value = UInt64(try reader.u32("search number"))
            return try numeric(value, &reader, at: at)
        case 0x08:
            let value = try reader.u64("search number")
            return try numeric(value, &reader, at: at)
        case let type:
            throw .invalid(field: "search node type", offset: at, reason: "\(type)")
        }
    }

    static func numeric(_ value: UInt64, _ reader: inout EDonkeyReader, at: Int) throws(EDonkeyError)
        -> SearchExpression
    {
        let code = try reader.u8("comparison")
        guard let comparison = Comparison(rawValue: code) else {
            throw .invalid(field: "comparison", offset: at, reason: "\(code)")
        }
        return .numeric(value: value, comparison: comparison, tag: try tagName(&reader))
    }

    static func tagName(_ reader: inout EDonkeyReader) throws(EDonkeyError) -> Tag.Name {
        let length = Int(try reader.u16("constraint tag length"))
        let bytes = try reader.take(length, "constraint tag")
        return length == 1 ? .id(bytes[0]) : .string(String(decoding: bytes, as: UTF8.self))
    }

    public func encode(into writer: inout EDonkeyWriter) {
        func name(_ tag: Tag.Name) {
            switch tag {
            case .id(let id):
                writer.u16(1)
                writer.u8(id)
            case .string(let text): writer.string(text)
            }
        }
        switch self {
        case .and(let l, let r), .or(let l, let r), .not(let l, let r):
            writer.u8(0)
            writer.u8(
                {
                    switch self {
                    case .and: 0
                    case .or: 1
                    default: 2
                    }
                }())
            l.encode(into: &writer)
            r.encode(into: &writer)
        case .term(let text):
            writer.u8(1)
            writer.string(text)
        case .meta(let value, let tag):
            writer.u8(2)
            writer.string(value)
            name(tag)
        case .numeric(let value, let comparison, let tag):
            if value > UInt64(UInt32.max) {
                writer.u8(8)
                writer.u64(value)
            } else {
                writer.u8(3)
                writer.u32(UInt32(value))
            }
            writer.u8(comparison.rawValue)
            name(tag)
        }
    }

    /// An expression from words: every word must appear (AND of terms).
    public static func words(_ text: String) -> SearchExpression? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init).prefix(16)
        guard var expression = words.first.map(SearchExpression.term) else { return nil }
        for word in words.dropFirst() { expression = .and(expression, .term(word)) }
        return expression
    }
}

/// A file as servents offer it and servers list it: its hash, where it is (client ID and port;
/// a server's search results give the client's), and tags (name, size, type, sources…).
public struct FileEntry: Sendable, Equatable {
    public var hash: [UInt8]
    public var clientID: UInt32
    public var port: UInt16
    public var tags: [Tag]

    public init(hash: [UInt8], clientID: UInt32, port: UInt16, tags: [Tag]) {
        self.hash = hash
        self.clientID = clientID
        self.port = port
        self.tags = tags
    }

    public var name: String? { tags.string(Tag.fileName) }
    public var size: UInt64? {
        guard let low = tags.uint(Tag.fileSize) else { return nil }
        return low | (tags.uint(Tag.fileSizeHigh) ?? 0) << 32
    }

    static func parse(_ reader: inout EDonkeyReader) throws(EDonkeyError) -> FileEntry {
        let hash = try reader.hash("file hash")
        let id = try reader.u32("client ID")
        let port = try reader.u16("client port")
        return FileEntry(hash: hash, clientID: id, port: port, tags: try Tag.parseList(&reader))
    }

    func encode(into writer: inout EDonkeyWriter, newStyle: Bool) {
        writer.raw(Array((hash + [UInt8](repeating: 0, count: 16)).prefix(16)))
        writer.u32(clientID)
        writer.u16(port)
        Tag.encodeList(tags, into: &writer, newStyle: newStyle)
    }
}

/// Client ↔ server messages over TCP (protocol 0xE3; eMule's opcodes.h names).
public enum ServerMessage: Sendable, Equatable {
    /// 0x01: the user hash, the client ID it asks for (0), its TCP port, and tags (name,
    /// version, port, flags: zlib, new tags, unicode, large files).
    case login(userHash: [UInt8], clientID: UInt32, port: UInt16, tags: [Tag])
    /// 0x38: a text message from the server.
    case serverMessage(String)
    /// 0x40: the client's ID (high if ≥ 2^24: its IP; low otherwise) and the server's TCP flags.
    case idChange(clientID: UInt32, flags: UInt32?)
    /// 0x15: files the client shares (an empty list: a keep-alive).
    case offerFiles([FileEntry])
    /// 0x16: a search.
    case search(SearchExpression)
    /// 0x33: results, with the trailing "more results" flag.
    case searchResults([FileEntry], more: Bool)
    /// 0x19: sources for one file (hash, and its size).
    case getSources(hash: [UInt8], size: UInt64?)
    /// 0x42: sources for one file (client ID, port).
    case foundSources(hash: [UInt8], sources: [(id: UInt32, port: UInt16)])
    /// 0x34: users and files on the server.
    case status(users: UInt32, files: UInt32)
    /// 0x41: the server's hash, address, port and tags (name, description).
    case ident(hash: [UInt8], ip: UInt32, port: UInt16, tags: [Tag])
    /// 0x1C: a high-ID client asks the server to have a low-ID client call it.
    case callbackRequest(clientID: UInt32)
    /// 0x35: the server tells a low-ID client to call this address.
    case callbackRequested(ip: UInt32, port: UInt16)
    /// 0x14 / 0x32: ask for and get the server's list of other servers.
    case getServerList
    case serverList([(ip: UInt32, port: UInt16)])
    /// Anything else, kept raw.
    case other(opcode: UInt8, payload: [UInt8])

    public static let maxFilesPerOffer = 1_000
    public static let maxResults = 500
    public static let maxSources = 255

    public static func == (a: ServerMessage, b: ServerMessage) -> Bool { a.packet() == b.packet() }

    public var opcode: UInt8 {
        switch self {
        case .login: 0x01
        case .serverMessage: 0x38
        case .idChange: 0x40
        case .offerFiles: 0x15
        case .search: 0x16
        case .searchResults: 0x33
        case .getSources: 0x19
        case .foundSources: 0x42
        case .status: 0x34
        case .ident: 0x41
        case .callbackRequest: 0x1C
        case .callbackRequested: 0x35
        case .getServerList: 0x14
        case .serverList: 0x32
        case .other(let opcode, _): opcode
        }
    }

    public init(_ packet: EDonkeyPacket) throws(EDonkeyError) {
        var r = EDonkeyReader(packet.payload)
        switch packet.opcode {
        case 0x01:
            let hash = try r.hash("user hash")
            let id = try r.u32("client ID")
            let port = try r.u16("port")
            self = .login(userHash: hash, clientID: id, port: port, tags: try Tag.parseList(&r))
        case 0x38: self = .serverMessage(try r.string("server message"))
        case 0x40:
            let id = try r.u32("client ID")
            self = .idChange(clientID: id, flags: r.remaining >= 4 ? try r.u32("server flags") : nil)
        case 0x15:
            let count = Int(try r.u32("file count"))
            guard count <= Self.maxFilesPerOffer else {
                throw .tooLarge(field: "offered files", size: count, limit: Self.maxFilesPerOffer)
            }
            var files: [FileEntry] = []
            for _ in 0..<count { files.append(try FileEntry.parse(&r)) }
            self = .offerFiles(files)
        case 0x16: self = .search(try SearchExpression.parse(&r))
        case 0x33:
            let count = Int(try r.u32("result count"))
            guard count <= Self.maxResults else {
                throw .tooLarge(field: "results", size: count, limit: Self.maxResults)
            }
            var files: [FileEntry] = []
            for _ in 0..<count { files.append(try FileEntry.parse(&r)) }
            self = .searchResults(files, more: r.isAtEnd ? false : try r.u8("more flag") != 0)
        case 0x19:
            let hash = try r.hash("file hash")
            var size: UInt64?
            if r.remaining >= 4 {
                let low = try r.u32("file size")
                size = low == 0 && r.remaining >= 8 ? try r.u64("large file size") : UInt64(low)
            }
            self = .getSources(hash: hash, size: size)
        case 0x42:
            let hash = try r.hash("file hash")
            let count = Int(try r.u8("source count"))
            var sources: [(UInt32, UInt16)] = []
            for _ in 0..<count { sources.append((try r.u32("source ID"), try r.u16("source port"))) }
            self = .foundSources(hash: hash, sources: sources)
        case 0x34: self = .status(users: try r.u32("users"), files: try r.u32("files"))
        case 0x41:
            let hash = try r.hash("server hash")
            let ip = try r.u32("server IP")
            let port = try r.u16("server port")
            self = .ident(hash: hash, ip: ip, port: port, tags: try Tag.parseList(&r))
        case 0x1C: self = .callbackRequest(clientID: try r.u32("client ID"))
        case 0x35: self = .callbackRequested(ip: try r.u32("IP"), port: try r.u16("port"))
        case 0x14: self = .getServerList
        case 0x32:
            let count = Int(try r.u8("server count"))
            var servers: [(UInt32, UInt16)] = []
            for _ in 0..<count { servers.append((try r.u32("server IP"), try r.u16("server port"))) }
            self = .serverList(servers)
        default: self = .other(opcode: packet.opcode, payload: packet.payload)
        }
    }

    /// The packet (protocol 0xE3), tags new-style unless `oldTags`.
    public func packet(oldTags: Bool = false) -> EDonkeyPacket {
        var w = EDonkeyWriter()
        let newStyle = !oldTags
        switch self {
        case .login(let hash, let id, let port, let tags):
            w.raw(Array((hash + [UInt8](repeating: 0, count: 16)).prefix(16)))
            w.u32(id)
            w.u16(port)
            Tag.encodeList(tags, into: &w, newStyle: newStyle)
        case .serverMessage(let text): w.string(text)
        case .idChange(let id, let flags):
            w.u32(id)
            if let flags { w.u32(flags) }
        case .offerFiles(let files), .searchResults(let files, _):
            w.u32(UInt32(files.count))
            for file in files { file.encode(into: &w, newStyle: newStyle) }
            if case .searchResults(_, let more) = self { w.u8(more ? 1 : 0) }
        case .search(let expression): expression.encode(into: &w)
        case .getSources(let hash, let size):
            w.raw(Array((hash + [UInt8](repeating: 0, count: 16)).prefix(16)))
            if let size {
                if size > UInt64(UInt32.max) {
                    w.u32(0)
                    w.u64(size)
                } else {
                    w.u32(UInt32(size))
                }
            }
        case .foundSources(let hash, let sources):
            w.raw(Array((hash + [UInt8](repeating: 0, count: 16)).prefix(16)))
            let list = sources.prefix(Self.maxSources)
            w.u8(UInt8(list.count))
            for source in list {
                w.u32(source.id)
                w.u16(source.port)
            }
        case .status(let users, let files):
            w.u32(users)
            w.u32(files)
        case .ident(let hash, let ip, let port, let tags):
            w.raw(Array((hash + [UInt8](repeating: 0, count: 16)).prefix(16)))
            w.u32(ip)
            w.u16(port)
            Tag.encodeList(tags, into: &w, newStyle: newStyle)
        case .callbackRequest(let id): w.u32(id)
        case .callbackRequested(let ip, let port):
            w.u32(ip)
            w.u16(port)
        case .getServerList: break
        case .serverList(let servers):
            let list = servers.prefix(255)
            w.u8(UInt8(list.count))
            for server in list {
                w.u32(server.ip)
                w.u16(server.port)
            }
        case .other(_, let payload): w.raw(payload)
        }
        return EDonkeyPacket(.edonkey, opcode: opcode, payload: w.bytes)
    }
}

import EDonkey
import PeerNet
import TestSupport
import Testing

@Suite("ed2k hashes")
struct HashTests {
    @Test("MD4: RFC 1320's test suite")
    func md4() {
        let vectors: [(String, String)] = [
            ("", "31d6cfe0d16ae931b73c59d7e0c089c0"), ("a", "bde52cb31de33e46245e05fbdbd6fb24"),
            ("abc", "a448017aaf21d8525fc10ae87aa6729d"),
            ("message digest", "d9130a8164549fe818874806e1c7014b"),
            ("abcdefghijklmnopqrstuvwxyz", "d79e1c308aa5bbcdeea8ed63df412da9"),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "e33b4ddc9c38f2199c3e7b164fcc0536"
            ),
        ]
        for (text, digest) in vectors { #expect(MD4.hash(Array(text.utf8)) == hex(digest), "MD4(\(text))") }
    }

    /// Known answers from Debian's `ed2k_hash` (0.4.0), which agrees with eMule and aMule except
    /// for sizes that are exact multiples of the part size (below).
    @Test("file hashes as ed2k_hash computes them: one part, several parts, a part and one byte")
    func fileHashes() {
        func hash(_ bytes: [UInt8], chunked: Int = 1 << 20) -> [UInt8] {
            var hasher = ED2KHasher()
            var index = 0
            while index < bytes.count {
                hasher.update(Array(bytes[index..<min(index + chunked, bytes.count)]))
                index += chunked
            }
            return hasher.finalize().hash
        }
        #expect(hash(Array("abc".utf8)) == hex("a448017aaf21d8525fc10ae87aa6729d"))
        #expect(
            hash([UInt8](repeating: 0, count: 9_728_001), chunked: 777_777)
                == hex("06329e9dba1373512c06386fe29e3c65"))
        #expect(hash([UInt8](repeating: 0x78, count: 20_000_000)) == hex("087bb169809d33d5886ce4dd154dd97b"))
    }

    @Test("an exact multiple of 9,728,000 bytes gets eMule's extra empty part hash")
    func exactMultiple() {
        var hasher = ED2KHasher()
        hasher.update([UInt8](repeating: 0, count: 9_728_000))
        let (hash, parts) = hasher.finalize()
        // ed2k_hash's (the original eDonkey rule: the lone part's hash) is the first part hash;
        // eMule and aMule hash two: that one and MD4 of nothing.
        #expect(parts == [hex("d7def262a127cd79096a108e7a9fc138"), hex("31d6cfe0d16ae931b73c59d7e0c089c0")])
        #expect(hash == MD4.hash(parts[0] + parts[1]))
        #expect(hash == hex("fc21d9af828f92a8df64beac3357425d"))
    }
}

@Suite("ed2k links")
struct LinkTests {
    @Test("file, server and server-list links parse and print as eMule writes them")
    func parse() throws {
        let link = try ED2KLink(
            parsing: "ed2k://|file|free%20music%7Cmix.mp3|3000000|7a2cb0160f8aa887188c47a71f41fc28|/")
        guard case .file(let name, let size, let hash, nil, []) = link else {
            Issue.record("not a file link: \(link)")
            return
        }
        #expect(name == "free music|mix.mp3" && size == 3_000_000)
        #expect(hash == hex("7a2cb0160f8aa887188c47a71f41fc28"))
        #expect(
            link.description == "ed2k://|file|free music%7Cmix.mp3|3000000|7A2CB0160F8AA887188C47A71F41FC28|/"
        )
        #expect(try ED2KLink(parsing: link.description) == link)
        // ed2k_hash leaves off the final slash.
        #expect(try ED2KLink(parsing: "ed2k://|file|e1.bin|3|a448017aaf21d8525fc10ae87aa6729d|") != nil)
        let rich = try ED2KLink(
            parsing:
                "ed2k://|file|a.iso|12345|0123456789ABCDEF0123456789ABCDEF|h=ABCDEFGHIJKLMNOPQRSTUVWXYZ234567|/|sources,10.0.0.1:4662,10.0.0.2:4663|/"
        )
        guard case .file(_, _, _, let aich, let sources) = rich else {
            Issue.record("not a file link")
            return
        }
        #expect(aich == "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        #expect(sources == [Endpoint("10.0.0.1:4662")!, Endpoint("10.0.0.2:4663")!])
        #expect(try ED2KLink(parsing: rich.description) == rich)
        #expect(
            try ED2KLink(parsing: "ed2k://|server|192.168.7.1|4661|/")
                == .server(host: "192.168.7.1", port: 4661))
        #expect(
            try ED2KLink(parsing: "ed2k://|serverlist|http://example.invalid/server.met|/")
                == .serverList(url: "http://example.invalid/server.met"))
    }

    @Test("bad links are errors naming the field")
    func errors() {
        for (text, field) in [
            ("http://x", "scheme"), ("ed2k://|file|a|0|7a2cb0160f8aa887188c47a71f41fc28|/", "size"),
            ("ed2k://|file|a|10|7a2cb0|/", "hash"), ("ed2k://|server|host|x|/", "server"),
            ("ed2k://|nope|/", "type"),
        ] {
            #expect(throws: ED2KLinkError.self) { try ED2KLink(parsing: text) }
            do {
                _ = try ED2KLink(parsing: text)
            } catch {
                #expect(error.field == field, "\(text)")
            }
        }
    }
}

@Suite("eDonkey packets, tags and server messages")
struct WireTests {
    @Test("framing: header, bound checked on the header alone, packed payloads inflated")
    func framing() throws {
        let message = ServerMessage.serverMessage("welcome to the PeerStack server")
        let plain = message.packet().encoded()
        #expect(Array(plain.prefix(6)) == [0xE3, UInt8(plain.count - 5), 0, 0, 0, 0x38])
        var framer = EDonkeyFramer()
        framer.append(plain)
        #expect(try framer.next().map(ServerMessage.init) == message)
        // A packed packet (0xD4) of a long offer.
        let files = (0..<50).map { index in
            FileEntry(
                hash: [UInt8](repeating: UInt8(index), count: 16), clientID: 0xFBFB_FBFB, port: 0xFBFB,
                tags: [
                    EDonkey.Tag(.id(EDonkey.Tag.fileName), .string("file \(index).mp3")),
                    EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(1_000_000)),
                ])
        }
        let packed = ServerMessage.offerFiles(files).packet().encoded(pack: true)
        #expect(packed[0] == 0xD4)
        framer.append(packed)
        #expect(try framer.next().map(ServerMessage.init) == .offerFiles(files))
        // A 64 MiB length: refused before the payload.
        var hostile = EDonkeyFramer()
        hostile.append([0xE3, 0, 0, 0, 4, 0x15])
        #expect(throws: EDonkeyError.tooLarge(field: "packet", size: 64 << 20, limit: 512 * 1024)) {
            try hostile.next()
        }
    }

    @Test("tags old- and new-style, every type, decode to what was encoded")
    func tags() throws {
        let tags: [EDonkey.Tag] = [
            EDonkey.Tag(.id(EDonkey.Tag.fileName), .string("short")),
            EDonkey.Tag(.id(EDonkey.Tag.fileName), .string(String(repeating: "x", count: 40))),
            EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(200)),
            EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(60_000)),
            EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(4_000_000_000)),
            EDonkey.Tag(.id(EDonkey.Tag.fileSize), .uint(300_000_000_000)),
            EDonkey.Tag(.string("bitrate"), .uint(128)),
            EDonkey.Tag(.id(0x55), .float(1.5)), EDonkey.Tag(.id(0x56), .hash(Array(0..<16))),
            EDonkey.Tag(.id(0x57), .blob([1, 2, 3])),
            EDonkey.Tag(.id(0x58), .bool(true)),
        ]
        for newStyle in [true, false] {
            var writer = EDonkeyWriter()
            EDonkey.Tag.encodeList(tags, into: &writer, newStyle: newStyle)
            var reader = EDonkeyReader(writer.bytes)
            #expect(try EDonkey.Tag.parseList(&reader) == tags)
            #expect(reader.isAtEnd)
        }
        // Old-style FT_FILENAME written by hand: type 2, name length 1, 0x01, length 3, "abc".
        var reader = EDonkeyReader([2, 1, 0, 1, 3, 0] + Array("abc".utf8))
        #expect(try EDonkey.Tag.parse(&reader) == EDonkey.Tag(.id(EDonkey.Tag.fileName), .string("abc")))
        // A count of a million tags is refused before reading any.
        var absurd = EDonkeyReader([0x40, 0x42, 0x0F, 0x00])
        #expect(throws: EDonkeyError.tooLarge(field: "tag list", size: 1_000_000, limit: 256)) {
            try EDonkey.Tag.parseList(&absurd)
        }
    }

    @Test("search expressions: boolean trees and constraints; a deep tree is refused")
    func search() throws {
        let expression = SearchExpression.and(
            .and(.term("free"), .term("music")),
            .or(
                .meta(value: "Audio", tag: .id(EDonkey.Tag.fileType)),
                .not(
                    .numeric(value: 1_000_000, comparison: .greater, tag: .id(EDonkey.Tag.fileSize)),
                    .term("live"))))
        let message = ServerMessage.search(expression)
        #expect(try ServerMessage(message.packet()) == message)
        #expect(SearchExpression.words("a b c") == .and(.and(.term("a"), .term("b")), .term("c")))
        // 1,000 nested ANDs.
        var deep: [UInt8] = []
        for _ in 0..<1_000 { deep += [0, 0] }
        var reader = EDonkeyReader(deep)
        #expect(throws: EDonkeyError.self) { try SearchExpression.parse(&reader) }
    }

    @Test("every server message survives a round trip")
    func messages() throws {
        let hash = [UInt8](repeating: 0xAB, count: 16)
        let messages: [ServerMessage] = [
            .login(
                userHash: hash, clientID: 0, port: 4662,
                tags: [EDonkey.Tag(.id(0x01), .string("peerstack")), EDonkey.Tag(.id(0x11), .uint(0x3C))]),
            .serverMessage("hi"), .idChange(clientID: 0x0100_007F, flags: 0x0000_0719),
            .idChange(clientID: 5, flags: nil),
            .offerFiles([]),
            .searchResults([FileEntry(hash: hash, clientID: 1, port: 2, tags: [])], more: true),
            .getSources(hash: hash, size: 12_345), .getSources(hash: hash, size: 300_000_000_000),
            .foundSources(hash: hash, sources: [(0x0A00_0001, 4662), (7, 8)]), .status(users: 3, files: 40),
            .ident(
                hash: hash, ip: 0x0100_A8C0, port: 4661,
                tags: [EDonkey.Tag(.id(0x01), .string("PeerStack server"))]),
            .callbackRequest(clientID: 9), .callbackRequested(ip: 1, port: 2), .getServerList,
            .serverList([(0x0100_A8C0, 4661)]), .other(opcode: 0x99, payload: [1, 2]),
        ]
        for message in messages {
            #expect(try ServerMessage(message.packet()) == message, "\(message.opcode)")
            #expect(try ServerMessage(message.packet(oldTags: true)) == message, "\(message.opcode) old tags")
        }
    }

    @Test("random bytes never trap any parser")
    func totality() {
        var random = SeededGenerator(state: 23)
        for round in 0..<3_000 {
            let count = Int.random(in: 0..<160, using: &random)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            var framer = EDonkeyFramer()
            framer.append([[0xE3, 0xC5, 0xD4][round % 3]] + [UInt8(count & 0xFF), 0, 0, 0] + bytes)
            while let packet = try? framer.next() { _ = try? ServerMessage(packet) }
            for opcode: UInt8 in [0x01, 0x15, 0x16, 0x19, 0x33, 0x41, 0x42] {
                _ = try? ServerMessage(EDonkeyPacket(opcode: opcode, payload: bytes))
            }
            var reader = EDonkeyReader(bytes)
            _ = try? EDonkey.Tag.parseList(&reader, countBytes: 1)
            _ = try? ED2KLink(parsing: "ed2k://|file|" + String(decoding: bytes, as: UTF8.self))
        }
    }
}

@Suite("Client-to-client messages")
struct ClientMessageTests {
    @Test("every message survives a round trip; bad part ranges are refused")
    func roundTrips() throws {
        let hash = [UInt8](repeating: 0x5C, count: 16)
        let messages: [ClientMessage] = [
            .hello(
                userHash: hash, clientID: 0x0100_007F, port: 4662,
                tags: [EDonkey.Tag(.id(0x01), .string("x"))],
                serverIP: 0x0100_A8C0, serverPort: 4661),
            .helloAnswer(userHash: hash, clientID: 5, port: 4662, tags: [], serverIP: 0, serverPort: 0),
            .requestFileName(hash: hash), .fileNameAnswer(hash: hash, name: "a b.ogg"),
            .noSuchFile(hash: hash),
            .setRequestedFile(hash: hash), .fileStatus(hash: hash, parts: 0, bitmap: []),
            .fileStatus(hash: hash, parts: 12, bitmap: [0xFF, 0x0F]), .hashSetRequest(hash: hash),
            .hashSetAnswer(hash: hash, parts: [hash, hash, hash]), .startUploadRequest(hash: hash),
            .acceptUpload,
            .cancelTransfer, .outOfPartRequests, .queueRank(17),
            .requestParts(hash: hash, ranges: [(0, 184_320), (184_320, 368_640)]),
            .sendingPart(hash: hash, start: 10, end: 14, data: [1, 2, 3, 4]),
            .compressedPart(hash: hash, start: 0, packedLength: 3, data: [9, 9, 9]),
        ]
        for message in messages {
            var framer = EDonkeyFramer(unpackedProtocol: .emule)
            framer.append(message.packet().encoded())
            let packet = try #require(try framer.next())
            #expect(try ClientMessage(packet) == message)
        }
        // eMule's opcodes.h: OP_CANCELTRANSFER 0x56 (the downloader), OP_OUTOFPARTREQS 0x57 (the uploader).
        #expect(ClientMessage.cancelTransfer.packet().opcode == 0x56)
        #expect(ClientMessage.outOfPartRequests.packet().opcode == 0x57)
        #expect(ClientMessage.requestParts(hash: hash, ranges: []).packet().opcode == 0x47)
        // A part whose range does not match its bytes.
        var writer = EDonkeyWriter()
        writer.raw(hash)
        writer.u32(0)
        writer.u32(100)
        writer.raw([1, 2, 3])
        #expect(throws: EDonkeyError.self) {
            try ClientMessage(EDonkeyPacket(opcode: 0x46, payload: writer.bytes))
        }
    }
}

import Gnutella
import PeerNet
import TestSupport
import Testing

private let guid = GUID(Array(0..<16))!
private let servent = GUID(random: Array(100..<116))

@Suite("Gnutella descriptors")
struct DescriptorTests {
    @Test("the 23-byte header, little-endian length (0.6 section 2.2.2)")
    func header() throws {
        let header = DescriptorHeader(guid: guid, type: .query, ttl: 7, hops: 0, payloadLength: 0x0102)
        #expect(header.encoded() == Array(0..<16) + [0x80, 7, 0, 0x02, 0x01, 0, 0])
        #expect(try DescriptorHeader(parsing: header.encoded()) == header)
    }

    @Test("a payload length over 64 KiB is refused from the header alone")
    func oversizedPayload() {
        var framer = DescriptorFramer()
        framer.append(guid.bytes + [0x80, 7, 0] + [0, 0, 0x10, 0])  // 1 MiB
        #expect(throws: GnutellaError.tooLarge(field: "descriptor payload", size: 1 << 20, limit: 65536)) {
            try framer.next()
        }
        #expect(framer.buffered == 23)
    }

    @Test("every payload type survives encode then decode")
    func roundTrips() throws {
        let endpoint = Endpoint(ip: IPAddress(v4: 0x7F00_0001), port: 6346)
        let ggep = GGEPBlock([.init(id: "DU", data: [0x10, 0x0E]), .init(id: "UP", data: [1, 30, 4])])
        let sha1 = SHA1URN.string([UInt8](repeating: 0xAB, count: 20))
        let payloads: [Descriptor.Payload] = [
            .ping(Ping()),
            .ping(Ping(ggep: GGEPBlock([.init(id: "SCP", data: [])]))),
            .pong(Pong(endpoint: endpoint, files: 12, kilobytes: 3_400)),
            .pong(Pong(endpoint: endpoint, files: 0, kilobytes: 0, ggep: ggep)),
            .bye(Bye(code: 200, message: "Shutting down")),
            .push(Push(servent: servent, index: 7, endpoint: endpoint)),
            .query(Query(text: "free music")),
            .query(
                Query(
                    text: "", flags: Query.flagsPresent | Query.ggepH,
                    extensions: ExtensionBlock(
                        urns: [sha1], ggep: GGEPBlock([.init(id: "H", data: [1] + Array(0..<20))])))),
            .queryHit(
                QueryHit(
                    endpoint: endpoint, speed: 1_000,
                    results: [
                        .init(
                            index: 1, size: 4_096, name: "song one.mp3",
                            extensions: ExtensionBlock(urns: [sha1])),
                        .init(index: 2, size: 10, name: "readme.txt"),
                    ],
                    trailer: .init(
                        vendor: "PSTK", push: false, busy: true, uploaded: false, measuredSpeed: true,
                        ggep: ggep),
                    servent: servent)),
            .queryHit(QueryHit(endpoint: endpoint, speed: 0, results: [], trailer: nil, servent: servent)),
            .routeTableUpdate(.reset(tableLength: 65_536, infinity: 7)),
            .routeTableUpdate(.patch(sequence: 1, count: 2, compressor: 1, entryBits: 4, data: [1, 2, 3])),
        ]
        for payload in payloads {
            let descriptor = Descriptor(guid: guid, ttl: 4, hops: 3, payload)
            let bytes = descriptor.encoded()
            let decoded = try Descriptor(parsing: bytes)
            #expect(decoded.payload == payload)
            #expect(decoded.header.ttl == 4 && decoded.header.hops == 3)
            #expect(decoded.encoded() == bytes)
        }
    }

    @Test("a stream split anywhere yields the same descriptors")
    func framing() throws {
        let descriptors = (0..<5).map {
            Descriptor(
                guid: GUID(random: [UInt8]($0..<($0 + 16))), ttl: 7, .query(Query(text: "words \($0)"))
            ).encoded()
        }
        let stream = Array(descriptors.joined())
        for cut in [1, 7, 23, 24, 40] {
            var framer = DescriptorFramer()
            var out: [[UInt8]] = []
            var index = 0
            while index < stream.count {
                framer.append(Array(stream[index..<min(index + cut, stream.count)]))
                index += cut
                while let next = try framer.next() { out.append(next.encoded()) }
            }
            #expect(out == descriptors)
        }
    }

    @Test("the query hit descriptor's flags are in LimeWire's byte order")
    func queryHitTrailer() throws {
        let hit = QueryHit(
            endpoint: Endpoint(ip: IPAddress(v4: 0x0A00_0001), port: 6346), speed: 56, results: [],
            trailer: .init(vendor: "LIME", push: true, busy: false, uploaded: true, measuredSpeed: nil),
            servent: servent)
        let bytes = hit.encoded()
        // count, port, ip, speed, then vendor "LIME", open data size 2, flags then controls.
        #expect(Array(bytes[0..<11]) == [0, 0xCA, 0x18, 10, 0, 0, 1, 56, 0, 0, 0])
        #expect(Array(bytes[11..<18]) == Array("LIME".utf8) + [2, 0x01 | 0x04 | 0x08, 0x01 | 0x08])
        #expect(Array(bytes[18...]) == servent.bytes)
    }

    @Test("the SHA-1 URN of the empty file (HUGE 0.94)")
    func sha1URN() {
        let empty = hex("da39a3ee5e6b4b0d3255bfef95601890afd80709")
        #expect(SHA1URN.string(empty) == "urn:sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ")
        #expect(SHA1URN.parse("URN:SHA1:3i42h3s6nnfq2msvx7xzkyayscx5qbyj") == empty)
        #expect(SHA1URN.parse("urn:sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBY1") == nil)
        #expect(SHA1URN.parse("urn:bitprint:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ") == nil)
    }

    @Test("truncated and malformed payloads are typed errors naming the field")
    func errors() {
        #expect(throws: GnutellaError.truncated(field: "pong shared kilobytes", offset: 10)) {
            try Pong(parsing: [0xCA, 0x18, 127, 0, 0, 1, 0, 0, 0, 0, 1])
        }
        #expect(throws: GnutellaError.truncated(field: "query text (no NUL)", offset: 2)) {
            try Query(parsing: [0, 0x80] + Array("no terminator".utf8))
        }
        #expect(
            throws: GnutellaError.invalid(
                field: "route table variant", offset: 0, reason: "2 is neither RESET (0) nor PATCH (1)")
        ) {
            try RouteTableUpdate(parsing: [2])
        }
    }

    @Test("random bytes never trap any parser")
    func totality() {
        var random = SeededGenerator(state: 17)
        for round in 0..<3_000 {
            let count = Int.random(in: 0..<200, using: &random)
            var bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &random) }
            // Half the rounds look like a GGEP block or a descriptor, to get past the first checks.
            if round % 2 == 0, !bytes.isEmpty { bytes[0] = GGEPBlock.magic }
            _ = try? GGEPBlock(parsing: bytes)
            _ = try? Descriptor(
                parsing: guid.bytes + [UInt8(round % 3 == 0 ? 0x81 : 0x80), 7, 0] + le32(bytes.count) + bytes)
            for type in PayloadType.allCases {
                _ = try? Descriptor(
                    header: DescriptorHeader(guid: guid, type: type, ttl: 1, payloadLength: bytes.count),
                    payload: bytes)
            }
            _ = try? HandshakeMessage.parse(Array("GNUTELLA/0.6 200 OK\r\n".utf8) + bytes + [13, 10, 13, 10])
            _ = try? COBS.decode(bytes)
            _ = try? Zlib.decompress(bytes, limit: 1 << 16)
        }
    }
}

private func le32(_ value: Int) -> [UInt8] {
    (0..<4).map { UInt8(truncatingIfNeeded: value >> ($0 * 8)) }
}

@Suite("GGEP and COBS")
struct GGEPTests {
    @Test("one extension: flags (last, ID length 2), ID, one length byte, data (GGEP 0.51)")
    func layout() throws {
        let block = GGEPBlock([.init(id: "DU", data: [1, 2])])
        #expect(block.encoded() == [0xC3, 0x82, 0x44, 0x55, 0x42, 1, 2])
        #expect(try GGEPBlock(parsing: [0xC3, 0x82, 0x44, 0x55, 0x42, 1, 2]) == block)
    }

    @Test("lengths of 1, 2 and 3 bytes, 6 bits each")
    func lengths() throws {
        for size in [0, 63, 64, 4_095, 4_096, 70_000] {
            let data = SeededGenerator.bytes(size, seed: UInt64(size))
            let block = GGEPBlock([.init(id: "X", data: data), .init(id: "LONGER-ID", data: [9])])
            let bytes = block.encoded()
            let lengthBytes = size < 64 ? 1 : size < 4_096 ? 2 : 3
            #expect(bytes.count == 1 + 2 + lengthBytes + size + 1 + 9 + 1 + 1)
            #expect(try GGEPBlock(parsing: bytes) == block)
        }
    }

    @Test("deflated and COBS-encoded data decode to the original")
    func encodings() throws {
        let data = [UInt8](repeating: 0, count: 300) + Array("text".utf8)
        let block = GGEPBlock([.init(id: "Z", data: data, compress: true, cobs: true)])
        let bytes = block.encoded()
        #expect(!bytes.dropFirst(3).contains(0))
        #expect(bytes[1] == 0x80 | 0x40 | 0x20 | 1)
        #expect(try GGEPBlock(parsing: bytes) == block)
    }

    @Test("a reserved flag bit, a zero-length ID, a bad length byte are refused")
    func malformed() {
        #expect(throws: GnutellaError.self) { try GGEPBlock(parsing: [0xC3, 0x92, 0x44, 0x55, 0x40]) }
        #expect(throws: GnutellaError.self) { try GGEPBlock(parsing: [0xC3, 0x80, 0x40]) }
        #expect(throws: GnutellaError.self) { try GGEPBlock(parsing: [0xC3, 0x81, 0x44, 0xC0]) }
        #expect(throws: GnutellaError.self) {
            try GGEPBlock(parsing: [0xC3, 0x81, 0x44, 0x80, 0x80, 0x80, 0x41])
        }
    }

    @Test("a deflate bomb stops at the bound")
    func bomb() {
        let bomb = GGEPBlock([.init(id: "B", data: [UInt8](repeating: 0, count: 1 << 20), compress: true)])
        #expect(throws: GnutellaError.self) { try GGEPBlock(parsing: bomb.encoded()) }
    }

    @Test("COBS: Cheshire and Baker's examples")
    func cobs() throws {
        let cases: [([UInt8], [UInt8])] = [
            ([0x00], [0x01, 0x01]),
            ([0x00, 0x00], [0x01, 0x01, 0x01]),
            ([0x11, 0x22, 0x00, 0x33], [0x03, 0x11, 0x22, 0x02, 0x33]),
            ([0x11, 0x22, 0x33, 0x44], [0x05, 0x11, 0x22, 0x33, 0x44]),
            ([0x11, 0x00, 0x00, 0x00], [0x02, 0x11, 0x01, 0x01, 0x01]),
            (Array(1...254), [0xFF] + Array(1...254)),
            ([0] + Array(1...254), [0x01, 0xFF] + Array(1...254)),
            (Array(1...255), [0xFF] + Array(1...254) + [0x02, 0xFF]),
        ]
        for (plain, encoded) in cases {
            #expect(COBS.encode(plain) == encoded)
            #expect(try COBS.decode(encoded) == plain)
        }
    }
}

@Suite("The 0.6 handshake's messages")
struct HandshakeMessageTests {
    @Test("the spec's connect request, with a folded header and LF-only line ends")
    func parse() throws {
        let text =
            "GNUTELLA CONNECT/0.6\r\nUser-Agent: BearShare/1.0\r\nX-Ultrapeer: False\r\n"
            + "Accept-Encoding: deflate\r\nX-Try-Ultrapeers: 1.2.3.4:6346,\r\n 5.6.7.8:6347\r\n\r\nrest"
        let (message, used) = try #require(try HandshakeMessage.parse(Array(text.utf8)))
        #expect(used == text.utf8.count - 4)
        #expect(message.isConnectRequest)
        #expect(message["user-agent"] == "BearShare/1.0")
        #expect(message["X-TRY-ULTRAPEERS"] == "1.2.3.4:6346, 5.6.7.8:6347")
        #expect(message.tokens("Accept-Encoding") == ["deflate"])
        let lax = try #require(
            try HandshakeMessage.parse(Array("GNUTELLA/0.6 503 Full\nX-Ultrapeer: True\n\n".utf8)))
        #expect(lax.0.code == 503)
        #expect(lax.0["x-ultrapeer"] == "True")
    }

    @Test("incomplete, oversized and foreign handshakes")
    func bounds() throws {
        #expect(try HandshakeMessage.parse(Array("GNUTELLA CONNECT/0.6\r\nUser-Agent: x\r\n".utf8)) == nil)
        let flood = Array("GNUTELLA CONNECT/0.6\r\n".utf8) + [UInt8](repeating: 0x41, count: 20_000)
        #expect(throws: GnutellaError.self) { try HandshakeMessage.parse(flood) }
        #expect(throws: GnutellaError.self) {
            try HandshakeMessage.parse(Array("GET / HTTP/1.1\r\n\r\n".utf8))
        }
    }

    @Test("encode then parse")
    func roundTrip() throws {
        let message = HandshakeMessage(
            code: 200, reason: "OK", headers: [("Content-Encoding", "deflate"), ("X-Ultrapeer", "True")])
        #expect(try HandshakeMessage.parse(message.encoded())?.0 == message)
    }
}

@Suite("HTTP transfer requests")
struct TransferRequestTests {
    @Test("by URN and by index, with a range and alternate locations; the request encodes to itself")
    func parse() throws {
        let text =
            "GET /uri-res/N2R?urn:sha1:3I42H3S6NNFQ2MSVX7XZKYAYSCX5QBYJ HTTP/1.1\r\nHost: x\r\n"
            + "Range: bytes=100-\r\nX-Alt: 10.0.0.1:6346, 10.0.0.2:6347,junk\r\n\r\n"
        let (head, _) = try #require(try HandshakeMessage.parseHTTP(Array(text.utf8)))
        let request = try TransferRequest.parse(head)
        #expect(request.target == .sha1(hex("da39a3ee5e6b4b0d3255bfef95601890afd80709")))
        #expect(request.range?.start == 100 && request.range?.end == nil)
        #expect(request.alternates == [Endpoint("10.0.0.1:6346")!, Endpoint("10.0.0.2:6347")!])
        let byIndex = TransferRequest(target: .index(7, name: "a b&c.mp3"), range: (0, 99))
        let (again, _) = try #require(
            try HandshakeMessage.parseHTTP(byIndex.encoded(host: "h", userAgent: "u")))
        #expect(try TransferRequest.parse(again) == byIndex)
        #expect(throws: GnutellaError.self) {
            try TransferRequest.parse(HandshakeMessage(startLine: "GET /etc/passwd HTTP/1.1"))
        }
        #expect(throws: GnutellaError.self) {
            try TransferRequest.parse(
                HandshakeMessage(startLine: "GET /get/1/a HTTP/1.1", headers: [("Range", "bytes=9-2")]))
        }
    }
}

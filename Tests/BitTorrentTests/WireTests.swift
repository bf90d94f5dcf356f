import Bencode
import NIOCore
import PeerNet
import Testing

@testable import BitTorrent

@Suite("Peer wire, extension and tracker codecs")
struct WireTests {
    @Test(
        "every message round-trips through the codec, with BEP 3's byte layout",
        arguments: [
            PeerMessage.keepAlive, .choke, .unchoke, .interested, .notInterested, .have(piece: 7),
            .bitfield([0xFF, 0x80]), .request(BlockRequest(piece: 1, offset: 16_384, length: 16_384)),
            .piece(piece: 2, offset: 0, data: [1, 2, 3]),
            .cancel(BlockRequest(piece: 1, offset: 0, length: 16_384)),
            .port(6881), .suggest(piece: 3), .haveAll, .haveNone,
            .reject(BlockRequest(piece: 0, offset: 0, length: 1)),
            .allowedFast(piece: 9), .extended(id: 0, payload: Array("de".utf8)),
        ])
    func roundTrip(message: PeerMessage) throws {
        let frame = PeerWireCodec.encode(message)
        let length = Int(PeerWireCodec.readUInt32(frame[...], 0))
        #expect(length == frame.count - 4)
        #expect(try PeerWireCodec.decode(frame[4...]) == message)
    }

    @Test("known bytes: have 7 and a request")
    func knownBytes() {
        #expect(PeerWireCodec.encode(.have(piece: 7)) == [0, 0, 0, 5, 4, 0, 0, 0, 7])
        #expect(
            PeerWireCodec.encode(.request(BlockRequest(piece: 1, offset: 2, length: 3)))
                == [0, 0, 0, 13, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3])
    }

    @Test("payloads of the wrong size are typed errors; unknown IDs are kept to be ignored")
    func badFrames() throws {
        #expect(throws: PeerWireError.badLength(message: "have", length: 3)) {
            try PeerWireCodec.decode([4, 0, 0, 1][...])
        }
        #expect(throws: PeerWireError.badLength(message: "piece", length: 4)) {
            try PeerWireCodec.decode([7, 0, 0, 0, 1][...])
        }
        #expect(try PeerWireCodec.decode([99, 1, 2][...]) == PeerMessage.unknown(id: 99))
    }

    @Test("whole frames on ByteBuffer: a block is a slice of the frame, limits are checked first")
    func frames() throws {
        var frame = ByteBuffer()
        PeerWireCodec.encode(.piece(piece: 3, offset: 16_384, data: [9, 8, 7]), into: &frame)
        #expect(
            frame.readableBytes == PeerWireCodec.frameLength(.piece(piece: 3, offset: 0, data: [0, 0, 0])))
        guard
            case .block(let piece, let offset, let data) = try PeerWireCodec.decodeFrame(frame, maxLength: 64)
        else {
            Issue.record("a piece frame did not decode as a block")
            return
        }
        #expect(piece == 3 && offset == 16_384 && Array(data.readableBytesView) == [9, 8, 7])
        #expect(data.readerIndex == frame.readerIndex + 13)  // a view into the frame, not a copy
        #expect(throws: PeerWireError.frameTooLong(length: 12, limit: 11)) {
            try PeerWireCodec.decodeFrame(frame, maxLength: 11)
        }
        var have = ByteBuffer()
        PeerWireCodec.encode(.have(piece: 7), into: &have)
        #expect(try PeerWireCodec.decodeFrame(have, maxLength: 64) == .message(.have(piece: 7)))
        have.moveWriterIndex(to: have.writerIndex - 1)
        #expect(throws: PeerWireError.badLength(message: "frame", length: 8)) {
            try PeerWireCodec.decodeFrame(have, maxLength: 64)
        }
    }

    @Test("bitfields must be exactly sized with spare bits clear")
    func bitfields() {
        #expect(Bitfield(bytes: [0xFF, 0xC0], count: 10)?.setCount == 10)
        #expect(Bitfield(bytes: [0xFF, 0xE0], count: 10) == nil)
        #expect(Bitfield(bytes: [0xFF], count: 10) == nil)
        #expect(Bitfield(count: 10, allSet: true).bytes == [0xFF, 0xC0])
    }

    @Test("handshake layout and reserved bits (BEP 3, 6, 10)")
    func handshake() throws {
        var reserved = ReservedBits()
        reserved.extensionProtocol = true
        reserved.fastExtension = true
        let hash = try #require(InfoHash("7b5e918f364908afab937ecdd84059dfb61102b7"))
        let bytes = Handshake(reserved: reserved, infoHash: hash, peerID: [UInt8](repeating: 65, count: 20))
            .encoded()
        #expect(bytes.count == 68)
        #expect(Array(bytes[20..<28]) == [0, 0, 0, 0, 0, 0x10, 0, 0x04])
        #expect(try Handshake(decoding: bytes).infoHash == hash)
        #expect(throws: PeerWireError.notBitTorrent) {
            try Handshake(decoding: [UInt8](repeating: 0, count: 68))
        }
    }

    @Test("extension handshake, ut_metadata and ut_pex payloads")
    func extensions() throws {
        let handshake = ExtensionHandshake(
            messageIDs: ["ut_metadata": 3, "ut_pex": 1], client: "x", listenPort: 6881,
            requestQueueLength: 250,
            metadataSize: 1_000)
        #expect(try ExtensionHandshake(decoding: handshake.encoded()) == handshake)
        let data = MetadataMessage.data(piece: 0, totalSize: 5, bytes: [1, 2, 3, 4, 5])
        #expect(try MetadataMessage(decoding: data.encoded()) == data)
        #expect(throws: PeerWireError.self) {
            try MetadataMessage(decoding: Array("d8:msg_typei1e5:piecei0e10:total_sizei99999999eee".utf8))
        }
        let pex = PEXMessage(added: [Endpoint("127.0.0.1:6881")!, Endpoint("[::1]:7000")!])
        #expect(try PEXMessage(decoding: pex.encoded()).added == pex.added)
    }

    @Test("addresses: text, compact form (BEP 23, 7)")
    func addresses() {
        #expect(Endpoint("10.0.0.1:80")?.compact == [10, 0, 0, 1, 0, 80])
        #expect(Endpoint("[::1]:80")?.description == "[::1]:80")
        #expect(Endpoint("1.2.3:4") == nil)
        #expect(
            Endpoint.parseCompact([127, 0, 0, 1, 0x1A, 0xE1, 9], ipLength: 4) == [
                Endpoint("127.0.0.1:6881")!
            ])
    }

    @Test("HTTP tracker query and replies (BEP 3, 23, 7)")
    func httpTracker() throws {
        let hash = try #require(InfoHash("7b5e918f364908afab937ecdd84059dfb61102b7"))
        var request = AnnounceRequest(infoHash: hash, peerID: Array("-PS0100-abcdefghijkl".utf8), port: 6881)
        request.event = .started
        let query = HTTPTrackerCodec.query(for: request, existingQuery: "passkey=1")
        #expect(query.hasPrefix("passkey=1&info_hash=%7B%5E%91%8F6I%08%AF%AB%93~%CD%D8%40Y%DF%B6%11%02%B7&"))
        #expect(query.contains("&event=started") && query.contains("&compact=1"))
        let reply: BencodeValue = [
            "interval": 1_800, "min interval": 60, "complete": 2, "incomplete": 3,
            "peers": .bytes([127, 0, 0, 1, 0x1A, 0xE1]),
            "peers6": .bytes([UInt8](repeating: 0, count: 15) + [1, 0, 80]),
        ]
        let response = try HTTPTrackerCodec.parse(reply.encoded())
        #expect(response.peers.map(\.description) == ["127.0.0.1:6881", "[::1]:80"])
        #expect(response.interval == 1_800 && response.minInterval == 60 && response.seeders == 2)
        #expect(throws: TrackerError.failure("unregistered torrent")) {
            try HTTPTrackerCodec.parse((["failure reason": "unregistered torrent"] as BencodeValue).encoded())
        }
    }

    @Test("UDP tracker packets (BEP 15): layout, transaction check, errors, short packets")
    func udpTracker() throws {
        let connect = UDPTrackerCodec.connectRequest(transaction: 0x0102_0304)
        #expect(connect == [0, 0, 4, 0x17, 0x27, 0x10, 0x19, 0x80, 0, 0, 0, 0, 1, 2, 3, 4])
        let reply: [UInt8] = [0, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9, 9, 9, 9, 9, 9]
        #expect(try UDPTrackerCodec.parseConnect(reply, transaction: 0x0102_0304) == 0x0909_0909_0909_0909)
        #expect(throws: TrackerError.self) { try UDPTrackerCodec.parseConnect(reply, transaction: 5) }
        #expect(throws: TrackerError.failure("nope")) {
            try UDPTrackerCodec.parseConnect(
                [0, 0, 0, 3, 1, 2, 3, 4] + Array("nope".utf8), transaction: 0x0102_0304)
        }
        let hash = try #require(InfoHash("7b5e918f364908afab937ecdd84059dfb61102b7"))
        let announce = UDPTrackerCodec.announceRequest(
            AnnounceRequest(infoHash: hash, peerID: [UInt8](repeating: 1, count: 20), port: 6881),
            connection: 7,
            transaction: 9, urlData: "/announce")
        #expect(announce.count == 98 + 2 + 9)
        let answer: [UInt8] = [
            0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 7, 8, 0, 0, 0, 1, 0, 0, 0, 2, 127, 0, 0, 1, 0x1A, 0xE1, 5,
        ]
        let parsed = try UDPTrackerCodec.parseAnnounce(answer, transaction: 9, ipv6: false)
        #expect(parsed.interval == 1_800 && parsed.leechers == 1 && parsed.seeders == 2)
        #expect(parsed.peers == [Endpoint("127.0.0.1:6881")!])
        #expect(throws: TrackerError.self) {
            try UDPTrackerCodec.parseAnnounce([0, 0, 0, 1], transaction: 9, ipv6: false)
        }
    }
}

@Suite("Tracker scrape codecs (BEP 48, BEP 15)")
struct ScrapeCodecTests {
    @Test("the scrape URL follows the announce URL convention")
    func scrapeURL() {
        #expect(HTTPTrackerCodec.scrapeURL(forAnnounce: "http://t:1/announce") == "http://t:1/scrape")
        #expect(
            HTTPTrackerCodec.scrapeURL(forAnnounce: "http://t/x/announce.php?k=1")
                == "http://t/x/scrape.php?k=1")
        #expect(HTTPTrackerCodec.scrapeURL(forAnnounce: "http://t/a") == nil)
    }

    @Test("scrape replies, HTTP and UDP")
    func replies() throws {
        let hash = try #require(InfoHash("7b5e918f364908afab937ecdd84059dfb61102b7"))
        let http: BencodeValue = .dictionary([
            Array("files".utf8): .dictionary([hash.bytes: ["complete": 3, "downloaded": 9, "incomplete": 1]])
        ])
        #expect(
            try HTTPTrackerCodec.parseScrape(http.encoded())[hash]
                == ScrapeStats(seeders: 3, completed: 9, leechers: 1))
        let packet: [UInt8] = [0, 0, 0, 2, 0, 0, 0, 5, 0, 0, 0, 3, 0, 0, 0, 9, 0, 0, 0, 1]
        #expect(
            try UDPTrackerCodec.parseScrape(packet, transaction: 5, infoHashes: [hash])[hash]
                == ScrapeStats(seeders: 3, completed: 9, leechers: 1))
        #expect(UDPTrackerCodec.scrapeRequest([hash], connection: 1, transaction: 5).count == 36)
    }
}

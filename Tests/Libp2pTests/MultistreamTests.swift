import Libp2p
import Testing

@Suite("multistream-select 1.0")
struct MultistreamTests {
    @Test("the wire format: a varint length counting the newline (the spec's header is 0x13 …)")
    func wire() throws {
        let header = Multistream.encode("/multistream/1.0.0")
        #expect(header == [0x13] + Array("/multistream/1.0.0\n".utf8))
        var reader = MultistreamReader()
        // Byte by byte, then two messages and the first bytes of the protocol in one read.
        var lines: [String] = []
        for byte in header { lines += try reader.feed([byte]) }
        #expect(lines == ["/multistream/1.0.0"])
        #expect(
            try reader.feed(Multistream.encode("/noise") + Multistream.encode("na") + [5, 0x68]) == [
                "/noise", "na",
            ])
        #expect(reader.remainder == [5, 0x68])  // a message cut short waits for the rest
    }

    @Test("a dialler and a listener agree on the first protocol they share, after an na")
    func negotiate() throws {
        var dialer = MultistreamDialer(protocols: ["/tls/1.0.0", "/noise"])
        var listener = MultistreamListener(supported: ["/noise"])
        var toListener = dialer.start()
        var selectedByListener: String?
        var selectedByDialer: String?
        for _ in 0..<4 where selectedByDialer == nil {
            var toDialer: [UInt8] = []
            for event in try listener.receive(toListener) {
                switch event {
                case .send(let bytes): toDialer += bytes
                case .selected(let name): selectedByListener = name
                }
            }
            toListener = []
            for event in try dialer.receive(toDialer) {
                switch event {
                case .send(let bytes): toListener += bytes
                case .selected(let name): selectedByDialer = name
                }
            }
        }
        #expect(selectedByDialer == "/noise" && selectedByListener == "/noise")
    }

    @Test("ls lists the listener's protocols; hostile input gets typed errors")
    func listingAndHostile() throws {
        var listener = MultistreamListener(supported: ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"])
        let events = try listener.receive(Multistream.encode(Multistream.header) + Multistream.encode("ls"))
        #expect(events.count == 2)
        guard case .send(let listing) = events[1] else {
            Issue.record("no listing")
            return
        }
        var outer = MultistreamReader(limit: Multistream.maxListing)
        let body = try #require(try outer.feed(listing).first)
        var inner = MultistreamReader()
        #expect(try inner.feed(Array(body.utf8)) == ["/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"])

        var other = MultistreamListener(supported: [])
        #expect(throws: MultistreamError.wrongHeader("/multistream/2.0.0")) {
            try other.receive(Multistream.encode("/multistream/2.0.0"))
        }
        var reader = MultistreamReader()
        #expect(throws: MultistreamError.lineTooLong(5_000)) { try reader.feed([0x88, 0x27]) }
        // A length varint that is not in its shortest form is refused at once, not waited on.
        var overlong = MultistreamReader()
        #expect(throws: MultistreamError.malformed("a bad length varint")) {
            try overlong.feed([0x80, 0x00])
        }
        var cut = MultistreamReader()
        #expect(try cut.feed([0x80]) == [])
        var noNewline = MultistreamReader()
        #expect(throws: MultistreamError.self) { try noNewline.feed([0x02, 0x41, 0x42]) }
        var spammed = MultistreamListener(supported: [])
        #expect(throws: MultistreamError.tooManyMessages) {
            try spammed.receive(
                Multistream.encode(Multistream.header) + (0..<40).flatMap { Multistream.encode("/p/\($0)") })
        }
        var dialer = MultistreamDialer(protocols: ["/a"])
        _ = dialer.start()
        #expect(throws: MultistreamError.noProtocol(["/a"])) {
            try dialer.receive(Multistream.encode(Multistream.header) + Multistream.encode("na"))
        }
        // Any bytes: lines or a typed error, never a trap.
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var fuzz = MultistreamReader()
            _ = try? fuzz.feed(
                (0..<Int.random(in: 0...40, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                })
        }
    }
}

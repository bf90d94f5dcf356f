import IPFS
import Multiformats
import Testing

@Suite("Bitswap messages")
struct BitswapMessageTests {
    /// Serialised by Google's protobuf 6.33 (Python) from boxo's `message.proto`: a want-have
    /// with send-dont-have and priority 10 for CIDv1 raw("hello"), a cancel with priority −1
    /// for CIDv0(sha256("world")), the 1.1.0 payload of "hello", a DONT_HAVE presence, and 1234
    /// pending bytes.
    static let python = hex(
        "0a610a2c0a24015512202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824100a200128010a310a22"
            + "1220486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a710ffffffffffffffffff0118011a0d0a04"
            + "01551220120568656c6c6f22260a221220486ea46224d1bb4fb680f34f7c9ad96a8f24ec88be73ea8e5a6c65260e9cb8a7100128d209"
    )

    static func hex(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            out.append(UInt8(text[index..<next], radix: 16)!)
            index = next
        }
        return out
    }

    static func expected() throws -> BitswapMessage {
        let hello = CID(v1: .raw, Multihash.hash(Array("hello".utf8)))
        let world = try CID(v0: Multihash.hash(Array("world".utf8)))
        return BitswapMessage(
            entries: [
                .init(cid: hello, priority: 10, wantType: .have, sendDontHave: true),
                .init(cid: world, priority: -1, cancel: true),
            ],
            blocks: [.init(cid: hello, data: Array("hello".utf8))],
            presences: [(world, .dontHave)], pendingBytes: 1234)
    }

    @Test("a message decodes from Google protobuf's bytes and encodes to them, byte for byte")
    func knownAnswer() throws {
        let decoded = try BitswapMessage(decoding: Self.python)
        #expect(decoded == (try Self.expected()))
        #expect(try Self.expected().encoded() == Self.python)
    }

    @Test("1.0.0 blocks are CIDv0 of their data; older peers get no presences or want-haves")
    func versions() throws {
        // A 1.0.0 message (Google protobuf): blocks = [0a 02 08 01].
        let old = try BitswapMessage(decoding: Self.hex("12040a020801"))
        #expect(old.blocks.count == 1)
        #expect(old.blocks[0].cid == (try CID(v0: Multihash.hash([0x0a, 0x02, 0x08, 0x01]))))
        let message = try Self.expected()
        let forOld = try BitswapMessage(decoding: message.encoded(for: .v110))
        #expect(forOld.presences.isEmpty && forOld.pendingBytes == 0)
        #expect(forOld.entries.map(\.cid) == [message.entries[1].cid])
        #expect(forOld.blocks == message.blocks)
    }

    @Test("the frame reader waits for whole messages and refuses an oversized length before its body")
    func framing() throws {
        let message = try Self.expected()
        let stream = message.framed() + BitswapMessage(full: true).framed()
        var reader = BitswapFrameReader()
        var got: [BitswapMessage] = []
        for byte in stream {
            reader.feed([byte])
            while let next = try reader.next() { got.append(next) }
        }
        #expect(got == [message, BitswapMessage(full: true)])
        #expect(reader.buffered == 0)

        var hostile = BitswapFrameReader()
        hostile.feed([0x81, 0x80, 0x80, 0x04])  // 8 MiB + 1, and no body yet
        #expect(throws: BitswapError.tooLarge((8 << 20) + 1, limit: 4 << 20)) { try hostile.next() }
    }

    @Test(
        "hostile messages get typed errors: wrong wire types, too many entries, a prefix that lies, any bytes"
    )
    func hostile() throws {
        // Field 1 (wantlist) as a varint.
        #expect(throws: BitswapError.malformed("field 1 has the wrong wire type", offset: 0)) {
            try BitswapMessage(decoding: [0x08, 0x01])
        }
        var limits = BitswapMessage.Limits()
        limits.maxEntries = 1
        #expect(throws: BitswapError.tooMany("wantlist entries", limit: 1)) {
            try BitswapMessage(decoding: Self.python, limits: limits)
        }
        // A payload whose prefix says a 20-byte sha2-256 digest.
        let lying =
            BitswapMessage(blocks: []).encoded() + [
                0x1a, 0x0b, 0x0a, 0x04, 0x01, 0x55, 0x12, 0x14, 0x12, 0x03,
            ] + Array("abc".utf8)
        #expect(throws: BitswapError.self) { try BitswapMessage(decoding: lying) }
        // Whatever the bytes, a value or a typed error, never a trap.
        var generator = SystemRandomNumberGenerator()
        for round in 0..<3_000 {
            var bytes = Array(Self.python.prefix(Int.random(in: 0...Self.python.count, using: &generator)))
            for _ in 0..<(round % 4) where !bytes.isEmpty {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(
                    in: 0...255, using: &generator)
            }
            _ = try? BitswapMessage(decoding: bytes)
        }
    }
}

import Multiformats
import Testing

/// Known answers computed with PyPI's `multiformats` 0.3 (an independent implementation) and the
/// CIDs the IPFS docs publish; hostile input gets typed errors.
struct MultiformatsTests {
    static func hex(_ text: String) -> [UInt8] {
        stride(from: 0, to: text.count, by: 2).map {
            let start = text.index(text.startIndex, offsetBy: $0)
            return UInt8(text[start..<text.index(start, offsetBy: 2)], radix: 16) ?? 0
        }
    }

    @Test func varints() throws {
        for value: UInt64 in [0, 1, 127, 128, 300, 16_383, 16_384, 1 << 62, (1 << 63) - 1] {
            var offset = 0
            #expect(try Varint.decode(Varint.encode(value), at: &offset) == value)
        }
        #expect(Varint.encode(300) == [0xAC, 0x02])
        var offset = 0
        // Not in the shortest form.
        #expect(throws: MultiformatError.self) { try Varint.decode([0x80, 0x00], at: &offset) }
        offset = 0
        #expect(throws: MultiformatError.self) { try Varint.decode([0x80], at: &offset) }  // runs out
        offset = 0
        #expect(throws: MultiformatError.self) {
            try Varint.decode([UInt8](repeating: 0xFF, count: 10), at: &offset)  // longer than 9 bytes
        }
    }

    static let bases: [(Multibase, String)] = [
        (.base16, "f0000796573206d616e692021"), (.base16Upper, "F0000796573206D616E692021"),
        (.base32, "baaahszltebwwc3tjeaqq"), (.base32Upper, "BAAAHSZLTEBWWC3TJEAQQ"),
        (.base36, "k002lcpzo5yikidynfl"), (.base58btc, "z117paNL19xttacUY"), (.base64, "mAAB5ZXMgbWFuaSAh"),
        (.base64url, "uAAB5ZXMgbWFuaSAh"),
    ]

    @Test("multibase, both ways (leading zero bytes kept)", arguments: bases)
    func multibase(base: Multibase, text: String) throws {
        let bytes = Array("\u{0}\u{0}yes mani !".utf8)
        #expect(base.encode(bytes) == text)
        let (decoded, data) = try Multibase.decode(text)
        #expect(decoded == base && data == bytes)
    }

    @Test func badMultibase() {
        #expect(throws: MultiformatError.unknownBase("?")) { try Multibase.decode("?abc") }
        #expect(throws: MultiformatError.self) { try Multibase.decode("z0OIl") }  // not base58 letters
        #expect(throws: MultiformatError.self) { try Multibase.decode("b1") }  // '1' is not base32
        #expect(throws: MultiformatError.self) {
            try Multibase.decode("z" + String(repeating: "2", count: 5_000))
        }
    }

    @Test func multihashes() throws {
        let abc = Array("abc".utf8)
        #expect(
            Multihash.hash(abc, with: .sha512).bytes
                == Self.hex(
                    "1340ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
                ))
        #expect(
            Multihash.hash(abc, with: .sha1).bytes == Self.hex("1114a9993e364706816aba3e25717850c26c9cd0d89d")
        )
        #expect(Multihash.hash(abc, with: .identity).bytes == Self.hex("0003616263"))
        // An unknown function is kept, not refused; a wrong digest length for a known one is.
        let unknown = try Multihash(bytes: [0xB2, 0x20, 0x02, 0xAA, 0xBB])
        #expect(unknown.code == 0x1032 && unknown.digest == [0xAA, 0xBB] && !unknown.matches(abc))
        #expect(throws: MultiformatError.self) { try Multihash(bytes: [0x12, 0x02, 0x00, 0x00]) }
        #expect(throws: MultiformatError.self) { try Multihash(bytes: [0x12, 0x20, 0x00]) }  // truncated
    }

    @Test("CIDs: the published ones, v0 ⇄ v1, raw leaves, binary form")
    func cids() throws {
        let hello = Array("hello world\n".utf8)
        let raw = CID(v1: .raw, Multihash.hash(hello))
        #expect(raw.description == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4")
        #expect(try CID(raw.description) == raw)
        let v0 = try CID("QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        #expect(
            v0.version == 0 && v0.codec == .dagPB
                && v0.description == "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        let v1 = v0.v1
        #expect(v1.description == "bafybeicg2rebjoofv4kbyovkw7af3rpiitvnl6i7ckcywaq6xjcxnc2mby")
        #expect(
            v1.bytes == Self.hex("0170122046d44814b9c5af141c3aaab7c05dc5e844ead5f91f12858b021eba45768b4c0e"))
        #expect(v1.string(in: .base58btc) == "zdj7WaCPMsy3FP2whSwpFXHjDEaTVmjnddYSn5W2Gdn4aEZFj")
        #expect(v1.string(in: .base36) == "k2jmtxt4nv2kx0qz1ncwpjwzdixb27xsgqxk7kgho4nnmjceustvi80e")
        #expect(try CID("k2jmtxt4nv2kx0qz1ncwpjwzdixb27xsgqxk7kgho4nnmjceustvi80e") == v1 && v1.v0 == v0)
        #expect(
            try CID("QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH").v1.description
                == "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y")
        #expect(try CID(bytes: v0.bytes) == v0 && (try CID(bytes: v1.bytes)) == v1)
        #expect(raw.v0 == nil, "raw content has no CIDv0")
        // Hostile text and bytes: typed errors.
        #expect(throws: MultiformatError.self) { try CID("Qm" + String(repeating: "1", count: 44)) }
        #expect(throws: MultiformatError.self) { try CID("bafy") }
        #expect(throws: MultiformatError.self) { try CID(bytes: [0x02, 0x70, 0x12, 0x00]) }  // version 2
        #expect(throws: MultiformatError.self) { try CID(bytes: v1.bytes + [0]) }  // trailing byte
    }

    @Test("multiaddrs: text and binary")
    func multiaddrs() throws {
        let six = try Multiaddr("/ip6/2001:db8::1/tcp/4001")
        #expect(
            six.bytes == Self.hex("2920010db8000000000000000000000001060fa1")
                && six.description == "/ip6/2001:db8::1/tcp/4001")
        let loop = try Multiaddr("/ip6/::1/udp/9")
        #expect(loop.bytes == Self.hex("290000000000000000000000000000000191020009"))
        let quic = try Multiaddr(
            "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        #expect(
            quic.description
                == "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o")
        #expect(Array(quic.bytes.prefix(11)) == [0x04, 127, 0, 0, 1, 0x91, 0x02, 0x0F, 0xA1, 0xCD, 0x03])
        for address in [
            six, loop, quic, try Multiaddr("/dns4/example.com/tcp/443"), try Multiaddr("/dns/x.y/udp/1"),
        ] {
            #expect(try Multiaddr(bytes: address.bytes) == address)
            #expect(try Multiaddr(address.description) == address)
        }
        #expect(throws: MultiformatError.self) { try Multiaddr("/ip4/256.0.0.1") }
        #expect(throws: MultiformatError.self) { try Multiaddr("/ip4/01.2.3.4") }  // leading zero
        #expect(throws: MultiformatError.self) { try Multiaddr("/ip4/1.2.3") }
        #expect(throws: MultiformatError.self) { try Multiaddr("/ip6/1::2::3") }
        #expect(throws: MultiformatError.self) { try Multiaddr("/ip6/fe80::1%eth0") }  // zone: /ip6zone
        // RFC 5952 text out whatever form came in.
        #expect(try Multiaddr("/ip6/2001:DB8:0:0:0:0:0:1").description == "/ip6/2001:db8::1")
        #expect(
            try Multiaddr("/ip6/::ffff:192.0.2.1").bytes == Self.hex("2900000000000000000000ffffc0000201"))
        #expect(throws: MultiformatError.self) { try Multiaddr("/ip4/1.2.3.4/tcp") }
        #expect(throws: MultiformatError.self) { try Multiaddr("/onion9/x") }
        #expect(throws: MultiformatError.self) { try Multiaddr(bytes: [0x04, 127, 0]) }  // truncated
        #expect(throws: MultiformatError.self) { try Multiaddr(bytes: [0x35, 0xFF, 0x7F]) }  // huge length
    }

    @Test("a /p2p/ value must be a peer ID's multihash, in text and binary (found by FuzzCID)")
    func p2pValues() throws {
        // A base36 CID whose multihash has code 0x310E: it printed as /p2p/4e6AL1, unreadable.
        #expect(throws: MultiformatError.self) { try Multiaddr("/ipfs/kjngkjngq") }
        #expect(throws: MultiformatError.self) {
            try Multiaddr(bytes: [0xA5, 0x03, 0x04, 0x8E, 0x62, 0x01, 0x8A])
        }
        // SHA-256 must be 32 bytes; identity and SHA-256 peer IDs read back from their text.
        #expect(throws: MultiformatError.self) { try Multiaddr(bytes: [0xA5, 0x03, 0x03, 0x12, 0x01, 0x00]) }
        for id in [
            "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o",
            "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
        ] {
            let address = try Multiaddr("/p2p/" + id)
            #expect(try Multiaddr(address.description) == address && address.description == "/p2p/" + id)
        }
    }
}

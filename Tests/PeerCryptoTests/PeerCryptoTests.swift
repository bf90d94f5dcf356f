import Multiformats
import PeerCrypto
import Testing

@Suite("libp2p keys and peer IDs")
struct PeerCryptoTests {
    static func hex(_ text: String) -> [UInt8] {
        stride(from: 0, to: text.count, by: 2).map {
            let start = text.index(text.startIndex, offsetBy: $0)
            return UInt8(text[start..<text.index(start, offsetBy: 2)], radix: 16)!
        }
    }

    /// The Ed25519 key of the peer-ids spec's examples (private key protobuf: seed ‖ public key).
    static let privateKey = hex(
        "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"
    )
    static let publicKey = hex("080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e")

    @Test("the spec's Ed25519 key: its public key, and the peer ID PyPI multiformats gives its protobuf")
    func specKey() throws {
        let key = try PrivateKey(bytes: Self.privateKey)
        #expect(key.bytes == Self.privateKey)
        #expect(key.publicKey.encoded.bytes == Self.publicKey)
        let id = key.publicKey.peerID
        // multiformats: base58btc of multihash.wrap(publicKey, "identity"), and its libp2p-key CID.
        #expect(id.description == "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq")
        #expect(id.cid.description == "k51qzi5uqu5dgy8qsq67hbz73jqkw87l3fgf4a91qb0d9b5173tir7n4vxk1oe")
        #expect(try PeerID("12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq") == id)
        #expect(try PeerID(id.cid.description) == id)
        #expect(try PeerID("bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6") == id)
        #expect(id.inlinedKey == key.publicKey && id.matches(key.publicKey))
    }

    @Test("signatures: Ed25519 (RFC 8032) and ECDSA P-256 (DER); a changed message or key fails")
    func signatures() throws {
        for type in [KeyType.ed25519, .ecdsa] {
            let key = try PrivateKey.generate(type)
            let message = Array("noise-libp2p-static-key:".utf8) + [1, 2, 3]
            let signature = try key.sign(message)
            #expect(key.publicKey.verify(signature, for: message), "\(type)")
            #expect(!key.publicKey.verify(signature, for: message + [0]), "\(type)")
            #expect(!(try PrivateKey.generate(type)).publicKey.verify(signature, for: message), "\(type)")
            // Round trips of both protobufs.
            let reread = try PrivateKey(bytes: key.bytes)
            #expect(reread.publicKey == key.publicKey)
            #expect(try PublicKey(bytes: key.publicKey.encoded.bytes) == key.publicKey)
        }
        // An ECDSA public key protobuf is longer than 42 bytes: its peer ID is a SHA-256 multihash.
        let ecdsa = try PrivateKey.generate(.ecdsa).publicKey
        #expect(ecdsa.peerID.multihash.code == 0x12 && ecdsa.peerID.description.hasPrefix("Qm"))
        #expect(ecdsa.peerID.inlinedKey == nil && ecdsa.peerID.matches(ecdsa))
    }

    @Test("hostile key protobufs and peer IDs get typed errors naming what was wrong")
    func hostile() throws {
        let cases: [[UInt8]] = [
            [], [0x12, 0x00], [0x08], [0x08, 0x01], [0x08, 0x01, 0x12], [0x08, 0x01, 0x12, 0x05, 1, 2],
            Self.publicKey + [0], [0x08, 0x09, 0x12, 0x00], [0x08, 0x01, 0x12, 0xff, 0xff, 0xff, 0xff, 0x0f],
            [0x08, 0x01, 0x12, 0x03, 1, 2, 3],  // Ed25519 data of 3 bytes
            [0x08, 0x03, 0x12, 0x03, 1, 2, 3],  // ECDSA data that is not DER
        ]
        for bytes in cases {
            #expect(throws: PeerCryptoError.self, "\(bytes)") { try PublicKey(bytes: bytes) }
        }
        var tampered = Self.privateKey
        tampered[tampered.count - 1] ^= 1  // a public half that is not the seed's
        #expect(throws: PeerCryptoError.self) { try PrivateKey(bytes: tampered) }
        for text in [
            "", "12D3KooW", "Qm" + String(repeating: "1", count: 44),
            "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi", "x",
        ] {
            #expect(throws: PeerCryptoError.self, "\(text)") { try PeerID(text) }
        }
        // Any bytes: a key or a typed error, never a trap.
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            var bytes = (0..<Int.random(in: 0...40, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            if !bytes.isEmpty, Bool.random(using: &random) { bytes[0] = 0x08 }
            _ = try? PublicKey(bytes: bytes)
            _ = try? PrivateKey(bytes: bytes)
        }
    }
}

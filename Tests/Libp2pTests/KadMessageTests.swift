import Libp2p
import Multiformats
import PeerCrypto
import TestSupport
import Testing

@Suite("kad-dht messages and records")
struct KadMessageTests {
    /// An Ed25519 public key protobuf (key bytes 00…1f) and its peer ID (identity multihash).
    static let publicKey: [UInt8] = [8, 1, 0x12, 0x20] + Array(0..<32)
    static func peer() throws -> PeerID { PeerID(publicKey: try PublicKey(bytes: publicKey)) }

    /// Known answers from py-libp2p 0.8.1's `kademlia_pb2` (Google's protobuf runtime): a
    /// GET_PROVIDERS response naming the peer as closer and as provider (`/ip4/127.0.0.1/tcp/4001`,
    /// CONNECTED), and a PUT_VALUE of the peer's `/pk/` record.
    static let getProviders = hex(
        "0803122212202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b982442340a26002408011220"
            + "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f1208047f000001060fa118014a340a"
            + "26002408011220000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f1208047f00000106"
            + "0fa11801")
    static let putValue = hex(
        "122a2f706b2f002408011220000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f1a680a2a"
            + "2f706b2f002408011220000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f1224080112"
            + "20000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2a14323032362d31322d3034543030"
            + "3a30303a30305a")

    @Test("decodes and re-encodes py-libp2p's GET_PROVIDERS and PUT_VALUE byte for byte")
    func knownAnswers() throws {
        let providers = try KadMessage(decoding: Self.getProviders)
        #expect(providers.kind == .getProviders)
        #expect(providers.key == Multihash.hash(Array("hello".utf8), with: .sha256).bytes)
        let address = try Multiaddr("/ip4/127.0.0.1/tcp/4001")
        let named = KadMessage.Peer(id: try Self.peer(), addresses: [address], connection: .connected)
        #expect(providers.closerPeers == [named])
        #expect(providers.providerPeers == [named])
        #expect(providers.encoded() == Self.getProviders)

        let put = try KadMessage(decoding: Self.putValue)
        #expect(put.kind == .putValue)
        #expect(put.key == KadRecordValidator.publicKeyKey(try Self.peer()))
        #expect(put.record?.value == Self.publicKey)
        #expect(put.record?.timeReceived == "2026-12-04T00:00:00Z")
        #expect(put.encoded() == Self.putValue)
        try KadRecordValidator.validate(key: put.key, value: Self.publicKey)
    }

    @Test(
        "refuses a wrong type, a bad peer ID, and lists and fields over their bounds; skips unknown addresses"
    )
    func bounds() throws {
        #expect(throws: KadError.self) { try KadMessage(decoding: [0x08, 0x09]) }
        // A peer with an empty ID.
        #expect(throws: KadError.self) { try KadMessage(decoding: [0x42, 0x02, 0x0A, 0x00]) }
        #expect(throws: KadError.self) { try KadMessage(decoding: [0x12, 0x05, 0x01]) }  // key past the end
        var limits = KadMessage.Limits()
        limits.maxPeers = 2
        var many = KadMessage(kind: .findNode, key: [1])
        many.closerPeers = Array(repeating: KadMessage.Peer(id: try Self.peer(), addresses: []), count: 3)
        #expect(throws: KadError.tooMany("peers", limit: 2)) {
            try KadMessage(decoding: many.encoded(), limits: limits)
        }
        limits = KadMessage.Limits()
        limits.maxKey = 4
        #expect(throws: KadError.self) {
            try KadMessage(
                decoding: KadMessage(kind: .getValue, key: [1, 2, 3, 4, 5]).encoded(), limits: limits)
        }
        // An address of a transport this node does not know (code 0x1d1, webtransport) is skipped.
        var peerBytes: [UInt8] = []
        ProtobufWriter.bytes(field: 1, try Self.peer().multihash.bytes, into: &peerBytes)
        ProtobufWriter.bytes(field: 2, [0xD1, 0x03], into: &peerBytes)
        ProtobufWriter.bytes(field: 2, try Multiaddr("/ip4/10.0.0.1/tcp/1").bytes, into: &peerBytes)
        var message: [UInt8] = [0x08, 0x04]
        ProtobufWriter.bytes(field: 8, peerBytes, into: &message)
        let decoded = try KadMessage(decoding: message)
        #expect(decoded.closerPeers.first?.addresses == [try Multiaddr("/ip4/10.0.0.1/tcp/1")])
    }

    @Test("records: /pk/ must hold its own peer's key; other namespaces are refused")
    func records() throws {
        try KadRecordValidator.validate(
            key: KadRecordValidator.publicKeyKey(try Self.peer()), value: Self.publicKey)
        let other = try PrivateKey.generate(.ed25519).publicKey
        #expect(throws: KadError.self) {
            try KadRecordValidator.validate(
                key: KadRecordValidator.publicKeyKey(try Self.peer()), value: other.encoded.bytes)
        }
        #expect(throws: KadError.self) {
            try KadRecordValidator.validate(key: Array("/ipns/x".utf8), value: [1])
        }
        #expect(throws: KadError.self) {
            try KadRecordValidator.validate(
                key: KadRecordValidator.publicKeyKey(try Self.peer()), value: [0xFF, 0x01])
        }
    }

    @Test("any bytes decode to a message or a typed error", arguments: 0..<4)
    func total(seed: UInt64) {
        var generator = SeededGenerator(state: seed)
        for length in 0..<600 {
            var bytes = (0..<length % 80).map { _ in UInt8.random(in: 0...255, using: &generator) }
            if length.isMultiple(of: 3) {
                bytes = Array(Self.getProviders.prefix(length % Self.getProviders.count)) + bytes
            }
            // Typed throws: anything but a message is a KadError; what decodes round-trips.
            guard let message = try? KadMessage(decoding: bytes) else { continue }
            #expect((try? KadMessage(decoding: message.encoded())) == message)
        }
    }
}

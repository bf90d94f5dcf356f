import Crypto
import PeerCrypto
import Testing

@Suite("Noise XX (Noise_XX_25519_ChaChaPoly_SHA256)")
struct NoiseTests {
    static func key(_ byte: UInt8) throws -> Curve25519.KeyAgreement.PrivateKey {
        try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: [UInt8](repeating: byte, count: 32))
    }

    static let hex = PeerCryptoTests.hex

    @Test(
        "the three handshake messages and the first transport messages are byte for byte those of PyPI noiseprotocol with the same keys"
    )
    func knownTranscript() throws {
        // noiseprotocol 0.3.1: initiator static 01…, ephemeral 02…; responder static 03…, ephemeral 04…;
        // empty prologue; payloads "", "payload two", "payload three"; then "hello" and "world".
        var initiator = NoiseXX(role: .initiator, staticKey: try Self.key(1), ephemeral: try Self.key(2))
        var responder = NoiseXX(role: .responder, staticKey: try Self.key(3), ephemeral: try Self.key(4))
        let m1 = try initiator.writeMessage()
        #expect(m1 == Self.hex("ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587d59"))
        #expect(try responder.readMessage(m1) == [])
        let m2 = try responder.writeMessage(payload: Array("payload two".utf8))
        #expect(
            m2
                == Self.hex(
                    "ac01b2209e86354fb853237b5de0f4fab13c7fcbf433a61c019369617fecf10bb719b14d19eaf5ca91c89748c5ce8668e6864f05ee2367682b3e0c2fd086f0b4f64162733f3fe548251c518fe8c03cceda68d20ee318f93558fa9bf1e75f9ce8eb72bb04901882be14a88e"
                ))
        #expect(try initiator.readMessage(m2) == Array("payload two".utf8))
        let m3 = try initiator.writeMessage(payload: Array("payload three".utf8))
        #expect(
            m3
                == Self.hex(
                    "539a5cf3ae8a0a9134b32bfa775a1522db3558a1351ed4101989b8b88aa6a6f0c28202a670e9ae37e2efa345217ebb663703cd47cef6b9a81ef3f8704850ef740ebb8dc9af3b78e518bd698a38"
                ))
        #expect(try responder.readMessage(m3) == Array("payload three".utf8))
        #expect(initiator.isComplete && responder.isComplete)
        #expect(
            initiator.handshakeHash
                == Self.hex("c259ee3aad30e5d3fb9d9bf75c7b3efd1cc7eed21a77e298cb4bc088c08c5729"))
        #expect(responder.handshakeHash == initiator.handshakeHash)
        #expect(initiator.remoteStatic == Array(try Self.key(3).publicKey.rawRepresentation))
        #expect(responder.remoteStatic == Array(try Self.key(1).publicKey.rawRepresentation))

        var (initiatorSend, initiatorReceive) = try initiator.split()
        var (responderSend, responderReceive) = try responder.split()
        let t1 = try initiatorSend.encrypt(Array("hello".utf8))
        #expect(t1 == Self.hex("f5c8fdccae8939c5a6d0d9be2753d6cf345c85961d"))
        #expect(try responderReceive.decrypt(t1) == Array("hello".utf8))
        let t2 = try responderSend.encrypt(Array("world".utf8))
        #expect(t2 == Self.hex("ef940bdf5a86302dad53e2e4243977a108057c9693"))
        #expect(try initiatorReceive.decrypt(t2) == Array("world".utf8))
        // A replay, a tampered byte and a reordering are refused.
        #expect(throws: NoiseError.decryptionFailed) { try initiatorReceive.decrypt(t2) }
        var tampered = try responderSend.encrypt(Array("again".utf8))
        tampered[0] ^= 1
        #expect(throws: NoiseError.decryptionFailed) { try initiatorReceive.decrypt(tampered) }
    }

    @Test("out-of-turn, short and tampered handshake messages get typed errors")
    func hostile() throws {
        var initiator = NoiseXX(role: .initiator, staticKey: Curve25519.KeyAgreement.PrivateKey())
        var responder = NoiseXX(role: .responder, staticKey: Curve25519.KeyAgreement.PrivateKey())
        #expect(throws: NoiseError.outOfTurn) { try responder.writeMessage() }
        #expect(throws: NoiseError.outOfTurn) { try initiator.readMessage([]) }
        let m1 = try initiator.writeMessage()
        #expect(throws: NoiseError.self) { try responder.readMessage(Array(m1.prefix(31))) }
        var fresh = NoiseXX(role: .responder, staticKey: Curve25519.KeyAgreement.PrivateKey())
        _ = try fresh.readMessage(m1)
        var m2 = try fresh.writeMessage(payload: [1, 2, 3])
        m2[40] ^= 0x80  // inside the encrypted static key
        #expect(throws: NoiseError.decryptionFailed) { try initiator.readMessage(m2) }
        #expect(throws: NoiseError.outOfTurn) { try initiator.split() }
        // Any bytes as the second message: a payload or a typed error, never a trap.
        var random = SystemRandomNumberGenerator()
        for _ in 0..<2_000 {
            var side = NoiseXX(role: .initiator, staticKey: Curve25519.KeyAgreement.PrivateKey())
            _ = try side.writeMessage()
            let bytes = (0..<Int.random(in: 0...120, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            _ = try? side.readMessage(bytes)
        }
    }
}

@Suite("libp2p's Noise handshake (/noise)")
struct LibP2PNoiseTests {
    /// Runs the three messages between two sides; returns the error of the side that failed.
    static func run(_ initiator: inout LibP2PNoiseHandshake, _ responder: inout LibP2PNoiseHandshake) throws {
        try responder.readMessage(try initiator.writeMessage())
        try initiator.readMessage(try responder.writeMessage())
        try responder.readMessage(try initiator.writeMessage())
    }

    @Test(
        "two identities (Ed25519 and ECDSA) authenticate each other, agree on muxers and on the transport keys"
    )
    func handshake() throws {
        let dialler = try PrivateKey.generate(.ed25519)
        let listener = try PrivateKey.generate(.ecdsa)
        var initiator = LibP2PNoiseHandshake(
            role: .initiator, identity: dialler, expected: listener.publicKey.peerID,
            streamMuxers: ["/yamux/1.0.0"])
        var responder = LibP2PNoiseHandshake(
            role: .responder, identity: listener, streamMuxers: ["/yamux/1.0.0"])
        try Self.run(&initiator, &responder)
        #expect(initiator.isComplete && responder.isComplete)
        #expect(
            initiator.remotePeer == listener.publicKey.peerID
                && responder.remotePeer == dialler.publicKey.peerID)
        #expect(initiator.remoteMuxers == ["/yamux/1.0.0"] && responder.remoteMuxers == ["/yamux/1.0.0"])
        var (send, _) = try initiator.split()
        var (_, receive) = try responder.split()
        #expect(try receive.decrypt(try send.encrypt([1, 2, 3])) == [1, 2, 3])
    }

    @Test("a listener that is not the peer dialled is refused by name")
    func unexpectedPeer() throws {
        let wanted = try PrivateKey.generate().publicKey.peerID
        let impostor = try PrivateKey.generate()
        var initiator = LibP2PNoiseHandshake(
            role: .initiator, identity: try PrivateKey.generate(), expected: wanted)
        var responder = LibP2PNoiseHandshake(role: .responder, identity: impostor)
        do {
            try Self.run(&initiator, &responder)
            Issue.record("the impostor was accepted")
        } catch let error as LibP2PNoiseError {
            #expect(error == .unexpectedPeer(expected: wanted, got: impostor.publicKey.peerID))
            #expect(error.description.contains(wanted.description))
        }
    }

    @Test("an identity key that signed some other static key is refused")
    func badSignature() throws {
        var initiator = LibP2PNoiseHandshake(role: .initiator, identity: try PrivateKey.generate())
        var responder = NoiseXX(role: .responder, staticKey: Curve25519.KeyAgreement.PrivateKey())
        _ = try responder.readMessage(try initiator.writeMessage())
        let identity = try PrivateKey.generate()
        let otherStatic = Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)
        let payload = NoiseHandshakePayload(
            identityKey: identity.publicKey.encoded.bytes,
            identitySignature: try identity.sign(Array("noise-libp2p-static-key:".utf8) + otherStatic))
        let message = try responder.writeMessage(payload: payload.bytes)
        #expect(throws: LibP2PNoiseError.badSignature) { try initiator.readMessage(message) }
        #expect(initiator.remotePeer == nil)
    }

    @Test("handshake payloads: round trip, unknown fields ignored, hostile bytes refused with the offset")
    func payloads() throws {
        let payload = NoiseHandshakePayload(
            identityKey: [8, 1, 18, 0], identitySignature: [9, 9],
            streamMuxers: ["/yamux/1.0.0", "/mplex/6.7.0"])
        #expect(try NoiseHandshakePayload(bytes: payload.bytes) == payload)
        // An unknown varint field (9) and an unknown bytes field (7) are skipped.
        #expect(try NoiseHandshakePayload(bytes: [0x48, 0x05, 0x3a, 0x01, 0x00] + payload.bytes) == payload)
        for bad in [[], [0x0a, 0x05, 1], [0x0d, 0, 0, 0, 0], [0x0a, 0x00], [0x12, 0x00], [0x0a, 0xff]]
            as [[UInt8]]
        {
            #expect(throws: LibP2PNoiseError.self, "\(bad)") { try NoiseHandshakePayload(bytes: bad) }
        }
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let bytes = (0..<Int.random(in: 0...64, using: &random)).map { _ in
                UInt8.random(in: 0...255, using: &random)
            }
            _ = try? NoiseHandshakePayload(bytes: bytes)
        }
    }
}

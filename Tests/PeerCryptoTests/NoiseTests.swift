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

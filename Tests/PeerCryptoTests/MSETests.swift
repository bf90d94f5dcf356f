import Foundation
import PeerCrypto
import Testing

/// BitTorrent's Message Stream Encryption: two state machines against each other, and against
/// a transcript an independent implementation computed (Tests/Vectors/mse/make_vector.py:
/// Python's pow, hashlib, the cryptography package's ARC4).
@Suite("MSE/PE handshake (Vuze's Message Stream Encryption)")
struct MSETests {
    static let hex = PeerCryptoTests.hex
    static let infoHash = [UInt8](repeating: 0xAB, count: 20)

    /// Runs a handshake between the two, feeding each the other's bytes in chunks of `chunk`.
    static func run(_ initiator: inout MSEInitiator, _ responder: inout MSEResponder, chunk: Int) throws -> (
        MSEResult, MSEResult
    ) {
        var toB = initiator.start()
        var toA: [UInt8] = []
        var resultA: MSEResult?
        var resultB: MSEResult?
        for _ in 0..<100 where resultA == nil || resultB == nil {
            while !toB.isEmpty {
                let piece = Array(toB.prefix(chunk))
                toB.removeFirst(piece.count)
                let step = try responder.receive(piece)
                toA += step.output
                if let result = step.result { resultB = result }
            }
            while !toA.isEmpty {
                let piece = Array(toA.prefix(chunk))
                toA.removeFirst(piece.count)
                let step = try initiator.receive(piece)
                toB += step.output
                if let result = step.result { resultA = result }
            }
        }
        return (try #require(resultA), try #require(resultB))
    }

    @Test(
        "two sides agree on the torrent and the method, and their RC4 streams meet",
        arguments: [0, 1, 2])
    func pair(setup: Int) throws {
        // What the initiator offers, what the responder prefers, bytes delivered at a time.
        let (provide, prefer, chunk): (MSEMethods, MSEMethods, Int) =
            [([.rc4, .plaintext], .rc4, 1), ([.rc4, .plaintext], .plaintext, 7), (.rc4, .plaintext, 1000)][
                setup]
        var generator = SystemRandomNumberGenerator()
        let ia = Array("\u{13}BitTorrent protocol".utf8)
        var initiator = MSEInitiator(
            infoHash: Self.infoHash, provide: provide, initialPayload: ia, using: &generator)
        var responder = MSEResponder(
            infoHashes: [[UInt8](repeating: 1, count: 20), Self.infoHash], allow: [.rc4, .plaintext],
            prefer: prefer,
            using: &generator)
        var (a, b) = try Self.run(&initiator, &responder, chunk: chunk)
        let expected: MSEMethods = provide.contains(prefer) ? prefer : .rc4
        #expect(a.method == expected && b.method == expected)
        #expect(b.infoHash == Self.infoHash)
        #expect(b.payload == ia, "the initial payload arrives with the handshake")
        if expected == .rc4 {
            let message = Array("a message".utf8)
            let sent = a.encryptor?.crypted(message) ?? []
            #expect(sent != message)
            #expect(b.decryptor?.crypted(sent) == message)
            let back = b.encryptor?.crypted(message) ?? []
            #expect(a.decryptor?.crypted(back) == message)
        } else {
            #expect(a.encryptor == nil && b.decryptor == nil)
        }
    }

    @Test("byte for byte the transcript of an independent implementation, both roles")
    func knownTranscript() throws {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../Vectors/mse/rc4-handshake.json").standardized
        let vector = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        func bytes(_ key: String) -> [UInt8] { Self.hex(vector[key] as? String ?? "") }
        let infoHash = bytes("infoHash")
        var initiator = MSEInitiator(
            infoHash: infoHash, provide: [.rc4, .plaintext], initialPayload: bytes("initialPayload"),
            privateKey: bytes("privateKeyA"), padA: bytes("padA"), padC: bytes("padC"))
        var responder = MSEResponder(
            infoHashes: [infoHash], allow: [.rc4, .plaintext], prefer: .rc4, privateKey: bytes("privateKeyB"),
            padB: bytes("padB"), padD: bytes("padD"))
        let aToB = bytes("aToB")
        let bToA = bytes("bToA")
        let streamA = bytes("streamA")
        let streamB = bytes("streamB")
        // A: its first message, then (given all of B's bytes) the third.
        let first = initiator.start()
        #expect(aToB.starts(with: first))
        let stepA = try initiator.receive(bToA)
        #expect(first + stepA.output + Array(aToB.suffix(streamA.count)) == aToB)
        var resultA = try #require(stepA.result)
        #expect(resultA.payload == streamB, "B's stream after the handshake, decrypted")
        #expect(resultA.encryptor?.crypted(streamA) == Array(aToB.suffix(streamA.count)))
        // B: given all of A's bytes, its messages and A's stream.
        let stepB = try responder.receive(aToB)
        #expect(stepB.output + Array(bToA.suffix(streamB.count)) == bToA)
        let resultB = try #require(stepB.result)
        #expect(resultB.method == .rc4 && resultB.infoHash == infoHash)
        #expect(resultB.payload == bytes("initialPayload") + streamA)
    }

    @Test("refused: a torrent not served, garbage with no sync, no method in common, a degenerate key")
    func refusals() throws {
        var generator = SystemRandomNumberGenerator()
        func responder(allow: MSEMethods = [.rc4, .plaintext]) -> MSEResponder {
            MSEResponder(infoHashes: [Self.infoHash], allow: allow, prefer: .rc4, using: &generator)
        }
        var other = MSEInitiator(
            infoHash: [UInt8](repeating: 9, count: 20), provide: .rc4, initialPayload: [], using: &generator)
        var b = responder()
        #expect(throws: MSEError.unknownTorrent) { _ = try Self.run(&other, &b, chunk: 50) }
        var plainOnly = MSEInitiator(
            infoHash: Self.infoHash, provide: .plaintext, initialPayload: [], using: &generator)
        var rc4Only = responder(allow: .rc4)
        #expect(throws: MSEError.noCommonMethod(offered: 1)) {
            _ = try Self.run(&plainOnly, &rc4Only, chunk: 50)
        }
        // 96 bytes of a key, then no req1 hash within the 512 bytes of padding allowed.
        var garbage = responder()
        _ = try garbage.receive([UInt8](repeating: 5, count: 96))
        #expect(throws: MSEError.noSync("req1 hash")) {
            _ = try garbage.receive([UInt8](repeating: 7, count: 600))
        }
        // A public key of 1 (or 0, or P − 1) would make the secret known.
        for key in [[UInt8](repeating: 0, count: 95) + [1], [UInt8](repeating: 0, count: 96)] {
            var victim = responder()
            #expect(throws: MSEError.badPublicKey) { _ = try victim.receive(key) }
        }
    }

    @Test("RC4 drops the first 1,024 bytes of keystream; a copy carries on from the same place")
    func rc4() {
        var plain = RC4(key: Array("Key".utf8), discard: 0)
        // RFC 6229-style check with the classic vector: RC4("Key", "Plaintext").
        #expect(plain.crypted(Array("Plaintext".utf8)) == Self.hex("bbf316e8d940af0ad3"))
        var dropped = RC4(key: Array("Key".utf8))
        var reference = RC4(key: Array("Key".utf8), discard: 0)
        _ = reference.crypted([UInt8](repeating: 0, count: 1_024))
        var copy = dropped
        var fresh = RC4(key: Array("Key".utf8))
        #expect(dropped.crypted([1, 2, 3]) == reference.crypted([1, 2, 3]))
        #expect(copy.crypted([1, 2, 3]) == fresh.crypted([1, 2, 3]))
    }
}

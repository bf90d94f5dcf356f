import Bencode
import MainlineDHT
import PeerNet
import TestSupport
import Testing

/// The KRPC codec against BEP 5's own example messages (byte for byte, both ways) and hostile
/// input.
struct KRPCTests {
    static let examples: [String] = [
        "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe",
        "d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re",
        "d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e1:q9:find_node1:t2:aa1:y1:qe",
        "d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e1:q9:get_peers1:t2:aa1:y1:qe",
        "d1:rd2:id20:abcdefghij01234567895:token8:aoeusnth6:valuesl6:axje.u6:idhtnmee1:t2:aa1:y1:re",
        "d1:rd2:id20:abcdefghij01234567895:nodes52:mnopqrstuvwxyz123456axje.uabcdefghij0123456789idhtnm5:token8:aoeusnthe1:t2:aa1:y1:re",
        "d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe",
        "d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee",
    ]

    @Test("BEP 5's examples decode and re-encode byte for byte", arguments: examples)
    func specExamples(text: String) throws {
        let bytes = Array(text.utf8)
        let message = try KRPCCodec.decode(bytes)
        #expect(message.transactionID == Array("aa".utf8))
        #expect(KRPCCodec.encode(message) == bytes)
    }

    @Test func decodedFieldsMatchTheSpec() throws {
        let announce = try KRPCCodec.decode(Array(Self.examples[6].utf8))
        #expect(announce.senderID?.bytes == Array("abcdefghij0123456789".utf8))
        guard case .query(.announcePeer(let hash, let port, let token, let implied)) = announce.body else {
            Issue.record("not an announce_peer: \(announce.body)")
            return
        }
        #expect(hash.bytes == Array("mnopqrstuvwxyz123456".utf8) && port == 6881)
        #expect(token == Array("aoeusnth".utf8) && implied)
        let peers = try KRPCCodec.decode(Array(Self.examples[4].utf8))
        guard case .response(let response) = peers.body else { return }
        #expect(response.values.map(\.description) == ["97.120.106.101:11893", "105.100.104.116:28269"])
        let nodes = try KRPCCodec.decode(Array(Self.examples[5].utf8))
        guard case .response(let found) = nodes.body else { return }
        #expect(found.nodes.count == 2 && found.nodes[1].address.description == "105.100.104.116:28269")
        let error = try KRPCCodec.decode(Array(Self.examples[7].utf8))
        #expect(error.body == .error(code: 201, message: "A Generic Error Ocurred"))
    }

    @Test func hostileMessagesAreRefusedWithTheRightCode() {
        let id = "2:id20:abcdefghij0123456789"
        let cases: [(String, Int, String)] = [
            ("d1:ad\(id)e1:q6:hijack1:t2:aa1:y1:qe", 204, "unknown method"),
            ("d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", 203, "'id' is 3 bytes"),
            ("d1:ad\(id)e1:q9:find_node1:t2:aa1:y1:qe", 203, "missing 'target'"),
            (
                "d1:ad\(id)9:info_hash20:mnopqrstuvwxyz1234564:porti0e5:token1:xe1:q13:announce_peer1:t2:aa1:y1:qe",
                203, "'port'"
            ),
            ("d1:ad\(id)e1:q4:ping1:t2:aa1:y1:xe", 203, "unknown message type"),
            ("d1:rd\(id)6:valuesi5ee1:t2:aa1:y1:re", 203, "'values' has the wrong type"),
        ]
        for (text, code, reason) in cases {
            do {
                _ = try KRPCCodec.decode(Array(text.utf8))
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.code == code && error.transactionID == Array("aa".utf8), "\(text)")
                #expect(error.description.contains(reason), "\(error)")
            }
        }
        // A values list of 501 peers is refused before it is read.
        let many = "d1:rd\(id)6:valuesl" + String(repeating: "6:abcdef", count: 501) + "ee1:t2:aa1:y1:re"
        #expect(throws: KRPCError(transactionID: Array("aa".utf8), reason: .tooMany("values", 500))) {
            try KRPCCodec.decode(Array(many.utf8))
        }
        // Oversized packets and garbage: errors without a transaction (dropped), never a trap.
        #expect(throws: KRPCError.self) { try KRPCCodec.decode(Array(repeating: 0x64, count: 9_000)) }
        var generator = SeededGenerator(state: 9)
        for _ in 0..<3_000 {
            var bytes = Array(Self.examples[Int.random(in: 0..<Self.examples.count, using: &generator)].utf8)
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                bytes[Int.random(in: 0..<bytes.count, using: &generator)] = UInt8.random(
                    in: 0...255, using: &generator)
            }
            if let message = try? KRPCCodec.decode(bytes) {
                // Whatever decodes re-encodes to something that decodes to the same message.
                #expect((try? KRPCCodec.decode(KRPCCodec.encode(message))) == message)
            }
        }
    }

    @Test func bep44PutAndGetRoundTrip() throws {
        var put = PutRequest(token: Array("tok".utf8), value: Array("12:Hello World!".utf8))
        put.key = Array(repeating: 7, count: 32)
        put.signature = Array(repeating: 9, count: 64)
        put.seq = 4
        put.salt = Array("foobar".utf8)
        put.cas = 3
        let sender = try #require(NodeID(bytes: Array(repeating: 1, count: 20)))
        let message = KRPCMessage(transactionID: [1, 2], senderID: sender, body: .query(.put(put)))
        let decoded = try KRPCCodec.decode(KRPCCodec.encode(message))
        #expect(decoded == message)
        var reply = KRPCResponse()
        reply.value = Array("12:Hello World!".utf8)
        reply.seq = 4
        reply.token = [1]
        reply.nodes6 = [
            NodeInfo(id: sender, address: Endpoint(ip: Array(repeating: 0, count: 15) + [1], port: 6881)!)
        ]
        var answer = KRPCMessage(transactionID: [1, 2], senderID: sender, body: .response(reply))
        answer.requesterAddress = Endpoint(ip: [127, 0, 0, 1], port: 4000)
        #expect(try KRPCCodec.decode(KRPCCodec.encode(answer)) == answer)
    }
}

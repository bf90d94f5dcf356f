import Foundation
import Multiformats
import PeerCrypto
import Testing

@testable import Gossip

@Suite("pubsub RPCs and message signing")
struct PubSubRPCTests {
    static let vector: [String: String] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Vectors/gossip/pubsub-rpc.json")
        guard let data = try? Data(contentsOf: url),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: String]
        else { return [:] }
        return object
    }()

    static func hex(_ text: String?) -> [UInt8] {
        guard let text else { return [] }
        return (try? Multibase.base16.decode(digits: Array(text.utf8))) ?? []
    }

    @Test("py-libp2p's RPC (Google protobuf) decodes field by field and encodes to the same bytes")
    func pylibp2pVector() throws {
        let bytes = Self.hex(Self.vector["rpc"])
        try #require(!bytes.isEmpty, "Tests/Vectors/gossip/pubsub-rpc.json")
        let rpc = try PubSubRPC.decode(bytes)
        #expect(
            rpc.subscriptions == [
                .init(subscribe: true, topic: "peerstack/vectors"), .init(subscribe: false, topic: "old"),
            ])
        let message = try #require(rpc.messages.first)
        #expect(message.data == Array("hello, gossip".utf8))
        #expect(message.seqno == [0, 0, 0, 0, 0, 0, 0, 7])
        #expect(message.topic == "peerstack/vectors")
        let control = try #require(rpc.control)
        #expect(
            control.ihave == [
                .init(topic: "peerstack/vectors", messageIDs: [Array("id-1".utf8), Array("id-2".utf8)])
            ])
        #expect(control.iwant == [[Array("id-3".utf8)]])
        #expect(control.graft == ["peerstack/vectors"])
        #expect(control.prune.first?.topic == "old")
        #expect(control.prune.first?.backoff == 60)
        #expect(control.prune.first?.peers.first?.peerID == message.from)
        #expect(rpc.encoded() == bytes)
    }

    @Test(
        "py-libp2p's signature verifies, over the same signed bytes; PeerStack's own signature with the same key is identical"
    )
    func pylibp2pSignature() throws {
        let rpc = try PubSubRPC.decode(Self.hex(Self.vector["rpc"]))
        let message = try #require(rpc.messages.first)
        let author = try message.verifiedAuthor()
        #expect("\(author)" == Self.vector["author"])
        #expect(
            PubSubMessage.signingPrefix + message.encoded(signed: false)
                == Self.hex(Self.vector["signedBytes"]))
        let key = try PrivateKey(ed25519Seed: Self.hex(Self.vector["seed"]))
        let ours = try PubSubMessage.signed(topic: message.topic, data: message.data, seqno: 7, by: key)
        #expect(ours.signature == Self.hex(Self.vector["signature"]))
        #expect(ours.key == nil, "an Ed25519 peer ID inlines its key")
        #expect(ours == message)
    }

    @Test(
        "a tampered message, a foreign key or a missing field fails StrictSign; StrictNoSign refuses signed messages"
    )
    func signatureFailures() throws {
        let key = try PrivateKey.generate(.ed25519)
        let message = try PubSubMessage.signed(topic: "t", data: [1, 2, 3], seqno: 1, by: key)
        try message.check(.strictSign)
        var tampered = message
        tampered.data = [1, 2, 4]
        #expect(throws: GossipError.self) { try tampered.check(.strictSign) }
        var foreign = message
        foreign.key = try PrivateKey.generate(.ed25519).publicKey.encoded.bytes
        #expect(throws: GossipError.self) { try foreign.check(.strictSign) }
        var unsigned = message
        unsigned.signature = nil
        #expect(throws: GossipError.self) { try unsigned.check(.strictSign) }
        #expect(throws: GossipError.self) { try message.check(.strictNoSign) }
        try PubSubMessage.anonymous(topic: "t", data: [1]).check(.strictNoSign)
        #expect(throws: GossipError.self) {
            try PubSubMessage.anonymous(topic: "t", data: [1]).check(.strictSign)
        }
    }

    @Test("an ECDSA author (peer ID is a hash) carries its key in the message, and it must match from")
    func keyField() throws {
        let key = try PrivateKey.generate(.ecdsa)
        let message = try PubSubMessage.signed(topic: "t", data: [9], seqno: 2, by: key)
        #expect(message.key == key.publicKey.encoded.bytes)
        #expect(try message.verifiedAuthor() == key.publicKey.peerID)
        var stripped = message
        stripped.key = nil
        #expect(throws: GossipError.self) { try stripped.verifiedAuthor() }
    }

    @Test("bad input gives typed errors naming the place: truncation, a non-UTF-8 topic, wrong wire types")
    func malformed() throws {
        let bytes = PubSubRPC(subscriptions: [.init(subscribe: true, topic: "abc")]).encoded()
        for cut in 1..<bytes.count {
            #expect(throws: GossipError.self) { try PubSubRPC.decode(Array(bytes.prefix(cut))) }
        }
        // Subscription with topic bytes FF FE.
        #expect(throws: GossipError.malformed("a topic is not UTF-8", offset: 2)) {
            try PubSubRPC.decode([0x0A, 0x04, 0x12, 0x02, 0xFF, 0xFE])
        }
        // A message whose data field is a varint.
        #expect(throws: GossipError.self) { try PubSubRPC.decode([0x12, 0x02, 0x10, 0x01]) }
        // Unknown fields are skipped (IDONTWANT, field 5 of the control message).
        let rpc = try PubSubRPC.decode([0x1A, 0x04, 0x2A, 0x02, 0x0A, 0x00])
        #expect(rpc.control?.isEmpty == true)
    }

    @Test("counts are bounded while reading: subscriptions, message IDs, control entries, PRUNE peers, size")
    func limits() throws {
        var limits = PubSubRPC.Limits()
        limits.maxSubscriptions = 3
        limits.maxMessageIDs = 5
        limits.maxControlEntries = 4
        limits.maxPrunePeers = 2
        limits.maxSize = 4_096
        let subscriptions = PubSubRPC(subscriptions: (0..<4).map { .init(subscribe: true, topic: "t\($0)") })
        #expect(throws: GossipError.tooLarge("subscriptions in one RPC", limit: 3)) {
            try PubSubRPC.decode(subscriptions.encoded(), limits: limits)
        }
        var control = PubSubRPC.Control()
        control.ihave = [.init(topic: "t", messageIDs: (0..<6).map { [UInt8($0)] })]
        #expect(throws: GossipError.self) {
            try PubSubRPC.decode(PubSubRPC(control: control).encoded(), limits: limits)
        }
        control = PubSubRPC.Control()
        control.graft = (0..<5).map { "t\($0)" }
        #expect(throws: GossipError.self) {
            try PubSubRPC.decode(PubSubRPC(control: control).encoded(), limits: limits)
        }
        control = PubSubRPC.Control()
        control.prune = [.init(topic: "t", peers: (0..<3).map { .init(peerID: [UInt8($0)]) })]
        #expect(throws: GossipError.self) {
            try PubSubRPC.decode(PubSubRPC(control: control).encoded(), limits: limits)
        }
        let big = PubSubRPC(messages: [.anonymous(topic: "t", data: [UInt8](repeating: 7, count: 5_000))])
        #expect(throws: GossipError.tooLarge("an RPC of \(big.encoded().count) bytes", limit: 4_096)) {
            try PubSubRPC.decode(big.encoded(), limits: limits)
        }
    }

    @Test("random RPCs round-trip; random bytes never trap")
    func roundTrips() throws {
        var random = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var rpc = PubSubRPC()
            for index in 0..<Int.random(in: 0...3, using: &random) {
                rpc.subscriptions.append(
                    .init(subscribe: Bool.random(using: &random), topic: "topic-\(index)"))
            }
            for _ in 0..<Int.random(in: 0...3, using: &random) {
                rpc.messages.append(
                    PubSubMessage(
                        from: Bool.random(using: &random) ? [1, 2, 3] : nil,
                        data: (0..<Int.random(in: 0...40, using: &random)).map { _ in
                            UInt8.random(in: 0...255, using: &random)
                        },
                        seqno: Bool.random(using: &random) ? [0, 0, 0, 0, 0, 0, 0, 1] : nil, topic: "x",
                        signature: Bool.random(using: &random) ? [9] : nil, key: nil))
            }
            if Bool.random(using: &random) {
                var control = PubSubRPC.Control()
                control.ihave = [.init(topic: "x", messageIDs: [[1], [2, 3]])]
                control.iwant = [[[4]]]
                control.graft = ["y"]
                control.prune = [
                    .init(topic: "z", peers: [.init(peerID: [5], signedPeerRecord: [6])], backoff: 10)
                ]
                rpc.control = control
            }
            #expect(try PubSubRPC.decode(rpc.encoded()) == rpc)
            var bytes = rpc.encoded()
            if !bytes.isEmpty {
                bytes[Int.random(in: 0..<bytes.count, using: &random)] = UInt8.random(
                    in: 0...255, using: &random)
                _ = try? PubSubRPC.decode(bytes)
            }
        }
    }
}

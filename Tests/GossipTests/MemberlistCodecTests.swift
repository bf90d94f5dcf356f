import Foundation
import PeerNet
import Testing

@testable import Gossip

@Suite("memberlist's wire format, against serf's own bytes")
struct MemberlistCodecTests {
    static let vector: (stream: [String: String], packets: [String: String]) = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Vectors/memberlist/serf-0.8.2.json")
        guard let data = try? Data(contentsOf: url),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return ([:], [:]) }
        return (object["stream"] as? [String: String] ?? [:], object["packets"] as? [String: String] ?? [:])
    }()

    static func packet(_ name: String) throws -> [UInt8] {
        let bytes = PubSubRPCTests.hex(vector.packets[name])
        try #require(!bytes.isEmpty, "Tests/Vectors/memberlist/serf-0.8.2.json: \(name)")
        return bytes
    }

    static let plain = MemberlistFraming(compression: false, checksum: false)

    static func messages(_ name: String) throws -> [MemberlistMessage] {
        try plain.messages(inPacket: try packet(name)).map { try $0.get() }
    }

    @Test("serf's CRC-framed compound of two alives: names, addresses, ports, tag meta, versions")
    func alive() throws {
        let messages = try Self.messages("crc-compound-alive-alive")
        #expect(messages.count == 2)
        guard case .alive(let first) = messages[0], case .alive(let second) = messages[1] else {
            Issue.record("\(messages)")
            return
        }
        #expect(first.node == "b" && first.port == 7947 && first.address == [127, 0, 0, 1])
        #expect(second.node == "a" && second.port == 7946 && second.incarnation == 1)
        // Serf's tags: magic byte 255, then an empty msgpack map.
        #expect(first.meta == [0xFF, 0x80])
        #expect(first.versions == [1, 5, 2, 2, 5, 5])
        // Re-encoded, each is serf's bytes again (field order and shortest forms alike).
        let packet = try Self.packet("crc-compound-alive-alive")
        let reframed = try MemberlistFraming(compression: false, checksum: true)
            .packet(messages.map { MemberlistCodec.encode($0) })
        #expect(reframed == packet)
    }

    @Test("ping with its source, and the ack with serf's Vivaldi coordinate as payload")
    func pingAck() throws {
        let ping = try Self.messages("ping")
        #expect(
            ping == [
                .ping(
                    MemberPing(
                        sequence: 1, node: "a", source: Endpoint("127.0.0.1:7947"), sourceNode: "b"))
            ])
        let ack = try Self.messages("ack-with-coordinate")
        guard case .ack(let sequence, let payload) = ack.first else {
            Issue.record("\(ack)")
            return
        }
        #expect(sequence == 1)
        // Serf's ping delegate: version byte 1, then a msgpack coordinate.
        #expect(payload.first == 1)
        let coordinate = try MessagePack.decodeOne(Array(payload.dropFirst()))
        #expect(coordinate["Vec"] != nil && coordinate["Height"] != nil)
    }

    @Test("an LZW-compressed ack, a compound of ping and dead, a graceful leave, a user message")
    func compressed() throws {
        let inflated = try Self.messages("compressed-compound")
        // a's answer to b's first ping: an ack whose coordinate payload made compression pay.
        #expect(inflated.count == 1)
        if case .ack(let sequence, let payload) = inflated.first {
            #expect(sequence == 1 && payload.first == 1)
        } else {
            Issue.record("\(inflated)")
        }
        let pingDead = try Self.messages("compound-ping-dead")
        #expect(pingDead.count == 2)
        #expect(pingDead.last == .dead(MemberAccusation(incarnation: 1, node: "b", from: "b")))
        #expect(
            try Self.messages("crc-dead-graceful-leave") == [
                .dead(MemberAccusation(incarnation: 1, node: "b", from: "b"))
            ])
        let user = try Self.messages("crc-user-join-intent")
        // Serf's join intent: type 1, then {LTime, Node}.
        guard case .user(let payload) = user.first else {
            Issue.record("\(user)")
            return
        }
        #expect(payload.first == 1)
        #expect(try MessagePack.decodeOne(Array(payload.dropFirst()))["Node"] == .bytes(Array("b".utf8)))
    }

    @Test("serf's compressed push-pull streams: a join from b, a's reply with its own view")
    func pushPull() throws {
        let join = PubSubRPCTests.hex(Self.vector.stream["join-push-pull-from-b"])
        try #require(!join.isEmpty)
        guard case .message(.pushPull(let request), let consumed) = try Self.plain.streamMessage(join) else {
            Issue.record("no push-pull")
            return
        }
        #expect(consumed == join.count)
        #expect(request.join)
        #expect(request.nodes.map(\.name) == ["b"])
        #expect(request.nodes[0].state == .alive && request.nodes[0].port == 7947)
        // Serf's own push-pull state rides along as user state (its type 2).
        #expect(request.userState.first == 2)
        let reply = PubSubRPCTests.hex(Self.vector.stream["push-pull-reply-from-a"])
        guard case .message(.pushPull(let answer), _) = try Self.plain.streamMessage(reply) else {
            Issue.record("no push-pull reply")
            return
        }
        // memberlist answers with the join flag it was sent, and its view before merging.
        #expect(answer.join)
        #expect(answer.nodes.map(\.name) == ["a"])
        // Every prefix of the stream is "need more", never an error.
        for cut in [1, 2, 10, join.count / 2, join.count - 1] {
            #expect(try Self.plain.streamMessage(Array(join.prefix(cut))) == .needMore)
        }
    }

    @Test("our own streams and packets round-trip: compressed, CRC, encrypted with a keyring of two")
    func roundTrip() throws {
        let alive = MemberlistMessage.alive(
            MemberAlive(
                incarnation: 3, node: "peerstack", address: [127, 0, 0, 1], port: 7000, meta: [],
                versions: [1, 5, 2, 2, 5, 5]))
        let ping = MemberlistMessage.ping(MemberPing(sequence: 9, node: "x"))
        let keyring = try MemberlistKeyring(keys: [
            Array(repeating: 7, count: 32), Array(repeating: 1, count: 16),
        ])
        let other = try MemberlistKeyring(keys: [Array(repeating: 1, count: 16)])
        let framing = MemberlistFraming(compression: true, checksum: true, keyring: keyring)
        let packet = try framing.packet([MemberlistCodec.encode(alive), MemberlistCodec.encode(ping)])
        #expect(try framing.messages(inPacket: packet).map { try $0.get() } == [alive, ping])
        // A member holding only the second key cannot open what the first key sealed.
        #expect(throws: MemberlistError.self) {
            try MemberlistFraming(keyring: other).messages(inPacket: packet)
        }
        let push = MemberlistMessage.pushPull(
            PushPull(
                join: true,
                nodes: [
                    PushNodeState(
                        name: "n", address: [10, 0, 0, 1], port: 1, meta: [1], incarnation: 2,
                        state: .suspect, versions: [1, 5, 2, 0, 0, 0])
                ], userState: [2, 3]))
        let stream = try framing.stream(MemberlistCodec.encode(push))
        #expect(try framing.streamMessage(stream) == .message(push, consumed: stream.count))
        #expect(try framing.streamMessage(Array(stream.prefix(20))) == .needMore)
        // Unencrypted framing refuses nothing it wrote itself, and LZW round-trips long input.
        let long =
            (0..<20_000).map { UInt8(truncatingIfNeeded: $0 * 7 % 253) } + Array(repeating: 0, count: 9000)
        #expect(try LZW.decompress(LZW.compress(long), limit: 1 << 20) == long)
        #expect(try LZW.decompress(LZW.compress([]), limit: 10) == [])
    }

    @Test("hostile bytes: typed errors, no traps; bombs and counts bounded")
    func hostile() {
        let framing = MemberlistFraming()
        // A bad CRC.
        #expect(throws: MemberlistError.self) { try framing.messages(inPacket: [12, 0, 0, 0, 0, 0]) }
        #expect(throws: MemberlistError.self) { try framing.messages(inPacket: [99]) }
        // A compound announcing 255 parts in 3 bytes.
        #expect(throws: MemberlistError.self) { try framing.messages(inPacket: [7, 255, 0]) }
        // A map announcing 2^32-1 entries.
        #expect(throws: MemberlistError.self) {
            try MemberlistCodec.decode([0, 0xDF, 0xFF, 0xFF, 0xFF, 0xFF])
        }
        // A push-pull announcing a million nodes.
        var header: [UInt8] = [6]
        MessagePack.append(
            MessagePack.structure([
                ("Nodes", .int(1_000_000)), ("UserStateLen", .int(0)), ("Join", .bool(false)),
            ]), to: &header)
        #expect(throws: MemberlistError.self) { try framing.streamMessage(header) }
        // An LZW stream of repeated codes expands past its limit: refused, not allocated.
        let bomb = LZW.compress(Array(repeating: 0, count: 100_000))
        #expect(throws: LZW.Failure.self) { try LZW.decompress(bomb, limit: 1000) }
        // Wrong types name the field.
        var ping: [UInt8] = [0]
        MessagePack.append(MessagePack.structure([("SeqNo", .bytes([1]))]), to: &ping)
        #expect(
            throws: MemberlistError.field(.ping, "SeqNo", expected: "an unsigned integer up to 4294967295")
        ) {
            try MemberlistCodec.decode(ping)
        }
    }
}

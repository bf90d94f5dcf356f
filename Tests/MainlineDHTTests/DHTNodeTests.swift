import Bencode
import Crypto
import Kademlia
import MainlineDHT
import PeerNet
import TestSupport
import Testing

/// BEP 42's and BEP 44's own test vectors.
struct SpecVectorTests {
    static func hex(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        var index = text.startIndex
        while index < text.endIndex {
            let next = text.index(index, offsetBy: 2)
            bytes.append(UInt8(text[index..<next], radix: 16) ?? 0)
            index = next
        }
        return bytes
    }

    /// BEP 42: (IP, rand) → the first three bytes (the last three bits of the third are free).
    @Test(
        "BEP 42 secure node IDs",
        arguments: [
            ([124, 31, 75, 21], 1, "5fbfbf"), ([21, 75, 31, 124], 86, "5a3ce9"),
            ([65, 23, 51, 170], 22, "a5d432"),
            ([84, 124, 73, 14], 65, "1b0321"), ([43, 213, 53, 83], 90, "e56f6c"),
        ] as [([UInt8], UInt8, String)])
    func secureIDs(ip: [UInt8], r: UInt8, prefix: String) throws {
        let id = try #require(SecureNodeID.make(ip: ip, r: r, random: [UInt8](repeating: 0, count: 20)))
        let expected = Self.hex(prefix)
        #expect(Array(id.bytes.prefix(2)) == Array(expected.prefix(2)))
        #expect(id.bytes[2] & 0xF8 == expected[2] & 0xF8 && id.bytes[19] == r)
        #expect(SecureNodeID.isValid(id, ip: ip))
        var other = ip
        other[3] ^= 0x01
        #expect(!SecureNodeID.isValid(id, ip: other), "an ID is bound to its IP")
        // BEP 42 does not apply to local addresses.
        #expect(
            SecureNodeID.isValid(id, ip: [192, 168, 1, 9]) && SecureNodeID.isValid(id, ip: [127, 0, 0, 1]))
    }

    static let publicKey = hex("77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548")

    @Test("BEP 44 test 1: a mutable item's signature, signed bytes and target")
    func mutableVector() throws {
        let value = Array("12:Hello World!".utf8)
        #expect(
            DHTItem.signedBytes(salt: [], seq: 1, value: value) == Array("3:seqi1e1:v12:Hello World!".utf8))
        let item = DHTItem(
            value: value, key: Self.publicKey,
            signature: Self.hex(
                "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01"
            ), seq: 1, salt: [])
        try item.validate()
        #expect(item.target.hex == "4a533d47ec9c7d95b1ad75f576cffc641853b750")
        var forged = item
        forged.seq = 2
        #expect(throws: DHTItem.Problem.badSignature) { try forged.validate() }
    }

    @Test("BEP 44 test 2: a mutable item with a salt")
    func saltedVector() throws {
        let value = Array("12:Hello World!".utf8)
        let salt = Array("foobar".utf8)
        #expect(
            DHTItem.signedBytes(salt: salt, seq: 1, value: value)
                == Array("4:salt6:foobar3:seqi1e1:v12:Hello World!".utf8))
        let item = DHTItem(
            value: value, key: Self.publicKey,
            signature: Self.hex(
                "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17ddf9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08"
            ), seq: 1, salt: salt)
        try item.validate()
        #expect(item.target.hex == "411eba73b6f087ca51a3795d9c8c938d365e32c1")
    }

    /// The target is SHA-1 of the bencoded value (checked here against Python's hashlib).
    @Test("BEP 44 test 3: an immutable item's target")
    func immutableVector() throws {
        let item = DHTItem(immutable: Array("12:Hello World!".utf8))
        try item.validate()
        #expect(item.target.hex == "e5f96f6f38320f0f33959cb4d3d656452117aadb")
        #expect(throws: DHTItem.Problem.valueTooBig) {
            try DHTItem(immutable: BencodeValue.bytes([UInt8](repeating: 1, count: 1_000)).encoded())
                .validate()
        }
    }
}

/// A few DHT nodes wired to each other in memory (no sockets, virtual time), and hostile input.
struct DHTNodeTests {
    struct Mesh {
        var nodes: [DHTNode] = []
        var now: KademliaTime = .zero
        var finished: [Int: [DHTOperationID: DHTResult]] = [:]
        var queue: [(to: Int, from: Int, bytes: [UInt8])] = []
        var random = SeededGenerator(state: 3)

        static func address(_ index: Int) -> Endpoint {
            Endpoint(ip: [10, 0, 0, UInt8(index + 1)], port: 6881)!
        }

        init(count: Int) {
            for index in 0..<count {
                var bytes = [UInt8](repeating: 0, count: 20)
                bytes[0] = UInt8(index * 37 & 0xFF)
                bytes[1] = UInt8(index)
                nodes.append(
                    DHTNode(
                        ownID: NodeID(bytes: bytes)!, secret: SymmetricKey(size: .bits256), now: .zero))
            }
        }

        mutating func apply(_ actions: [DHTAction], of node: Int) {
            for action in actions {
                switch action {
                case .send(let bytes, let address):
                    if let target = (0..<nodes.count).first(where: { Self.address($0) == address }) {
                        queue.append((target, node, bytes))
                    }
                case .finished(let id, let result):
                    finished[node, default: [:]][id] = result
                }
            }
        }

        /// Delivers everything (each hop 10 ms), ticking timers, until quiet or 30 s pass.
        mutating func settle() {
            let end = now + .seconds(30)
            while now < end {
                if queue.isEmpty {
                    now += .milliseconds(500)
                    for index in nodes.indices {
                        apply(nodes[index].timerFired(now: now, random: &random), of: index)
                    }
                    if queue.isEmpty && nodes.allSatisfy({ $0.activeOperations == 0 }) { return }
                    continue
                }
                now += .milliseconds(10)
                let batch = queue
                queue.removeAll()
                for packet in batch {
                    apply(
                        nodes[packet.to].received(packet.bytes, from: Self.address(packet.from), now: now),
                        of: packet.to)
                }
            }
        }

        mutating func run(_ node: Int, _ operation: DHTOperation) -> DHTResult? {
            let (id, actions) = nodes[node].run(operation, now: now)
            apply(actions, of: node)
            settle()
            return finished[node]?[id]
        }
    }

    @Test("nodes bootstrap, announce, find peers, and store and read BEP 44 items")
    func meshOfSix() throws {
        var mesh = Mesh(count: 6)
        for index in 1..<6 {
            let (_, actions) = mesh.nodes[index].bootstrap(from: [Mesh.address(0)], now: mesh.now)
            mesh.apply(actions, of: index)
            mesh.settle()
        }
        #expect(mesh.nodes.allSatisfy { $0.routing.count >= 3 }, "\(mesh.nodes.map(\.routing.count))")
        let hash = NodeID(bytes: Array(repeating: 0x42, count: 20))!
        let result1 = mesh.run(1, .getPeers(hash, announcePort: 7_777, impliedPort: false))
        let announce = try #require(result1)
        #expect(announce.stored >= 3)
        let result2 = mesh.run(4, .getPeers(hash, announcePort: nil, impliedPort: false))
        let found = try #require(result2)
        #expect(found.peers == [Endpoint(ip: [10, 0, 0, 2], port: 7_777)!])

        let key = Curve25519.Signing.PrivateKey()
        let first = try DHTItem(mutable: Array("3:one".utf8), seq: 1, salt: Array("s".utf8), signer: key)
        let result3 = mesh.run(2, .put(first))
        #expect(try #require(result3).stored >= 3)
        let second = try DHTItem(mutable: Array("3:two".utf8), seq: 2, salt: Array("s".utf8), signer: key)
        let result4 = mesh.run(3, .put(second))
        #expect(try #require(result4).stored >= 3)
        // An older seq is refused by every node that has the newer one (BEP 44, error 302): only
        // node 3, which put the newer one and so never stored it, takes the old one again.
        let result5 = mesh.run(2, .put(first))
        #expect(try #require(result5).stored == 1)
        let result6 = mesh.run(5, .get(first.target, salt: Array("s".utf8)))
        let read = try #require(result6)
        #expect(read.item?.value == Array("3:two".utf8) && read.item?.seq == 2)
        // The wrong salt does not verify: nothing is accepted.
        let result7 = mesh.run(5, .get(first.target, salt: Array("t".utf8)))
        let wrong = try #require(result7)
        #expect(wrong.item == nil)

        // The routing table survives a restart.
        let snapshot = mesh.nodes[3].snapshot
        let restored = try #require(RoutingSnapshot(decoding: snapshot.encoded()))
        #expect(restored == snapshot && restored.nodes.count == mesh.nodes[3].routing.count)
        // Once our public IP is known, a restart takes a BEP 42 ID for it; a local IP changes nothing.
        var generator = SeededGenerator(state: 9)
        var seen = restored
        seen.externalIP = [124, 31, 75, 21]
        let secure = try #require(RoutingSnapshot(decoding: seen.encoded())).startingID(using: &generator)
        #expect(secure != restored.ownID && SecureNodeID.isValid(secure, ip: [124, 31, 75, 21]))
        seen.externalIP = [10, 0, 0, 4]
        #expect(seen.startingID(using: &generator) == restored.ownID)
    }

    @Test("hostile datagrams are dropped or answered with an error, and change nothing")
    func hostileInput() throws {
        var node = DHTNode(
            ownID: NodeID(bytes: Array(repeating: 1, count: 20))!, secret: SymmetricKey(size: .bits256),
            now: .zero)
        let attacker = Endpoint(ip: [10, 9, 9, 9], port: 4_000)!
        // An unsolicited response (no query of ours has this transaction): dropped.
        let unsolicited = "d1:rd2:id20:abcdefghij0123456789e1:t2:zz1:y1:re"
        #expect(node.received(Array(unsolicited.utf8), from: attacker, now: .seconds(1)).isEmpty)
        #expect(node.dropped == 1 && node.routing.count == 0)
        // Wrong types in a query: a 203 error back, nothing learnt.
        let badTarget = "d1:ad2:id20:abcdefghij01234567896:targeti5ee1:q9:find_node1:t2:aa1:y1:qe"
        let answer = node.received(Array(badTarget.utf8), from: attacker, now: .seconds(1))
        guard case .send(let bytes, let to)? = answer.first else {
            Issue.record("no error reply")
            return
        }
        #expect(to == attacker)
        let decoded = try KRPCCodec.decode(bytes)
        guard case .error(let code, _) = decoded.body else {
            Issue.record("not an error: \(decoded)")
            return
        }
        #expect(code == 203 && decoded.transactionID == Array("aa".utf8) && node.routing.count == 0)
        // A huge `nodes` field is beyond the packet bound: not even parsed.
        let huge =
            "d1:rd2:id20:abcdefghij01234567895:nodes9100:" + String(repeating: "x", count: 9_100)
            + "e1:t2:zz1:y1:re"
        #expect(node.received(Array(huge.utf8), from: attacker, now: .seconds(2)).isEmpty)
        // Garbage: dropped without a reply.
        #expect(node.received([0xFF, 0x00, 0x13], from: attacker, now: .seconds(2)).isEmpty)

        // A reply to a real query, but from another address than the one asked: dropped.
        let (_, sent) = node.run(.findNode(NodeID(bytes: Array(repeating: 7, count: 20))!), now: .seconds(3))
        #expect(
            sent.isEmpty || sent.allSatisfy { if case .finished = $0 { return true } else { return false } })
        let friend = Endpoint(ip: [10, 1, 1, 1], port: 6_881)!
        let ping = node.ping(friend, now: .seconds(3))
        guard case .send(let query, _)? = ping.first else {
            Issue.record("no ping sent")
            return
        }
        let transaction = try KRPCCodec.decode(query).transactionID
        var spoofed = KRPCMessage(
            transactionID: transaction, senderID: NodeID(bytes: Array(repeating: 9, count: 20)),
            body: .response(KRPCResponse()))
        spoofed.version = nil
        _ = node.received(KRPCCodec.encode(spoofed), from: attacker, now: .seconds(3))
        #expect(node.routing.count == 0, "a spoofed reply must not enter the table")
        _ = node.received(KRPCCodec.encode(spoofed), from: friend, now: .seconds(3))
        #expect(node.routing.count == 1, "the real reply does")
    }
}

@Suite("DHT replies to forged sources")
struct AmplificationTests {
    static func node() -> DHTNode {
        DHTNode(
            ownID: NodeID(bytes: Array(repeating: 1, count: 20))!, secret: SymmetricKey(size: .bits256),
            now: .zero)
    }

    @Test(
        "queries drawing error replies are rate-limited like every other reply, and no larger than 4x the query"
    )
    func errorReplies() {
        var node = Self.node()
        let spoofed = Endpoint("10.9.9.9:4000")!
        let bad = Array("d1:ad2:id20:abcdefghij01234567896:targeti5ee1:q9:find_node1:t2:aa1:y1:qe".utf8)
        var replies = 0
        for _ in 0..<1_000 {
            for case .send(let bytes, _) in node.received(bad, from: spoofed, now: .seconds(1)) {
                replies += 1
                #expect(bytes.count <= 4 * bad.count)
            }
        }
        // DHTResponder.Configuration: 20 replies a second per IP, bursts of 50.
        #expect(replies > 0 && replies <= 50, "\(replies) error replies to one address in one second")
    }

    @Test("a get_peers reply to an unverified address is trimmed to 4x the query")
    func trimmedReplies() throws {
        var node = Self.node()
        let infoHash = NodeID(bytes: Array(repeating: 7, count: 20))!
        // Many peers announce (each with a valid token) so a reply would carry them all.
        for index in 0..<100 {
            let announcer = Endpoint(ip: IPAddress(v4: 0x0A01_0000 | UInt32(index)), port: 6881)
            let id = String(format: "%020d", index)
            let ask =
                "d1:ad2:id20:\(id)9:info_hash20:\(String(repeating: "\u{7}", count: 20))e1:q9:get_peers1:t2:aa1:y1:qe"
            guard
                case .send(let bytes, _)? = node.received(Array(ask.utf8), from: announcer, now: .seconds(1))
                    .first,
                case .response(let response) = try KRPCCodec.decode(bytes).body, let token = response.token
            else { continue }
            var announce = KRPCMessage(
                transactionID: Array("bb".utf8), senderID: NodeID(bytes: Array(id.utf8)),
                body: .query(.announcePeer(infoHash: infoHash, port: 6881, token: token, impliedPort: false)))
            announce.version = nil
            _ = node.received(KRPCCodec.encode(announce), from: announcer, now: .seconds(1))
        }
        let spoofed = Endpoint("10.9.9.9:4000")!
        let query = Array(
            "d1:ad2:id20:zzzzzzzzzzzzzzzzzzzz9:info_hash20:\(String(repeating: "\u{7}", count: 20))e1:q9:get_peers1:t2:cc1:y1:qe"
                .utf8)
        let replies = node.received(query, from: spoofed, now: .seconds(2))
        guard case .send(let bytes, _)? = replies.first else {
            Issue.record("no reply")
            return
        }
        #expect(bytes.count <= 4 * query.count)
        guard case .response(let response) = try KRPCCodec.decode(bytes).body else {
            Issue.record("not a response")
            return
        }
        #expect(!response.values.isEmpty && response.values.count < 100)
    }
}

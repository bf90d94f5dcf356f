import Gossip
import PeerNet
import Testing

/// Routers joined in memory: RPCs go through the codec and arrive in order, time moves by hand.
struct Overlay {
    var routers: [GossipSubRouter<NodeNumber>]
    var now: Duration = .zero
    var queue: [(to: Int, from: Int, bytes: [UInt8])] = []
    var delivered: [[String]]
    var connects: [[NodeNumber]] = []
    var validate: (Int, PubSubMessage) -> ValidationResult = { _, _ in .accept }

    init(count: Int, configuration: GossipSubConfiguration) {
        routers = (0..<count).map { GossipSubRouter(configuration: configuration, seed: UInt64($0) + 1) }
        delivered = Array(repeating: [], count: count)
    }

    static var anonymous: GossipSubConfiguration {
        var configuration = GossipSubConfiguration()
        configuration.signaturePolicy = .strictNoSign
        configuration.messageID = { $0.data }
        return configuration
    }

    mutating func apply(_ actions: [GossipAction<NodeNumber>], at node: Int) {
        for action in actions {
            switch action {
            case .send(let peer, let rpc): queue.append((peer.value, node, rpc.encoded()))
            case .deliver(let message, _, _):
                delivered[node].append(String(decoding: message.data, as: UTF8.self))
            case .connect(let peers): connects.append(peers)
            }
        }
    }

    mutating func connect(_ a: Int, _ b: Int, proto: PubSubProtocol = .meshsub11) {
        apply(routers[a].addPeer(NodeNumber(b), protocol: proto, outbound: true, now: now), at: a)
        apply(routers[b].addPeer(NodeNumber(a), protocol: proto, outbound: false, now: now), at: b)
    }

    /// Delivers queued RPCs until none are left.
    mutating func drain(limit: Int = 1_000_000) {
        var steps = 0
        while !queue.isEmpty, steps < limit {
            let (to, from, bytes) = queue.removeFirst()
            guard let rpc = try? PubSubRPC.decode(bytes) else { continue }
            let check = validate
            apply(routers[to].receive(rpc, from: NodeNumber(from), now: now) { check(to, $0) }, at: to)
            steps += 1
        }
    }

    mutating func heartbeats(_ count: Int) {
        for _ in 0..<count {
            now += .seconds(1)
            for index in routers.indices { apply(routers[index].heartbeat(now: now), at: index) }
            drain()
        }
    }

    mutating func subscribeAll(_ topic: String) {
        for index in routers.indices { apply(routers[index].subscribe(topic, now: now), at: index) }
        drain()
    }

    mutating func publish(_ text: String, from node: Int, topic: String = "t") {
        apply(routers[node].publish(.anonymous(topic: topic, data: Array(text.utf8)), now: now), at: node)
        drain()
    }
}

@Suite("GossipSub router (no I/O)")
struct GossipSubRouterTests {
    /// A random overlay: each node dials `degree` others.
    static func overlay(_ count: Int, degree: Int, seed: UInt64 = 7) -> Overlay {
        var overlay = Overlay(count: count, configuration: Overlay.anonymous)
        var random = SplitMix64(seed: seed)
        var links = Set<[Int]>()
        for node in 0..<count {
            while links.filter({ $0[0] == node }).count < degree {
                let other = Int(random.next() % UInt64(count))
                guard other != node, !links.contains([other, node]) else { continue }
                if links.insert([node, other]).inserted { overlay.connect(node, other) }
            }
        }
        return overlay
    }

    @Test(
        "on a 60-node overlay the meshes settle between D_low and D_high, and each message reaches every node once"
    )
    func meshDelivery() {
        var overlay = Self.overlay(60, degree: 8)
        overlay.subscribeAll("t")
        overlay.heartbeats(5)
        for index in overlay.routers.indices {
            let mesh = overlay.routers[index].meshPeers("t").count
            let known = overlay.routers[index].peers(in: "t").count
            #expect(mesh >= min(5, known) && mesh <= 12, "node \(index): mesh \(mesh) of \(known)")
        }
        for n in 0..<5 { overlay.publish("m\(n)", from: n * 11) }
        for index in overlay.routers.indices {
            let expected = (0..<5).map { "m\($0)" }.filter { !(index == Int($0.dropFirst())! * 11) }
            #expect(overlay.delivered[index].sorted() == expected.sorted(), "node \(index)")
        }
        let duplicates = overlay.routers.map(\.statistics.duplicates).reduce(0, +)
        let sent = overlay.routers.map(\.statistics.messagesSent).reduce(0, +)
        // Flooding sends each message over every link end: the sum of the peer counts.
        let flooding = 5 * overlay.routers.map(\.connectedPeers.count).reduce(0, +)
        #expect(
            sent * 3 < flooding * 2,
            "the mesh sends fewer copies than flooding would (\(sent) of \(flooding))")
        #expect(duplicates < sent)
    }

    @Test("a node outside every mesh gets a message by IHAVE/IWANT gossip")
    func gossipRepair() throws {
        var configuration = Overlay.anonymous
        configuration.d = 1
        configuration.dLow = 1
        configuration.dHigh = 1
        configuration.dScore = 0
        configuration.dOut = 0
        var overlay = Overlay(count: 3, configuration: configuration)
        overlay.connect(0, 1)
        overlay.connect(0, 2)
        overlay.subscribeAll("t")
        overlay.heartbeats(2)
        // Node 0 keeps one mesh peer (D = 1); the other one's GRAFT was refused.
        let meshed = overlay.routers[0].meshPeers("t")
        try #require(meshed.count == 1)
        let via = try #require(meshed.first).value
        let outside = via == 1 ? 2 : 1
        // A message from the mesh peer reaches node 0, which forwards it only to its mesh.
        overlay.publish("relayed", from: via)
        #expect(overlay.delivered[0] == ["relayed"])
        #expect(overlay.delivered[outside].isEmpty)
        // At the heartbeat node 0 advertises it (IHAVE); the outsider asks (IWANT) and gets it.
        overlay.heartbeats(1)
        #expect(overlay.routers[0].statistics.ihaveSent > 0)
        #expect(overlay.routers[outside].statistics.iwantSent > 0)
        #expect(overlay.delivered[outside] == ["relayed"])
    }

    @Test("an IHAVE whose message never comes breaks a promise: P7 makes the peer's score negative")
    func brokenPromise() {
        var overlay = Overlay(count: 2, configuration: Overlay.anonymous)
        overlay.connect(0, 1)
        overlay.subscribeAll("t")
        var control = PubSubRPC.Control()
        control.ihave = [.init(topic: "t", messageIDs: [Array("never".utf8)])]
        let actions = overlay.routers[0].receive(
            PubSubRPC(control: control), from: NodeNumber(1), now: overlay.now)
        let asked = actions.contains {
            if case .send(_, let rpc) = $0 { return rpc.control?.iwant == [[Array("never".utf8)]] }
            return false
        }
        #expect(asked, "an IWANT went back")
        overlay.now += .seconds(4)
        _ = overlay.routers[0].heartbeat(now: overlay.now)
        #expect(overlay.routers[0].statistics.brokenPromises == 1)
        #expect(overlay.routers[0].score(NodeNumber(1), now: overlay.now) < 0)
    }

    @Test("IHAVE floods are cut at 10 per heartbeat; IWANT is answered at most 3 times per message and peer")
    func gossipBounds() {
        var overlay = Overlay(count: 2, configuration: Overlay.anonymous)
        overlay.connect(0, 1)
        overlay.subscribeAll("t")
        var iwants = 0
        for n in 0..<50 {
            var control = PubSubRPC.Control()
            control.ihave = [.init(topic: "t", messageIDs: [Array("id\(n)".utf8)])]
            for action in overlay.routers[0].receive(
                PubSubRPC(control: control), from: NodeNumber(1), now: overlay.now)
            {
                if case .send(_, let rpc) = action, rpc.control?.iwant.isEmpty == false { iwants += 1 }
            }
        }
        #expect(iwants == 10)
        overlay.apply(
            overlay.routers[0].publish(.anonymous(topic: "t", data: Array("x".utf8)), now: overlay.now), at: 0
        )
        overlay.queue = []
        var answered = 0
        for _ in 0..<10 {
            var control = PubSubRPC.Control()
            control.iwant = [[Array("x".utf8)]]
            for action in overlay.routers[0].receive(
                PubSubRPC(control: control), from: NodeNumber(1), now: overlay.now)
            {
                if case .send(_, let rpc) = action { answered += rpc.messages.count }
            }
        }
        #expect(answered == 3)
    }

    @Test(
        "a GRAFT during backoff is answered with PRUNE and penalised; PRUNE's peer exchange is followed only from a well-scored peer"
    )
    func graftAndPrune() {
        var overlay = Overlay(count: 3, configuration: Overlay.anonymous)
        overlay.connect(0, 1)
        overlay.subscribeAll("t")
        var prune = PubSubRPC.Control()
        prune.prune = [.init(topic: "t", peers: [.init(peerID: NodeNumber(2).wireID)], backoff: 60)]
        _ = overlay.routers[0].receive(PubSubRPC(control: prune), from: NodeNumber(1), now: overlay.now)
        #expect(!overlay.routers[0].meshPeers("t").contains(NodeNumber(1)))
        #expect(overlay.connects.isEmpty, "a peer of score 0 is below the accept-PX threshold (10)")
        // Node 1 now GRAFTs back at once: refused with a PRUNE.
        var graft = PubSubRPC.Control()
        graft.graft = ["t"]
        let answer = overlay.routers[0].receive(
            PubSubRPC(control: graft), from: NodeNumber(1), now: overlay.now)
        let pruned = answer.contains {
            if case .send(_, let rpc) = $0 { return rpc.control?.prune.first?.topic == "t" }
            return false
        }
        #expect(pruned)
        #expect(overlay.routers[0].score(NodeNumber(1), now: overlay.now) < 0, "P7 for a GRAFT in backoff")
        #expect(!overlay.routers[0].meshPeers("t").contains(NodeNumber(1)))
        // The meshes do not take node 1 back while its backoff lasts.
        overlay.heartbeats(3)
        #expect(!overlay.routers[0].meshPeers("t").contains(NodeNumber(1)))
    }

    @Test(
        "rejected messages are not delivered or forwarded; three make the sender graylisted and its RPCs ignored"
    )
    func rejectAndGraylist() {
        var overlay = Overlay(count: 3, configuration: Overlay.anonymous)
        overlay.connect(0, 1)
        overlay.connect(1, 2)
        overlay.subscribeAll("t")
        overlay.heartbeats(1)
        overlay.validate = { node, message in
            node == 1 && message.data.starts(with: Array("bad".utf8)) ? .reject : .accept
        }
        for n in 0..<3 { overlay.publish("bad\(n)", from: 0) }
        #expect(overlay.delivered[1].isEmpty)
        #expect(overlay.delivered[2].isEmpty, "node 1 forwarded nothing it rejected")
        #expect(overlay.routers[1].statistics.rejected == 3)
        // P4: 3² × -10 = -90, below the graylist threshold (-80).
        #expect(overlay.routers[1].score(NodeNumber(0), now: overlay.now) < -80)
        overlay.publish("good", from: 0)
        #expect(overlay.delivered[1].isEmpty, "a graylisted peer's RPCs are dropped whole")
        #expect(overlay.routers[1].statistics.graylisted >= 1)
    }

    @Test("ignored messages are dropped without penalty; duplicates are delivered once")
    func ignoreAndDuplicates() {
        var overlay = Overlay(count: 3, configuration: Overlay.anonymous)
        overlay.connect(0, 1)
        overlay.connect(0, 2)
        overlay.connect(1, 2)
        overlay.subscribeAll("t")
        overlay.heartbeats(1)
        overlay.validate = { _, message in message.data == Array("skip".utf8) ? .ignore : .accept }
        overlay.publish("skip", from: 0)
        #expect(overlay.delivered[1].isEmpty && overlay.delivered[2].isEmpty)
        #expect(overlay.routers[1].score(NodeNumber(0), now: overlay.now) >= 0)
        overlay.publish("twice", from: 0)
        #expect(overlay.delivered[1] == ["twice"] && overlay.delivered[2] == ["twice"])
        #expect(overlay.routers.map(\.statistics.duplicates).reduce(0, +) > 0, "the triangle sends copies")
    }

    @Test(
        "a peer may subscribe to at most maxTopicsPerPeer topics; floodsub peers get messages without a mesh")
    func topicBoundAndFloodsub() {
        var configuration = Overlay.anonymous
        configuration.maxTopicsPerPeer = 5
        var overlay = Overlay(count: 3, configuration: configuration)
        overlay.connect(0, 1)
        overlay.connect(0, 2, proto: .floodsub)
        let many = PubSubRPC(subscriptions: (0..<20).map { .init(subscribe: true, topic: "x\($0)") })
        _ = overlay.routers[0].receive(many, from: NodeNumber(1), now: overlay.now)
        #expect(overlay.routers[0].topics(of: NodeNumber(1)).count == 5)
        overlay.subscribeAll("t")
        overlay.heartbeats(2)
        #expect(
            !overlay.routers[0].meshPeers("t").contains(NodeNumber(2)), "floodsub peers are never in a mesh")
        overlay.publish("to all", from: 1)
        #expect(overlay.delivered[2] == ["to all"], "node 0 forwarded to its floodsub peer")
    }

    @Test("the same seed gives the same run")
    func deterministic() {
        func run() -> [Int] {
            var overlay = Self.overlay(40, degree: 6, seed: 3)
            overlay.subscribeAll("t")
            overlay.heartbeats(4)
            overlay.publish("m", from: 0)
            return overlay.routers.map {
                $0.meshPeers("t").map(\.value).sorted().reduce(0) { $0 &* 31 &+ $1 }
            }
        }
        #expect(run() == run())
    }
}

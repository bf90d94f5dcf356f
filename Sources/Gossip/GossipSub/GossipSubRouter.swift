import PeerNet

/// What the router asks its driver to do.
public enum GossipAction<Peer: GossipPeer>: Sendable {
    /// Send this RPC to the peer (one per peer per call; the driver frames it).
    case send(Peer, PubSubRPC)
    /// A valid message, new to this node, on a topic it subscribes to: hand it to the application.
    case deliver(PubSubMessage, id: [UInt8], from: Peer)
    /// Peer exchange: a PRUNE from a well-scored peer named these peers to connect to.
    case connect([Peer])
}

/// Counters a driver or simulation reports.
public struct GossipStatistics: Sendable, Hashable {
    public var delivered = 0
    public var duplicates = 0
    public var rejected = 0
    public var ignored = 0
    public var messagesSent = 0
    public var rpcsSent = 0
    public var ihaveSent = 0
    public var iwantSent = 0
    public var graftsSent = 0
    public var prunesSent = 0
    /// RPCs dropped whole because their sender is below the graylist threshold.
    public var graylisted = 0
    public var brokenPromises = 0
    public init() {}
}

/// GossipSub v1.1 as a value (the pubsub and gossipsub specs), with floodsub peers served as
/// floodsub does. Events go in with the time; actions come out. Randomness comes from the seed
/// given at creation, so a run is reproducible (the simulator relies on it).
public struct GossipSubRouter<Peer: GossipPeer>: Sendable {
    struct PeerState: Sendable {
        var proto: PubSubProtocol
        var outbound: Bool
        var topics: Set<String> = []
    }

    public let configuration: GossipSubConfiguration
    private var random: SplitMix64
    private var peers: [Peer: PeerState] = [:]
    private var topicPeers: [String: Set<Peer>] = [:]
    public private(set) var subscriptions: Set<String> = []
    private var mesh: [String: Set<Peer>] = [:]
    private var fanout: [String: Set<Peer>] = [:]
    private var lastPublished: [String: Duration] = [:]
    private var backoff: [String: [Peer: Duration]] = [:]
    private var cache: MessageCache<Peer>
    private var seen: SeenCache
    private var scores: PeerScore<Peer>?
    private var ihaveReceived: [Peer: Int] = [:]
    private var idsAsked: [Peer: Int] = [:]
    /// IWANT promises: message ID → (peer, deadline).
    private var promises: [[UInt8]: [Peer: Duration]] = [:]
    private var ticks = 0
    private var outbox: [Peer: PubSubRPC] = [:]
    private var actions: [GossipAction<Peer>] = []
    public private(set) var statistics = GossipStatistics()

    public init(configuration: GossipSubConfiguration = GossipSubConfiguration(), seed: UInt64) {
        self.configuration = configuration
        random = SplitMix64(seed: seed)
        cache = MessageCache(length: configuration.historyLength, gossip: configuration.historyGossip)
        seen = SeenCache(ttl: configuration.seenTTL)
        scores = configuration.score.map { PeerScore(parameters: $0) }
    }

    // MARK: Queries

    public var connectedPeers: [Peer] { Array(peers.keys) }
    public func meshPeers(_ topic: String) -> Set<Peer> { mesh[topic] ?? [] }
    public func fanoutPeers(_ topic: String) -> Set<Peer> { fanout[topic] ?? [] }
    /// Peers known to subscribe to `topic`.
    public func peers(in topic: String) -> Set<Peer> { topicPeers[topic] ?? [] }
    public func topics(of peer: Peer) -> Set<String> { peers[peer]?.topics ?? [] }
    public func protocolOf(_ peer: Peer) -> PubSubProtocol? { peers[peer]?.proto }
    public func score(_ peer: Peer, now: Duration) -> Double { scores?.score(peer, now: now) ?? 0 }
    public var cachedMessages: Int { cache.count }
    public var seenMessages: Int { seen.count }

    /// Sets P5 for a peer (the application's own opinion of it).
    public mutating func setApplicationScore(_ peer: Peer, _ value: Double) {
        scores?.setApplicationScore(peer, value)
    }

    // MARK: Events

    /// A pubsub stream to `peer` is open: it is told our subscriptions.
    public mutating func addPeer(
        _ peer: Peer, protocol proto: PubSubProtocol, outbound: Bool, ip: String? = nil, now: Duration
    ) -> [GossipAction<Peer>] {
        guard peers[peer] == nil else { return [] }
        peers[peer] = PeerState(proto: proto, outbound: outbound)
        scores?.addPeer(peer, ip: ip)
        if !subscriptions.isEmpty {
            let announce = subscriptions.sorted().map { PubSubRPC.Subscription(subscribe: true, topic: $0) }
            append(to: peer) { $0.subscriptions += announce }
        }
        return flush()
    }

    /// The peer's connection closed.
    public mutating func removePeer(_ peer: Peer, now: Duration) {
        guard let state = peers.removeValue(forKey: peer) else { return }
        for topic in state.topics {
            topicPeers[topic]?.remove(peer)
            if topicPeers[topic]?.isEmpty == true { topicPeers[topic] = nil }
            if mesh[topic]?.remove(peer) != nil { scores?.prune(peer, topic: topic) }
            fanout[topic]?.remove(peer)
        }
        scores?.removePeer(peer, now: now)
        ihaveReceived[peer] = nil
        idsAsked[peer] = nil
        outbox[peer] = nil
    }

    /// Joins `topic`: announces it and builds a mesh from fanout peers and others (spec, JOIN).
    public mutating func subscribe(_ topic: String, now: Duration) -> [GossipAction<Peer>] {
        guard subscriptions.insert(topic).inserted else { return [] }
        for peer in peers.keys {
            append(to: peer) { $0.subscriptions.append(.init(subscribe: true, topic: topic)) }
        }
        var chosen = fanout.removeValue(forKey: topic) ?? []
        lastPublished[topic] = nil
        chosen = chosen.filter { acceptable(mesh: $0, topic: topic, now: now) }
        if chosen.count < configuration.d {
            let more = shuffled(
                eligible(topic) { !chosen.contains($0) && self.acceptable(mesh: $0, topic: topic, now: now) })
            chosen.formUnion(more.prefix(configuration.d - chosen.count))
        }
        mesh[topic] = []
        for peer in chosen { graft(peer, topic: topic, now: now) }
        return flush()
    }

    /// Leaves `topic`: announces it and prunes the mesh with the unsubscribe backoff (spec, LEAVE).
    public mutating func unsubscribe(_ topic: String, now: Duration) -> [GossipAction<Peer>] {
        guard subscriptions.remove(topic) != nil else { return [] }
        for peer in peers.keys {
            append(to: peer) { $0.subscriptions.append(.init(subscribe: false, topic: topic)) }
        }
        for peer in mesh.removeValue(forKey: topic) ?? [] {
            scores?.prune(peer, topic: topic)
            sendPrune(to: peer, topic: topic, backoff: configuration.unsubscribeBackoff, now: now)
        }
        return flush()
    }

    /// Publishes a message this node made (signed or anonymous as the policy wants): to every
    /// topic peer above the publish threshold when flood publishing, else to the mesh or fanout.
    public mutating func publish(_ message: PubSubMessage, now: Duration) -> [GossipAction<Peer>] {
        let id = configuration.messageID(message)
        guard seen.insert(id, now: now) else { return [] }
        cache.put(message, id: id)
        let topic = message.topic
        var targets = Set<Peer>()
        let all = topicPeers[topic] ?? []
        if configuration.floodPublish || configuration.d == 0 {
            targets = all.filter { self.score($0, now: now) >= configuration.thresholds.publish }
        } else {
            for peer in all where peers[peer]?.proto == .floodsub { targets.insert(peer) }
            if subscriptions.contains(topic) {
                targets.formUnion(mesh[topic] ?? [])
            } else {
                var chosen = fanout[topic] ?? []
                if chosen.isEmpty {
                    chosen = Set(
                        shuffled(
                            eligible(topic) { self.score($0, now: now) >= configuration.thresholds.publish }
                        )
                        .prefix(configuration.d))
                    fanout[topic] = chosen
                }
                targets.formUnion(chosen)
                lastPublished[topic] = now
            }
        }
        for peer in targets {
            append(to: peer) { $0.messages.append(message) }
            statistics.messagesSent += 1
        }
        return flush()
    }

    /// An RPC from `peer`. `validate` is the application's verdict on each new message that
    /// passed the signature policy.
    public mutating func receive(
        _ rpc: PubSubRPC, from peer: Peer, now: Duration,
        validate: (PubSubMessage) -> ValidationResult = { _ in .accept }
    ) -> [GossipAction<Peer>] {
        guard peers[peer] != nil else { return [] }
        if score(peer, now: now) < configuration.thresholds.graylist {
            statistics.graylisted += 1
            return []
        }
        for subscription in rpc.subscriptions { handle(subscription, from: peer, now: now) }
        for message in rpc.messages { handle(message, from: peer, now: now, validate: validate) }
        if let control = rpc.control, peers[peer]?.proto.isGossipSub == true {
            handle(control, from: peer, now: now)
        }
        return flush()
    }

    /// The heartbeat (spec v1.1, "Heartbeat"): mesh upkeep, fanout upkeep, gossip, cache shift,
    /// score decay, expired promises penalised.
    public mutating func heartbeat(now: Duration) -> [GossipAction<Peer>] {
        ticks += 1
        scores?.refresh(now: now)
        ihaveReceived = [:]
        idsAsked = [:]
        seen.expire(now: now)
        for (topic, entries) in backoff {
            let live = entries.filter { $0.value > now }
            backoff[topic] = live.isEmpty ? nil : live
        }
        // Broken promises: an advertised message asked for and not delivered in time.
        for (id, waiting) in promises {
            var left = waiting
            for (peer, deadline) in waiting where deadline <= now {
                left[peer] = nil
                scores?.addPenalty(peer, 1)
                statistics.brokenPromises += 1
            }
            promises[id] = left.isEmpty ? nil : left
        }
        if configuration.d > 0 {
            for topic in subscriptions.sorted() { maintainMesh(topic, now: now) }
            maintainFanout(now: now)
            emitGossip(now: now)
        }
        cache.shift()
        return flush()
    }

    // MARK: Handling what peers send

    private mutating func handle(_ subscription: PubSubRPC.Subscription, from peer: Peer, now: Duration) {
        let topic = subscription.topic
        if subscription.subscribe {
            guard peers[peer]?.topics.contains(topic) == false,
                peers[peer]?.topics.count ?? 0 < configuration.maxTopicsPerPeer,
                topicPeers[topic] != nil || topicPeers.count < configuration.maxTopics
            else { return }
            peers[peer]?.topics.insert(topic)
            topicPeers[topic, default: []].insert(peer)
        } else {
            guard peers[peer]?.topics.remove(topic) != nil else { return }
            topicPeers[topic]?.remove(peer)
            if topicPeers[topic]?.isEmpty == true { topicPeers[topic] = nil }
            if mesh[topic]?.remove(peer) != nil { scores?.prune(peer, topic: topic) }
            fanout[topic]?.remove(peer)
        }
    }

    private mutating func handle(
        _ message: PubSubMessage, from peer: Peer, now: Duration,
        validate: (PubSubMessage) -> ValidationResult
    ) {
        let topic = message.topic
        guard subscriptions.contains(topic) else { return }
        let id = configuration.messageID(message)
        promises[id] = nil
        guard !seen.contains(id) else {
            statistics.duplicates += 1
            scores?.duplicate(id, topic: topic, from: peer, now: now)
            return
        }
        seen.insert(id, now: now)
        scores?.received(id, from: peer, now: now)
        do {
            try message.check(configuration.signaturePolicy)
        } catch {
            statistics.rejected += 1
            scores?.invalid(id, topic: topic)
            return
        }
        switch validate(message) {
        case .reject:
            statistics.rejected += 1
            scores?.invalid(id, topic: topic)
            return
        case .ignore:
            statistics.ignored += 1
            scores?.ignored(id)
            return
        case .accept: break
        }
        scores?.validated(id, topic: topic, first: peer, now: now)
        cache.put(message, id: id)
        statistics.delivered += 1
        actions.append(.deliver(message, id: id, from: peer))
        forward(message, from: peer, now: now)
    }

    /// Forwards a new valid message to the mesh and to floodsub peers of the topic, never back to
    /// the peer it came from or its author.
    private mutating func forward(_ message: PubSubMessage, from source: Peer, now: Duration) {
        let author = message.from.flatMap { Peer(wireID: $0) }
        var targets = mesh[message.topic] ?? []
        for peer in topicPeers[message.topic] ?? [] where peers[peer]?.proto == .floodsub {
            if self.score(peer, now: now) >= configuration.thresholds.publish { targets.insert(peer) }
        }
        if configuration.d == 0 { targets.formUnion(topicPeers[message.topic] ?? []) }
        for peer in targets where peer != source && peer != author {
            append(to: peer) { $0.messages.append(message) }
            statistics.messagesSent += 1
        }
    }

    private mutating func handle(_ control: PubSubRPC.Control, from peer: Peer, now: Duration) {
        var asked: [[UInt8]] = []
        let gossipOK = score(peer, now: now) >= configuration.thresholds.gossip
        if gossipOK {
            for ihave in control.ihave { asked += handle(ihave, from: peer, now: now) }
        }
        var sendBack: [PubSubMessage] = []
        if gossipOK {
            for id in control.iwant.joined() {
                guard let (message, count) = cache.request(id, by: peer),
                    count <= configuration.gossipRetransmission
                else { continue }
                sendBack.append(message)
            }
        }
        var prunes: [String] = []
        for topic in control.graft where !handleGraft(topic, from: peer, now: now) { prunes.append(topic) }
        for prune in control.prune { handle(prune, from: peer, now: now) }
        if !asked.isEmpty {
            // One promise per IWANT, on a random ID of it (spec v1.1, "Promises").
            let promised = asked[random.below(asked.count)]
            promises[promised, default: [:]][peer] = now + configuration.iwantFollowupTime
            append(to: peer) { $0.control(\.iwant, append: asked) }
            statistics.iwantSent += 1
        }
        if !sendBack.isEmpty {
            append(to: peer) { $0.messages += sendBack }
            statistics.messagesSent += sendBack.count
        }
        for topic in prunes {
            sendPrune(to: peer, topic: topic, backoff: configuration.pruneBackoff, now: now)
        }
    }

    private mutating func handle(_ ihave: PubSubRPC.IHave, from peer: Peer, now: Duration) -> [[UInt8]] {
        ihaveReceived[peer, default: 0] += 1
        guard ihaveReceived[peer, default: 0] <= configuration.maxIHaveMessages,
            idsAsked[peer, default: 0] < configuration.maxIHaveLength,
            subscriptions.contains(ihave.topic)
        else { return [] }
        var unique = Set<[UInt8]>()
        var wanted = ihave.messageIDs.filter { !seen.contains($0) && unique.insert($0).inserted }
        random.shuffle(&wanted)
        let room = configuration.maxIHaveLength - idsAsked[peer, default: 0]
        let asked = Array(wanted.prefix(room))
        idsAsked[peer, default: 0] += asked.count
        return asked
    }

    /// A GRAFT: true if the peer is now in the mesh (or the GRAFT is ignored), false to PRUNE.
    private mutating func handleGraft(_ topic: String, from peer: Peer, now: Duration) -> Bool {
        guard subscriptions.contains(topic) else { return true }  // unknown topic: ignored
        guard mesh[topic]?.contains(peer) == false else { return true }
        if let until = backoff[topic]?[peer], until > now {
            // GRAFT during backoff: P7, twice if it came right after the PRUNE.
            scores?.addPenalty(peer, 1)
            if until - configuration.pruneBackoff + configuration.graftFloodThreshold > now {
                scores?.addPenalty(peer, 1)
            }
            backoff[topic, default: [:]][peer] = now + configuration.pruneBackoff
            return false
        }
        if score(peer, now: now) < 0 { return false }
        if mesh[topic, default: []].count >= configuration.dHigh, peers[peer]?.outbound != true {
            return false
        }
        mesh[topic, default: []].insert(peer)
        scores?.graft(peer, topic: topic, now: now)
        return true
    }

    private mutating func handle(_ prune: PubSubRPC.Prune, from peer: Peer, now: Duration) {
        let topic = prune.topic
        if mesh[topic]?.remove(peer) != nil { scores?.prune(peer, topic: topic) }
        let seconds =
            prune.backoff.map { Duration.seconds(Int64(min($0, 3_600))) } ?? configuration.pruneBackoff
        backoff[topic, default: [:]][peer] = now + seconds
        if !prune.peers.isEmpty, score(peer, now: now) >= configuration.thresholds.acceptPX {
            let offered = prune.peers.prefix(configuration.prunePeers).compactMap {
                $0.peerID.flatMap(Peer.init(wireID:))
            }
            let fresh = offered.filter { peers[$0] == nil }
            if !fresh.isEmpty { actions.append(.connect(fresh)) }
        }
    }

    // MARK: Heartbeat parts

    private mutating func maintainMesh(_ topic: String, now: Duration) {
        var members = mesh[topic] ?? []
        // Peers with a negative score leave the mesh.
        for peer in members where score(peer, now: now) < 0 {
            members.remove(peer)
            scores?.prune(peer, topic: topic)
            sendPrune(to: peer, topic: topic, backoff: configuration.pruneBackoff, now: now, exchange: false)
        }
        mesh[topic] = members
        if members.count < configuration.dLow {
            let more = shuffled(
                eligible(topic) { !members.contains($0) && self.acceptable(mesh: $0, topic: topic, now: now) }
            )
            for peer in more.prefix(configuration.d - members.count) { graft(peer, topic: topic, now: now) }
        } else if members.count > configuration.dHigh {
            // Keep the dScore best, then random ones, with at least dOut outbound.
            var ranked = ordered(members)
            random.shuffle(&ranked)
            ranked.sort { score($0, now: now) > score($1, now: now) }
            var keep = Array(ranked.prefix(configuration.dScore))
            var rest = Array(ranked.dropFirst(configuration.dScore))
            random.shuffle(&rest)
            keep += rest.prefix(configuration.d - keep.count)
            let outboundKept = keep.filter { peers[$0]?.outbound == true }.count
            if outboundKept < configuration.dOut {
                // Swap kept inbound peers for outbound ones that were left out.
                let kept = Set(keep)
                var spare = ranked.filter { !kept.contains($0) && peers[$0]?.outbound == true }
                    .prefix(configuration.dOut - outboundKept).makeIterator()
                for index in keep.indices.reversed() where peers[keep[index]]?.outbound != true {
                    guard let next = spare.next() else { break }
                    keep[index] = next
                }
            }
            let kept = Set(keep)
            for peer in members where !kept.contains(peer) {
                mesh[topic]?.remove(peer)
                scores?.prune(peer, topic: topic)
                sendPrune(to: peer, topic: topic, backoff: configuration.pruneBackoff, now: now)
            }
        }
        members = mesh[topic] ?? []
        // Enough outbound peers, even when the mesh is within bounds.
        if members.count >= configuration.dLow {
            let outbound = members.filter { peers[$0]?.outbound == true }.count
            if outbound < configuration.dOut {
                let more = shuffled(
                    eligible(topic) {
                        !members.contains($0) && self.peers[$0]?.outbound == true
                            && self.acceptable(mesh: $0, topic: topic, now: now)
                    })
                for peer in more.prefix(configuration.dOut - outbound) { graft(peer, topic: topic, now: now) }
            }
        }
        // Opportunistic grafting (v1.1): a mesh whose median score is low takes better peers.
        members = mesh[topic] ?? []
        if scores != nil, ticks % configuration.opportunisticGraftTicks == 0, members.count > 1 {
            let sorted = members.map { score($0, now: now) }.sorted()
            let median = sorted[sorted.count / 2]
            if median < configuration.thresholds.opportunisticGraft {
                let more = shuffled(
                    eligible(topic) {
                        !members.contains($0) && self.score($0, now: now) > median
                            && self.acceptable(mesh: $0, topic: topic, now: now)
                    })
                for peer in more.prefix(configuration.opportunisticGraftPeers) {
                    graft(peer, topic: topic, now: now)
                }
            }
        }
    }

    private mutating func maintainFanout(now: Duration) {
        for (topic, published) in lastPublished where published + configuration.fanoutTTL < now {
            fanout[topic] = nil
            lastPublished[topic] = nil
        }
        for topic in fanout.keys.sorted() {
            let members = fanout[topic] ?? []
            var kept = members.filter {
                topicPeers[topic]?.contains($0) == true
                    && self.score($0, now: now) >= configuration.thresholds.publish
            }
            if kept.count < configuration.d {
                let more = shuffled(
                    eligible(topic) {
                        !kept.contains($0) && self.score($0, now: now) >= configuration.thresholds.publish
                    })
                kept.formUnion(more.prefix(configuration.d - kept.count))
            }
            fanout[topic] = kept
        }
    }

    /// IHAVE for the recent messages of each mesh and fanout topic, to peers outside it.
    private mutating func emitGossip(now: Duration) {
        let topics = subscriptions.union(fanout.keys).sorted()
        for topic in topics {
            let ids = cache.gossipIDs(topic)
            guard !ids.isEmpty else { continue }
            let exclude = subscriptions.contains(topic) ? (mesh[topic] ?? []) : (fanout[topic] ?? [])
            let eligible = shuffled(
                eligible(topic) {
                    !exclude.contains($0) && self.score($0, now: now) >= configuration.thresholds.gossip
                })
            let count = max(configuration.dLazy, Int(configuration.gossipFactor * Double(eligible.count)))
            for peer in eligible.prefix(count) {
                var advertised = ids
                if advertised.count > configuration.maxIHaveLength {
                    random.shuffle(&advertised)
                    advertised = Array(advertised.prefix(configuration.maxIHaveLength))
                }
                append(to: peer) { $0.control(\.ihave, append: .init(topic: topic, messageIDs: advertised)) }
                statistics.ihaveSent += 1
            }
        }
    }

    // MARK: Helpers

    /// GossipSub peers of `topic` passing `filter`, in a fixed order.
    private func eligible(_ topic: String, _ filter: (Peer) -> Bool) -> [Peer] {
        ordered((topicPeers[topic] ?? []).filter { peers[$0]?.proto.isGossipSub == true && filter($0) })
    }

    private mutating func shuffled(_ list: [Peer]) -> [Peer] {
        var list = list
        random.shuffle(&list)
        return list
    }

    /// A set in a fixed order (by wire ID), so that what the seeded random source picks does not
    /// depend on hashing, which differs between processes.
    private func ordered(_ set: some Collection<Peer>) -> [Peer] {
        set.sorted { $0.wireID.lexicographicallyPrecedes($1.wireID) }
    }

    private func acceptable(mesh peer: Peer, topic: String, now: Duration) -> Bool {
        guard peers[peer]?.proto.isGossipSub == true else { return false }
        if let until = backoff[topic]?[peer], until > now { return false }
        return score(peer, now: now) >= 0
    }

    private mutating func graft(_ peer: Peer, topic: String, now: Duration) {
        mesh[topic, default: []].insert(peer)
        scores?.graft(peer, topic: topic, now: now)
        append(to: peer) { $0.control(\.graft, append: topic) }
        statistics.graftsSent += 1
    }

    private mutating func sendPrune(
        to peer: Peer, topic: String, backoff duration: Duration, now: Duration, exchange: Bool = true
    ) {
        backoff[topic, default: [:]][peer] = now + duration
        var prune = PubSubRPC.Prune(topic: topic)
        if peers[peer]?.proto.hasPeerExchange == true {
            prune.backoff = UInt64(duration.components.seconds)
            if exchange, score(peer, now: now) >= 0 {
                let offered = shuffled(eligible(topic) { $0 != peer && self.score($0, now: now) >= 0 })
                prune.peers = offered.prefix(configuration.prunePeers).map { .init(peerID: $0.wireID) }
            }
        }
        append(to: peer) { $0.control(\.prune, append: prune) }
        statistics.prunesSent += 1
    }

    private mutating func append(to peer: Peer, _ change: (inout PubSubRPC) -> Void) {
        guard peers[peer] != nil else { return }
        var rpc = outbox[peer] ?? PubSubRPC()
        change(&rpc)
        outbox[peer] = rpc
    }

    private mutating func flush() -> [GossipAction<Peer>] {
        var out = actions
        actions = []
        for peer in ordered(outbox.keys) {
            guard let rpc = outbox[peer], !rpc.isEmpty else { continue }
            out.append(.send(peer, rpc))
            statistics.rpcsSent += 1
        }
        outbox = [:]
        return out
    }
}

extension PubSubRPC {
    fileprivate mutating func control<T>(_ path: WritableKeyPath<Control, [T]>, append value: T) {
        var body = control ?? Control()
        body[keyPath: path].append(value)
        control = body
    }
}

extension SplitMix64 {
    mutating func below(_ bound: Int) -> Int { bound <= 1 ? 0 : Int(next() % UInt64(bound)) }

    mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for index in stride(from: array.count - 1, to: 0, by: -1) {
            array.swapAt(index, below(index + 1))
        }
    }
}

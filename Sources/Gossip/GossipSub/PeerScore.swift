import DequeModule

/// Score parameters of one topic (GossipSub v1.1, "Topic Parameter Calculation"): P1 time in
/// mesh, P2 first deliveries, P3 mesh delivery deficit, P3b mesh failure penalty, P4 invalid
/// messages. A weight of zero turns a parameter off.
public struct TopicScoreParameters: Sendable, Hashable {
    public var topicWeight = 1.0
    public var timeInMeshWeight = 0.01
    public var timeInMeshQuantum: Duration = .seconds(1)
    public var timeInMeshCap = 3_600.0
    public var firstMessageDeliveriesWeight = 1.0
    public var firstMessageDeliveriesDecay = 0.5
    public var firstMessageDeliveriesCap = 100.0
    /// P3 (negative when used): off by default, as it needs the topic's expected message rate.
    public var meshMessageDeliveriesWeight = 0.0
    public var meshMessageDeliveriesDecay = 0.5
    public var meshMessageDeliveriesThreshold = 1.0
    public var meshMessageDeliveriesCap = 10.0
    public var meshMessageDeliveriesActivation: Duration = .seconds(5)
    /// How late a duplicate may arrive and still count as a mesh delivery.
    public var meshMessageDeliveriesWindow: Duration = .milliseconds(10)
    public var meshFailurePenaltyWeight = 0.0
    public var meshFailurePenaltyDecay = 0.5
    public var invalidMessageDeliveriesWeight = -10.0
    public var invalidMessageDeliveriesDecay = 0.3

    public init() {}
}

/// Peer-wide score parameters (P5 application score, P6 IP colocation, P7 behaviour penalty)
/// and how counters decay.
public struct PeerScoreParameters: Sendable, Hashable {
    /// Parameters by topic; `defaultTopic` for any other topic (nil: such topics do not count).
    public var topics: [String: TopicScoreParameters] = [:]
    public var defaultTopic: TopicScoreParameters? = TopicScoreParameters()
    /// Cap on the sum of topic scores (0: none).
    public var topicScoreCap = 0.0
    public var appSpecificWeight = 1.0
    /// P6: more than `ipColocationFactorThreshold` peers on one IP address are penalised by the
    /// square of the surplus. Loopback is exempt, as go-libp2p's whitelist allows.
    public var ipColocationFactorWeight = -1.0
    public var ipColocationFactorThreshold = 10.0
    /// P7: broken IWANT promises, GRAFTs during backoff; the square of the excess over the
    /// threshold.
    public var behaviourPenaltyWeight = -1.0
    public var behaviourPenaltyThreshold = 0.0
    public var behaviourPenaltyDecay = 0.9
    public var decayInterval: Duration = .seconds(1)
    public var decayToZero = 0.01
    /// How long a disconnected peer's score is remembered (so leaving does not wash it).
    public var retainScore: Duration = .seconds(600)

    public init() {}
}

/// The score thresholds of GossipSub v1.1 ("Score Thresholds").
public struct PeerScoreThresholds: Sendable, Hashable {
    /// Below: no gossip to or from the peer.
    public var gossip = -10.0
    /// Below: no flood-published messages to the peer.
    public var publish = -50.0
    /// Below: every RPC from the peer is ignored.
    public var graylist = -80.0
    /// At or above: peer exchange in the peer's PRUNEs is followed.
    public var acceptPX = 10.0
    /// Below this median mesh score, opportunistic grafting adds better peers.
    public var opportunisticGraft = 1.0

    public init() {}
}

/// Scores of peers as a value (spec v1.1, "The Score Function"): counters move on events, decay
/// at each `decayInterval`, and the score is computed on demand.
struct PeerScore<Peer: Hashable & Sendable>: Sendable {
    struct TopicStats: Sendable {
        var inMesh = false
        var graftTime: Duration = .zero
        var meshTime: Duration = .zero
        var firstMessageDeliveries = 0.0
        var meshMessageDeliveries = 0.0
        var meshMessageDeliveriesActive = false
        var meshFailurePenalty = 0.0
        var invalidMessageDeliveries = 0.0
    }

    struct Stats: Sendable {
        var connected = true
        var expires: Duration = .zero
        var topics: [String: TopicStats] = [:]
        var ip: String?
        var behaviourPenalty = 0.0
        var applicationScore = 0.0
    }

    /// A message being validated or recently validated: who delivered it and when.
    struct Delivery: Sendable {
        enum Status: Sendable { case unknown, valid, invalid, ignored }
        var status = Status.unknown
        var firstSeen: Duration
        var validated: Duration = .zero
        var peers: Set<Peer> = []
    }

    let parameters: PeerScoreParameters
    private(set) var stats: [Peer: Stats] = [:]
    private var peersByIP: [String: Set<Peer>] = [:]
    private var deliveries: [[UInt8]: Delivery] = [:]
    private var deliveryOrder = Deque<([UInt8], Duration)>()
    private var lastDecay: Duration = .zero

    init(parameters: PeerScoreParameters) { self.parameters = parameters }

    private func topicParameters(_ topic: String) -> TopicScoreParameters? {
        parameters.topics[topic] ?? parameters.defaultTopic
    }

    func score(_ peer: Peer, now: Duration) -> Double {
        guard let peerStats = stats[peer] else { return 0 }
        var topicScore = 0.0
        for (topic, topicStats) in peerStats.topics {
            guard let p = topicParameters(topic) else { continue }
            var score = 0.0
            if topicStats.inMesh {
                let quanta = (now - topicStats.graftTime) / p.timeInMeshQuantum
                score += min(quanta, p.timeInMeshCap) * p.timeInMeshWeight
            }
            score += topicStats.firstMessageDeliveries * p.firstMessageDeliveriesWeight
            if topicStats.meshMessageDeliveriesActive,
                topicStats.meshMessageDeliveries < p.meshMessageDeliveriesThreshold
            {
                let deficit = p.meshMessageDeliveriesThreshold - topicStats.meshMessageDeliveries
                score += deficit * deficit * p.meshMessageDeliveriesWeight
            }
            score += topicStats.meshFailurePenalty * p.meshFailurePenaltyWeight
            score +=
                topicStats.invalidMessageDeliveries * topicStats.invalidMessageDeliveries
                * p.invalidMessageDeliveriesWeight
            topicScore += score * p.topicWeight
        }
        if parameters.topicScoreCap > 0 { topicScore = min(topicScore, parameters.topicScoreCap) }
        var score = topicScore + peerStats.applicationScore * parameters.appSpecificWeight
        if let ip = peerStats.ip, let count = peersByIP[ip]?.count,
            Double(count) > parameters.ipColocationFactorThreshold
        {
            let surplus = Double(count) - parameters.ipColocationFactorThreshold
            score += surplus * surplus * parameters.ipColocationFactorWeight
        }
        if peerStats.behaviourPenalty > parameters.behaviourPenaltyThreshold {
            let excess = peerStats.behaviourPenalty - parameters.behaviourPenaltyThreshold
            score += excess * excess * parameters.behaviourPenaltyWeight
        }
        return score
    }

    mutating func addPeer(_ peer: Peer, ip: String?) {
        var peerStats = stats[peer] ?? Stats()
        peerStats.connected = true
        // Loopback is exempt from P6 (go-libp2p's default whitelist has no effect there).
        if let ip, !ip.hasPrefix("127."), ip != "::1" {
            peerStats.ip = ip
            peersByIP[ip, default: []].insert(peer)
        }
        stats[peer] = peerStats
    }

    mutating func removePeer(_ peer: Peer, now: Duration) {
        guard var peerStats = stats[peer] else { return }
        if let ip = peerStats.ip {
            peersByIP[ip]?.remove(peer)
            if peersByIP[ip]?.isEmpty == true { peersByIP[ip] = nil }
        }
        // A peer that leaves with a positive score keeps nothing; a negative one is remembered.
        if score(peer, now: now) > 0 {
            stats[peer] = nil
            return
        }
        for (topic, var topicStats) in peerStats.topics {
            topicStats.firstMessageDeliveries = 0
            if topicStats.inMesh, topicStats.meshMessageDeliveriesActive,
                let p = topicParameters(topic),
                topicStats.meshMessageDeliveries < p.meshMessageDeliveriesThreshold
            {
                let deficit = p.meshMessageDeliveriesThreshold - topicStats.meshMessageDeliveries
                topicStats.meshFailurePenalty += deficit * deficit
            }
            topicStats.inMesh = false
            peerStats.topics[topic] = topicStats
        }
        peerStats.connected = false
        peerStats.expires = now + parameters.retainScore
        stats[peer] = peerStats
    }

    mutating func setApplicationScore(_ peer: Peer, _ value: Double) { stats[peer]?.applicationScore = value }

    mutating func graft(_ peer: Peer, topic: String, now: Duration) {
        guard topicParameters(topic) != nil else { return }
        var topicStats = stats[peer]?.topics[topic] ?? TopicStats()
        topicStats.inMesh = true
        topicStats.graftTime = now
        topicStats.meshMessageDeliveriesActive = false
        stats[peer]?.topics[topic] = topicStats
    }

    mutating func prune(_ peer: Peer, topic: String) {
        guard var topicStats = stats[peer]?.topics[topic], let p = topicParameters(topic) else { return }
        if topicStats.meshMessageDeliveriesActive,
            topicStats.meshMessageDeliveries < p.meshMessageDeliveriesThreshold
        {
            let deficit = p.meshMessageDeliveriesThreshold - topicStats.meshMessageDeliveries
            topicStats.meshFailurePenalty += deficit * deficit
        }
        topicStats.inMesh = false
        stats[peer]?.topics[topic] = topicStats
    }

    mutating func addPenalty(_ peer: Peer, _ count: Double) { stats[peer]?.behaviourPenalty += count }

    /// A message arrived from `peer` before validation.
    mutating func received(_ id: [UInt8], from peer: Peer, now: Duration) {
        if deliveries[id] == nil {
            deliveries[id] = Delivery(firstSeen: now)
            deliveryOrder.append((id, now + .seconds(120)))
        }
        deliveries[id]?.peers.insert(peer)
    }

    /// The message `id` from `first` validated: P2 for the first, P3 for mesh peers that sent it
    /// within the window.
    mutating func validated(_ id: [UInt8], topic: String, first: Peer, now: Duration) {
        guard let p = topicParameters(topic) else { return }
        deliveries[id]?.status = .valid
        deliveries[id]?.validated = now
        if var topicStats = stats[first]?.topics[topic] ?? (stats[first] != nil ? TopicStats() : nil) {
            topicStats.firstMessageDeliveries = min(
                topicStats.firstMessageDeliveries + 1, p.firstMessageDeliveriesCap)
            if topicStats.inMesh {
                topicStats.meshMessageDeliveries = min(
                    topicStats.meshMessageDeliveries + 1, p.meshMessageDeliveriesCap)
            }
            stats[first]?.topics[topic] = topicStats
        }
        for peer in deliveries[id]?.peers ?? [] where peer != first {
            markMeshDelivery(peer, topic: topic, p)
        }
    }

    /// A duplicate of `id` from `peer`: counts as a mesh delivery if it came within the window.
    mutating func duplicate(_ id: [UInt8], topic: String, from peer: Peer, now: Duration) {
        guard let delivery = deliveries[id], !delivery.peers.contains(peer) else { return }
        deliveries[id]?.peers.insert(peer)
        switch delivery.status {
        case .valid:
            if let p = topicParameters(topic), now - delivery.validated <= p.meshMessageDeliveriesWindow {
                markMeshDelivery(peer, topic: topic, p)
            }
        case .invalid: rejected(peer, topic: topic)
        case .unknown, .ignored: break
        }
    }

    private mutating func markMeshDelivery(_ peer: Peer, topic: String, _ p: TopicScoreParameters) {
        guard var topicStats = stats[peer]?.topics[topic], topicStats.inMesh else { return }
        topicStats.meshMessageDeliveries = min(
            topicStats.meshMessageDeliveries + 1, p.meshMessageDeliveriesCap)
        stats[peer]?.topics[topic] = topicStats
    }

    /// `peer` sent a message that failed validation or its signature (P4).
    mutating func rejected(_ peer: Peer, topic: String) {
        guard topicParameters(topic) != nil, stats[peer] != nil else { return }
        stats[peer]?.topics[topic, default: TopicStats()].invalidMessageDeliveries += 1
    }

    mutating func invalid(_ id: [UInt8], topic: String) {
        deliveries[id]?.status = .invalid
        for peer in deliveries[id]?.peers ?? [] { rejected(peer, topic: topic) }
    }

    mutating func ignored(_ id: [UInt8]) { deliveries[id]?.status = .ignored }

    /// Decays every counter once per `decayInterval`; forgets expired peers and deliveries.
    mutating func refresh(now: Duration) {
        while let first = deliveryOrder.first, first.1 <= now {
            deliveries[first.0] = nil
            deliveryOrder.removeFirst()
        }
        guard now - lastDecay >= parameters.decayInterval else { return }
        lastDecay = now
        let zero = parameters.decayToZero
        func decay(_ value: Double, _ factor: Double) -> Double {
            let next = value * factor
            return abs(next) < zero ? 0 : next
        }
        for (peer, var peerStats) in stats {
            if !peerStats.connected, peerStats.expires <= now {
                stats[peer] = nil
                continue
            }
            for (topic, var t) in peerStats.topics {
                guard let p = topicParameters(topic) else { continue }
                t.firstMessageDeliveries = decay(t.firstMessageDeliveries, p.firstMessageDeliveriesDecay)
                t.meshMessageDeliveries = decay(t.meshMessageDeliveries, p.meshMessageDeliveriesDecay)
                t.meshFailurePenalty = decay(t.meshFailurePenalty, p.meshFailurePenaltyDecay)
                t.invalidMessageDeliveries = decay(
                    t.invalidMessageDeliveries, p.invalidMessageDeliveriesDecay)
                if t.inMesh, now - t.graftTime >= p.meshMessageDeliveriesActivation {
                    t.meshMessageDeliveriesActive = true
                }
                peerStats.topics[topic] = t
            }
            peerStats.behaviourPenalty = decay(peerStats.behaviourPenalty, parameters.behaviourPenaltyDecay)
            stats[peer] = peerStats
        }
    }
}

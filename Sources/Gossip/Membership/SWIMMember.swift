import Foundation
import PeerNet

/// How a member probes, suspects and gossips: memberlist's `DefaultLANConfig`, which serf uses.
public struct SWIMConfiguration: Sendable, Hashable {
    /// The member's unique name in the cluster.
    public var name: String
    /// The address others reach it at (UDP and TCP on the same port).
    public var advertise: Endpoint
    /// Opaque metadata; at most 512 bytes. Serf reads it as tags (``SerfTags``): none by default.
    public var meta: [UInt8] = SerfTags.encode([:])
    /// pmin, pmax, pcur, dmin, dmax, dcur as serf 0.8 announces them: memberlist protocol 1-5
    /// speaking 2, serf's delegate protocol 2-5 speaking 5. The delegate range must overlap
    /// the cluster's, or serf refuses the join.
    public var versions: [UInt8] = [1, 5, 2, 2, 5, 5]
    public var probeInterval: Duration = .seconds(1)
    public var probeTimeout: Duration = .milliseconds(500)
    /// Members asked to probe for us (SWIM's k of ping-req).
    public var indirectChecks = 3
    /// Suspicion lasts `suspicionMultiplier × max(1, log10 n) × probeInterval` at least.
    public var suspicionMultiplier = 4
    /// ... and at most this many times that, shortened by independent confirmations (Lifeguard).
    public var suspicionMaxTimeoutMultiplier = 6
    /// A broadcast is sent `retransmitMultiplier × ceil(log10(n + 1))` times.
    public var retransmitMultiplier = 4
    public var gossipInterval: Duration = .milliseconds(200)
    public var gossipNodes = 3
    /// Dead members are still gossiped to, then forgotten, after this long.
    public var gossipToTheDead: Duration = .seconds(30)
    public var pushPullInterval: Duration = .seconds(30)
    /// Lifeguard's local health: probe interval and timeout scale up to this factor.
    public var awarenessMaxMultiplier = 8
    /// Bytes of one UDP packet, piggybacked gossip included.
    public var packetBudget = 1400
    /// Members held at most; news of more is dropped.
    public var maxMembers = 10_000
    /// Departed (failed or left) members stay listed this long, as serf keeps them.
    public var keepDeparted: Duration = .seconds(24 * 3600)
    /// Send serf's leave intent before our own `dead`, so serf shows "left", not "failed".
    public var serfLeaveIntent = true
    /// Probe over TCP too when UDP goes unanswered (memberlist's fallback, for members of
    /// protocol 3 and later): a member whose UDP is blocked is not declared failed.
    public var tcpFallback = true

    public init(name: String, advertise: Endpoint) {
        self.name = name
        self.advertise = advertise
    }
}

/// A member as this node sees it.
public struct MemberRecord: Sendable, Hashable {
    public var name: String
    public var endpoint: Endpoint
    public var meta: [UInt8]
    public var incarnation: UInt32
    public var state: MemberState
    /// When the state last changed (the node's clock).
    public var stateChange: Duration
    public var versions: [UInt8]

    /// memberlist's pmax: CRC-framed packets go to members of protocol 5 and later.
    public var wantsChecksum: Bool { versions.count >= 2 && versions[1] >= 5 }
}

public enum MembershipEvent: Sendable, Hashable {
    case joined(MemberRecord)
    case updated(MemberRecord)
    case suspected(MemberRecord)
    case failed(MemberRecord)
    case left(MemberRecord)
}

/// What the driver does for the state machine.
public enum SWIMAction: Sendable, Hashable {
    /// Encoded messages for one packet to `to` (a compound when several).
    case send([[UInt8]], to: Endpoint, checksum: Bool)
    /// A TCP push-pull with `to`: send ``SWIMMember/localState(join:for:)``, merge the answer.
    case pushPull(to: Endpoint, join: Bool)
    /// memberlist's fallback probe: send `ping` over TCP to `to` and, if its ack arrives before
    /// `deadline`, hand the ack back through ``SWIMMember/receive(_:from:now:)``.
    case streamPing(MemberPing, to: Endpoint, deadline: Duration)
    case event(MembershipEvent)
}

/// SWIM with Lifeguard as HashiCorp's memberlist runs it (the protocol serf, Consul and Nomad
/// speak), sans I/O: packets and push-pull states in, actions out; time and randomness passed
/// in. Direct probes round-robin, indirect probes through k members with nacks, suspicion whose
/// timeout shrinks with independent confirmations, refutation by incarnation, dead and left,
/// and membership news piggybacked on every packet and gossiped to random members
/// (memberlist `state.go`, `suspicion.go`, `awareness.go`, `queue.go`; Das et al. 2002;
/// Dadgar et al. 2018).
public struct SWIMMember: Sendable {
    public let configuration: SWIMConfiguration
    public private(set) var incarnation: UInt32 = 1
    public private(set) var members: [String: MemberRecord] = [:]
    /// Lifeguard's local health score, 0 (healthy) to `awarenessMaxMultiplier - 1`.
    public private(set) var awareness = 0
    public private(set) var leaving = false
    public private(set) var statistics = Statistics()

    public struct Statistics: Sendable, Hashable {
        public var probes = 0
        public var indirectProbes = 0
        public var suspicions = 0
        public var refutations = 0
        public var deaths = 0
        public var packetsSent = 0
        public var malformed = 0
    }

    var random: SplitMix64
    var sequence: UInt32 = 0
    var probeOrder: [String] = []
    var endpoints: [Endpoint: String] = [:]
    var probeIndex = 0
    var probe: Probe?
    var relays: [UInt32: Relay] = [:]
    var suspicions: [String: Suspicion] = [:]
    var broadcasts = BroadcastQueue()
    var nextProbe: Duration
    var nextGossip: Duration
    var nextPushPull: Duration
    var nextReap: Duration
    /// The largest Lamport time seen in serf's intents, so our leave intent is newer.
    var serfClock: UInt64 = 0

    struct Probe: Sendable {
        var target: String
        var sequence: UInt32
        var timeoutAt: Duration
        var deadline: Duration
        var acked = false
        var indirectSent = false
        var nacksExpected = 0
        var nacks = 0
    }

    struct Relay: Sendable {
        var requester: Endpoint
        var requesterSequence: UInt32
        var wantsNack: Bool
        var nackAt: Duration
        var expiresAt: Duration
    }

    struct Suspicion: Sendable {
        var start: Duration
        var minimum: Duration
        var maximum: Duration
        var expected: Int
        var confirmations: Set<String>
        var deadline: Duration

        init(from: String, expected: Int, minimum: Duration, maximum: Duration, now: Duration) {
            start = now
            self.minimum = minimum
            self.maximum = maximum
            self.expected = expected
            confirmations = [from]
            deadline = now + (expected < 1 ? minimum : maximum)
        }

        /// Lifeguard: each independent confirmation brings the timeout down on a log scale.
        mutating func confirm(_ from: String) -> Bool {
            guard confirmations.count - 1 < expected, confirmations.insert(from).inserted else {
                return false
            }
            let count = Double(confirmations.count - 1)
            let fraction = log(count + 1) / log(Double(expected) + 1)
            let raw = maximum - (maximum - minimum) * fraction
            deadline = start + max(minimum, raw)
            return true
        }
    }

    public init(configuration: SWIMConfiguration, now: Duration, seed: UInt64) {
        self.configuration = configuration
        random = SplitMix64(seed: seed)
        nextProbe = now + configuration.probeInterval
        nextGossip = now + configuration.gossipInterval
        nextPushPull = now + configuration.pushPullInterval
        nextReap = now + .seconds(1)
        let me = MemberRecord(
            name: configuration.name, endpoint: configuration.advertise, meta: configuration.meta,
            incarnation: incarnation,
            state: .alive, stateChange: now, versions: configuration.versions)
        members[configuration.name] = me
        broadcasts.enqueue(key: configuration.name, message: MemberlistCodec.encode(.alive(aliveMessage())))
    }

    var me: String { configuration.name }

    func aliveMessage() -> MemberAlive {
        MemberAlive(
            incarnation: incarnation, node: me, address: configuration.advertise.ip.bytes,
            port: configuration.advertise.port,
            meta: configuration.meta, versions: configuration.versions)
    }

    /// Every member known, this one included, departed ones while they are kept.
    public var view: [MemberRecord] { members.values.sorted { $0.name < $1.name } }

    /// Alive and suspect members other than this one.
    public var liveCount: Int {
        members.values.filter { $0.name != me && ($0.state == .alive || $0.state == .suspect) }.count
    }

    // MARK: Joining and leaving

    /// Push-pulls with each seed address; their answers are merged as they come.
    public func join(_ seeds: [Endpoint]) -> [SWIMAction] {
        seeds.map { .pushPull(to: $0, join: true) }
    }

    /// The view this member sends in a push-pull. A peer sending no members at all is an
    /// observer (`peerstack members list`), not a member: it gets the departed ones too.
    public func localState(join: Bool, forObserver observer: Bool = false, now: Duration) -> PushPull {
        let nodes = members.values.sorted { $0.name < $1.name }.filter { record in
            observer || record.state == .alive || record.state == .suspect
                || now - record.stateChange <= configuration.gossipToTheDead
        }
        .map {
            PushNodeState(
                name: $0.name, address: $0.endpoint.ip.bytes, port: $0.endpoint.port, meta: $0.meta,
                incarnation: $0.incarnation,
                state: $0.state, versions: $0.versions)
        }
        return PushPull(join: join, nodes: nodes)
    }

    /// Merges a remote member's push-pull view (memberlist `mergeState`): alive news is taken
    /// as alive; a member the remote thinks dead is only suspected here; left is left.
    public mutating func merge(_ remote: PushPull, now: Duration) -> [SWIMAction] {
        var actions: [SWIMAction] = []
        for node in remote.nodes.prefix(configuration.maxMembers) {
            switch node.state {
            case .alive:
                aliveNode(
                    MemberAlive(
                        incarnation: node.incarnation, node: node.name, address: node.address,
                        port: node.port, meta: node.meta,
                        versions: node.versions), now: now, actions: &actions)
            case .left:
                deadNode(
                    MemberAccusation(incarnation: node.incarnation, node: node.name, from: node.name),
                    now: now, actions: &actions)
            case .dead, .suspect:
                suspectNode(
                    MemberAccusation(incarnation: node.incarnation, node: node.name, from: me), now: now,
                    actions: &actions)
            }
        }
        return actions
    }

    /// Leaves gracefully: serf's leave intent, then our own `dead` (which others record as
    /// left), sent at once to a few members and gossiped until the driver stops.
    public mutating func leave(now: Duration) -> [SWIMAction] {
        guard !leaving else { return [] }
        leaving = true
        var actions: [SWIMAction] = []
        if configuration.serfLeaveIntent {
            serfClock += 1
            var intent: [UInt8] = [MemberlistMessageType.user.rawValue, 0]
            MessagePack.append(
                MessagePack.structure([
                    ("LTime", .uint(serfClock)), ("Node", .bytes(Array(me.utf8))), ("Prune", .bool(false)),
                ]),
                to: &intent)
            broadcasts.enqueue(key: "serf-intent/\(me)", message: intent)
            // The intent goes out first, as serf sends it before memberlist's leave.
            actions += gossip(now: now)
        }
        deadNode(MemberAccusation(incarnation: incarnation, node: me, from: me), now: now, actions: &actions)
        return actions
    }

    // MARK: Packets

    /// Handles the messages of one packet from `from`.
    public mutating func receive(_ messages: [MemberlistMessage], from: Endpoint, now: Duration)
        -> [SWIMAction]
    {
        var actions: [SWIMAction] = []
        for message in messages { handle(message, from: from, now: now, actions: &actions) }
        return actions
    }

    /// A bad part of a packet: counted, the rest of the packet is still handled.
    public mutating func noteMalformed() { statistics.malformed += 1 }

    /// The ack for a ping that arrived over TCP (memberlist's fallback probe), or nil when the
    /// ping is for another name.
    public func streamAck(for ping: MemberPing) -> MemberlistMessage? {
        guard ping.node.isEmpty || ping.node == me else { return nil }
        return .ack(sequence: ping.sequence, payload: [])
    }

    mutating func handle(
        _ message: MemberlistMessage, from: Endpoint, now: Duration, actions: inout [SWIMAction]
    ) {
        switch message {
        case .ping(let ping):
            guard ping.node.isEmpty || ping.node == me else { return }
            let target = ping.source ?? from
            send(
                [MemberlistCodec.encode(.ack(sequence: ping.sequence, payload: []))], to: target, now: now,
                actions: &actions)
        case .indirectPing(let request):
            guard let target = request.targetEndpoint else { return }
            sequence &+= 1
            relays[sequence] = Relay(
                requester: request.source ?? from, requesterSequence: request.sequence,
                wantsNack: request.wantsNack,
                nackAt: now + configuration.probeTimeout, expiresAt: now + configuration.probeInterval)
            let ping = MemberPing(
                sequence: sequence, node: request.node, source: configuration.advertise, sourceNode: me)
            send([MemberlistCodec.encode(.ping(ping))], to: target, now: now, actions: &actions)
        case .ack(let ackSequence, _):
            if var current = probe, current.sequence == ackSequence, !current.acked {
                current.acked = true
                probe = current
                // A probe answered in time improves local health (Lifeguard).
                adjustAwareness(-1)
            } else if let relay = relays.removeValue(forKey: ackSequence) {
                send(
                    [MemberlistCodec.encode(.ack(sequence: relay.requesterSequence, payload: []))],
                    to: relay.requester, now: now,
                    actions: &actions)
            }
        case .nack(let nackSequence):
            if var current = probe, current.sequence == nackSequence {
                current.nacks += 1
                probe = current
            }
        case .suspect(let accusation):
            suspectNode(accusation, now: now, actions: &actions)
        case .alive(let alive):
            aliveNode(alive, now: now, actions: &actions)
        case .dead(let accusation):
            deadNode(accusation, now: now, actions: &actions)
        case .user(let payload):
            witnessSerf(payload)
        case .error, .pushPull:
            break
        }
    }

    /// Serf's intents (leave 0, join 1) carry a Lamport time; ours must be newer.
    mutating func witnessSerf(_ payload: [UInt8]) {
        guard let kind = payload.first, kind <= 1,
            let value = try? MessagePack.decode(payload, at: 1, maxLength: 4096).value,
            let time = value["LTime"]?.unsigned
        else { return }
        serfClock = max(serfClock, time)
    }

    // MARK: Membership news (memberlist aliveNode, suspectNode, deadNode)

    mutating func aliveNode(_ alive: MemberAlive, now: Duration, actions: inout [SWIMAction]) {
        if leaving && alive.node == me { return }
        guard !alive.node.isEmpty, let endpoint = Endpoint(ip: alive.address, port: alive.port) else {
            statistics.malformed += 1
            return
        }
        var record: MemberRecord
        var addressChanged = false
        if let existing = members[alive.node] {
            record = existing
            if existing.endpoint != endpoint {
                // Another address under a known name: taken only once the old one is gone.
                guard existing.state == .dead || existing.state == .left else { return }
                addressChanged = true
            }
        } else {
            // At the cap, the longest-departed member makes room; with none departed, news of
            // one more member is dropped (a flood of invented names cannot crowd out the live).
            if members.count >= configuration.maxMembers {
                guard
                    let oldest = members.values.filter({
                        $0.name != me && ($0.state == .dead || $0.state == .left)
                    })
                    .min(by: { $0.stateChange < $1.stateChange })
                else { return }
                forget(oldest)
            }
            // New members start dead, so that the update below reports a join.
            record = MemberRecord(
                name: alive.node, endpoint: endpoint, meta: alive.meta, incarnation: 0, state: .dead,
                stateChange: now, versions: alive.versions)
            members[alive.node] = record
            probeOrder.insert(
                alive.node, at: probeOrder.isEmpty ? 0 : Int(random.next() % UInt64(probeOrder.count + 1)))
            addressChanged = true
        }
        let isLocal = alive.node == me
        if alive.incarnation <= record.incarnation && !isLocal && !addressChanged { return }
        if alive.incarnation < record.incarnation && isLocal { return }
        suspicions[alive.node] = nil
        let oldState = record.state
        let oldMeta = record.meta
        if isLocal {
            if alive.incarnation == record.incarnation && alive.meta == configuration.meta
                && alive.versions == configuration.versions
            {
                return
            }
            refute(accused: alive.incarnation, now: now)
            return
        }
        broadcasts.enqueue(key: alive.node, message: MemberlistCodec.encode(.alive(alive)))
        record.incarnation = alive.incarnation
        record.meta = alive.meta
        if record.endpoint != endpoint { endpoints[record.endpoint] = nil }
        record.endpoint = endpoint
        endpoints[endpoint] = alive.node
        record.versions = alive.versions
        if record.state != .alive {
            record.state = .alive
            record.stateChange = now
        }
        members[alive.node] = record
        if oldState == .dead || oldState == .left {
            actions.append(.event(.joined(record)))
        } else if oldMeta != record.meta {
            actions.append(.event(.updated(record)))
        }
    }

    mutating func suspectNode(_ accusation: MemberAccusation, now: Duration, actions: inout [SWIMAction]) {
        guard var record = members[accusation.node], accusation.incarnation >= record.incarnation else {
            return
        }
        if var suspicion = suspicions[accusation.node] {
            if suspicion.confirm(accusation.from) {
                suspicions[accusation.node] = suspicion
                broadcasts.enqueue(
                    key: accusation.node, message: MemberlistCodec.encode(.suspect(accusation)))
            }
            return
        }
        guard record.state == .alive else { return }
        if accusation.node == me {
            refute(accused: accusation.incarnation, now: now)
            return
        }
        broadcasts.enqueue(key: accusation.node, message: MemberlistCodec.encode(.suspect(accusation)))
        record.incarnation = accusation.incarnation
        record.state = .suspect
        record.stateChange = now
        members[accusation.node] = record
        statistics.suspicions += 1
        // Expect confirmations from k = multiplier - 2 others, if the cluster has them.
        let count = members.count
        var expected = configuration.suspicionMultiplier - 2
        if count - 2 < expected { expected = 0 }
        let minimum = suspicionTimeout(nodes: count)
        suspicions[accusation.node] = Suspicion(
            from: accusation.from, expected: expected, minimum: minimum,
            maximum: minimum * configuration.suspicionMaxTimeoutMultiplier, now: now)
        actions.append(.event(.suspected(record)))
    }

    /// `suspicionMultiplier × max(1, log10(max(1, n))) × probeInterval` (memberlist `util.go`).
    public func suspicionTimeout(nodes: Int) -> Duration {
        let scale = max(1, log10(Double(max(1, nodes))))
        return configuration.probeInterval * (Double(configuration.suspicionMultiplier) * scale)
    }

    mutating func deadNode(_ accusation: MemberAccusation, now: Duration, actions: inout [SWIMAction]) {
        guard var record = members[accusation.node], accusation.incarnation >= record.incarnation else {
            return
        }
        suspicions[accusation.node] = nil
        guard record.state != .dead && record.state != .left else { return }
        if accusation.node == me && !leaving {
            refute(accused: accusation.incarnation, now: now)
            return
        }
        broadcasts.enqueue(key: accusation.node, message: MemberlistCodec.encode(.dead(accusation)))
        record.incarnation = accusation.incarnation
        record.state = accusation.node == accusation.from ? .left : .dead
        record.stateChange = now
        members[accusation.node] = record
        if record.state == .dead { statistics.deaths += 1 }
        actions.append(.event(record.state == .left ? .left(record) : .failed(record)))
    }

    /// Someone thinks we are suspect or dead: a newer incarnation says we are alive, and our
    /// own health score worsens (we may be the slow one).
    mutating func refute(accused: UInt32, now: Duration) {
        incarnation = max(incarnation, accused) &+ 1
        statistics.refutations += 1
        adjustAwareness(1)
        if var record = members[me] {
            record.incarnation = incarnation
            record.state = .alive
            members[me] = record
        }
        broadcasts.enqueue(key: me, message: MemberlistCodec.encode(.alive(aliveMessage())))
    }

    mutating func adjustAwareness(_ delta: Int) {
        awareness = min(max(awareness + delta, 0), configuration.awarenessMaxMultiplier - 1)
    }

    func scaled(_ duration: Duration) -> Duration { duration * (awareness + 1) }

    // MARK: Time

    /// Runs the timers due by `now`: probes and their indirect rounds, suspicion timeouts,
    /// relayed nacks, gossip, periodic push-pull, and forgetting departed members.
    public mutating func tick(now: Duration) -> [SWIMAction] {
        var actions: [SWIMAction] = []
        if var current = probe {
            if !current.acked && !current.indirectSent && now >= current.timeoutAt {
                current.indirectSent = true
                probe = current
                indirectProbe(now: now, actions: &actions)
            }
            if let finished = probe, finished.acked || now >= finished.deadline {
                completeProbe(finished, now: now, actions: &actions)
            }
        }
        if now >= nextProbe && !leaving {
            nextProbe = now + scaled(configuration.probeInterval)
            if let finished = probe { completeProbe(finished, now: now, actions: &actions) }
            startProbe(now: now, actions: &actions)
        }
        for (name, suspicion) in suspicions where now >= suspicion.deadline {
            suspicions[name] = nil
            if let record = members[name], record.state == .suspect {
                deadNode(
                    MemberAccusation(incarnation: record.incarnation, node: name, from: me), now: now,
                    actions: &actions)
            }
        }
        for (key, relay) in relays {
            if relay.wantsNack && now >= relay.nackAt {
                relays[key]?.wantsNack = false
                send(
                    [MemberlistCodec.encode(.nack(sequence: relay.requesterSequence))], to: relay.requester,
                    now: now,
                    actions: &actions)
            }
            if now >= relay.expiresAt { relays[key] = nil }
        }
        if now >= nextGossip {
            nextGossip = now + configuration.gossipInterval
            actions += gossip(now: now)
        }
        if now >= nextPushPull && !leaving {
            nextPushPull = now + configuration.pushPullInterval
            nextReap = now + .seconds(1)
            if let partner = randomMembers(1, where: { $0.state == .alive }).first {
                actions.append(.pushPull(to: partner.endpoint, join: false))
            }
        }
        guard now >= nextReap else { return actions }
        nextReap = now + .seconds(1)
        for (name, record) in members where name != me && (record.state == .dead || record.state == .left) {
            if now - record.stateChange > configuration.keepDeparted { forget(record) }
        }
        return actions
    }

    mutating func forget(_ record: MemberRecord) {
        members[record.name] = nil
        suspicions[record.name] = nil
        if endpoints[record.endpoint] == record.name { endpoints[record.endpoint] = nil }
        probeOrder.removeAll { $0 == record.name }
    }

    /// When ``tick(now:)`` next has work: the driver (or the simulator) wakes the member then.
    public var nextDeadline: Duration {
        var next = min(nextGossip, nextReap)
        if !leaving { next = min(next, nextProbe, nextPushPull) }
        if let probe {
            if !probe.acked && !probe.indirectSent { next = min(next, probe.timeoutAt) }
            next = min(next, probe.deadline)
        }
        for suspicion in suspicions.values { next = min(next, suspicion.deadline) }
        for relay in relays.values {
            if relay.wantsNack { next = min(next, relay.nackAt) }
            next = min(next, relay.expiresAt)
        }
        return next
    }

    /// The next probe target, round robin over a shuffled order, skipping departed members.
    mutating func startProbe(now: Duration, actions: inout [SWIMAction]) {
        var checked = 0
        while checked < probeOrder.count {
            if probeIndex >= probeOrder.count {
                probeIndex = 0
                probeOrder.shuffle(using: &random)
            }
            let name = probeOrder[probeIndex]
            probeIndex += 1
            checked += 1
            guard name != me, let record = members[name], record.state == .alive || record.state == .suspect
            else { continue }
            sequence &+= 1
            statistics.probes += 1
            probe = Probe(
                target: name, sequence: sequence, timeoutAt: now + scaled(configuration.probeTimeout),
                deadline: now + scaled(configuration.probeInterval))
            let ping = MemberPing(
                sequence: sequence, node: name, source: configuration.advertise, sourceNode: me)
            var messages = [MemberlistCodec.encode(.ping(ping))]
            if record.state == .suspect {
                // Tell a suspect it is suspected, so it can refute.
                messages.append(
                    MemberlistCodec.encode(
                        .suspect(MemberAccusation(incarnation: record.incarnation, node: name, from: me))))
            }
            send(messages, to: record.endpoint, now: now, actions: &actions)
            return
        }
    }

    mutating func indirectProbe(now: Duration, actions: inout [SWIMAction]) {
        guard let current = probe, let target = members[current.target] else { return }
        if configuration.tcpFallback && target.versions.count >= 2 && target.versions[1] >= 3 {
            let ping = MemberPing(
                sequence: current.sequence, node: target.name, source: configuration.advertise, sourceNode: me
            )
            actions.append(.streamPing(ping, to: target.endpoint, deadline: current.deadline))
        }
        let helpers = randomMembers(configuration.indirectChecks) {
            $0.name != current.target && $0.state == .alive
        }
        statistics.indirectProbes += 1
        for helper in helpers {
            // Only members of protocol 4 and later send nacks.
            let nack = helper.versions.count >= 2 && helper.versions[1] >= 4
            if nack { probe?.nacksExpected += 1 }
            let request = MemberIndirectPing(
                sequence: current.sequence, target: target.endpoint, node: target.name, wantsNack: nack,
                source: configuration.advertise, sourceNode: me)
            send(
                [MemberlistCodec.encode(.indirectPing(request))], to: helper.endpoint, now: now,
                actions: &actions)
        }
    }

    /// A probe ends: answered (health improves, done) or not (health worsens by the nacks that
    /// did not come, the target is suspected).
    mutating func completeProbe(_ finished: Probe, now: Duration, actions: inout [SWIMAction]) {
        probe = nil
        guard !finished.acked else { return }
        if finished.nacksExpected > 0 {
            adjustAwareness(max(0, finished.nacksExpected - finished.nacks))
        } else {
            adjustAwareness(1)
        }
        guard let record = members[finished.target] else { return }
        suspectNode(
            MemberAccusation(incarnation: record.incarnation, node: record.name, from: me), now: now,
            actions: &actions)
    }

    /// `count` distinct random members matching `include` (memberlist `kRandomNodes`).
    mutating func randomMembers(_ count: Int, where include: (MemberRecord) -> Bool) -> [MemberRecord] {
        var chosen: [MemberRecord] = []
        var seen: Set<String> = []
        let names = probeOrder
        guard !names.isEmpty else { return [] }
        // Random draws first (cheap in large clusters), then a scan if the draws fell short.
        for _ in 0..<(3 * names.count > 64 ? 64 : 3 * names.count) where chosen.count < count {
            let name = names[Int(random.next() % UInt64(names.count))]
            guard seen.insert(name).inserted, let record = members[name], name != me, include(record) else {
                continue
            }
            chosen.append(record)
        }
        if chosen.count < count {
            for name in names.sorted() where chosen.count < count && !seen.contains(name) {
                guard let record = members[name], name != me, include(record) else { continue }
                chosen.append(record)
            }
        }
        return chosen
    }

    /// Gossip: news to a few random members (alive, suspect, or recently dead).
    mutating func gossip(now: Duration) -> [SWIMAction] {
        var actions: [SWIMAction] = []
        let toTheDead = configuration.gossipToTheDead
        let targets = randomMembers(configuration.gossipNodes) { record in
            switch record.state {
            case .alive, .suspect: true
            case .dead: now - record.stateChange <= toTheDead
            case .left: false
            }
        }
        for target in targets {
            let messages = broadcasts.take(budget: configuration.packetBudget - 2, limit: retransmitLimit)
            guard !messages.isEmpty else { break }
            statistics.packetsSent += 1
            actions.append(.send(messages, to: target.endpoint, checksum: target.wantsChecksum))
        }
        return actions
    }

    var retransmitLimit: Int {
        configuration.retransmitMultiplier * Int(ceil(log10(Double(members.count + 1))))
    }

    /// Sends `messages` with as much pending news piggybacked as fits the packet.
    mutating func send(
        _ messages: [[UInt8]], to endpoint: Endpoint, now: Duration, actions: inout [SWIMAction]
    ) {
        let used = messages.reduce(2) { $0 + $1.count + 2 }
        var packet = messages
        packet += broadcasts.take(
            budget: configuration.packetBudget - used, limit: retransmitLimit, maxCount: 255 - messages.count)
        let checksum = endpoints[endpoint].flatMap { members[$0] }?.wantsChecksum ?? false
        statistics.packetsSent += 1
        actions.append(.send(packet, to: endpoint, checksum: checksum))
    }
}

/// memberlist's `TransmitLimitedQueue`: the news least sent goes first; news about a member
/// replaces older news about it; each is sent a bounded number of times.
struct BroadcastQueue: Sendable {
    struct Item: Sendable {
        var key: String
        var message: [UInt8]
        var transmits: Int
        var order: Int
    }

    var items: [Item] = []
    var counter = 0
    static let maxItems = 4096

    mutating func enqueue(key: String, message: [UInt8]) {
        items.removeAll { $0.key == key }
        counter += 1
        items.append(Item(key: key, message: message, transmits: 0, order: counter))
        if items.count > Self.maxItems {
            // Drop the most-sent, oldest news first.
            items.sort { ($0.transmits, -$0.order) < ($1.transmits, -$1.order) }
            items.removeLast(items.count - Self.maxItems)
        }
    }

    /// Messages fitting `budget` bytes (2 bytes of compound overhead each), fewest transmits
    /// and newest first; each taken counts a transmit, and leaves at `limit`.
    mutating func take(budget: Int, limit: Int, maxCount: Int = 255) -> [[UInt8]] {
        guard !items.isEmpty, budget > 0 else { return [] }
        items.sort { ($0.transmits, -$0.order) < ($1.transmits, -$1.order) }
        var remaining = budget
        var out: [[UInt8]] = []
        for index in items.indices where out.count < maxCount {
            let cost = items[index].message.count + 2
            guard cost <= remaining else { continue }
            remaining -= cost
            out.append(items[index].message)
            items[index].transmits += 1
        }
        items.removeAll { $0.transmits >= max(1, limit) }
        return out
    }

    var isEmpty: Bool { items.isEmpty }
}

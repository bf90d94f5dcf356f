/// Settings of an iterative lookup.
public struct LookupConfiguration: Sendable {
    /// Results wanted: the lookup ends when the `k` closest known nodes have all answered.
    public var k = 8
    /// Queries in flight at once (α in the Kademlia paper).
    public var alpha = 3
    /// A query unanswered this long counts as failed (its node is not waited for any more).
    public var timeout: Duration = .seconds(2)
    /// Most nodes a lookup keeps as candidates (bounds memory against nodes that flood it).
    public var maxCandidates = 200

    public init() {}
}

/// What a lookup wants done.
public enum LookupAction<Width: IDWidth, Address: Hashable & Sendable>: Sendable, Hashable {
    /// Send the lookup's query (find_node, get_peers, …) to this contact.
    case query(Contact<Width, Address>)
}

/// An iterative Kademlia lookup (Maymounkov and Mazières, section 2.3) as a state machine: it
/// keeps candidates sorted by distance to the target, keeps α queries in flight to the closest
/// ones not yet asked, merges the nodes each answer names, and finishes when the `k` closest
/// candidates that did not fail have all answered (or nothing is left to ask). Timeouts are
/// checked against the time the caller passes in; what a query carries and what its answer holds
/// besides nodes (peers, values, tokens) is the caller's business.
public struct Lookup<Width: IDWidth, Address: Hashable & Sendable>: Sendable {
    public typealias ID = KademliaID<Width>
    public typealias Node = Contact<Width, Address>

    private enum State: Sendable, Hashable {
        case waiting
        case inFlight(since: KademliaTime)
        /// Timed out once and asked again: others are asked meanwhile, but the lookup does not
        /// end without its answer or its final failure.
        case retrying
        case answered
        case failed
    }

    private struct Candidate: Sendable {
        var contact: Node
        var distance: ID
        var state: State
        /// 1 for the seeds, n + 1 for nodes named by an answer from depth n.
        var hop: Int
    }

    public let target: ID
    public let configuration: LookupConfiguration
    private var candidates: [Candidate] = []
    private var seen: Set<ID> = []
    public private(set) var queriesSent = 0
    public private(set) var answers = 0
    public private(set) var failures = 0
    public private(set) var startedAt: KademliaTime

    public init(
        target: ID, seeds: [Node], configuration: LookupConfiguration = LookupConfiguration(),
        now: KademliaTime
    ) {
        self.target = target
        self.configuration = configuration
        startedAt = now
        merge(seeds, hop: 1)
    }

    /// The first queries.
    public mutating func start(now: KademliaTime) -> [LookupAction<Width, Address>] { next(now: now) }

    /// More starting points found after the start (e.g. bootstrap nodes answering late).
    public mutating func add(seeds: [Node], now: KademliaTime) -> [LookupAction<Width, Address>] {
        merge(seeds, hop: 1)
        return next(now: now)
    }

    /// `id` answered and named `nodes` closer to the target (also after it was given up on).
    public mutating func answered(by id: ID, nodes: [Node], now: KademliaTime) -> [LookupAction<
        Width, Address
    >] {
        guard let index = candidates.firstIndex(where: { $0.contact.id == id }) else { return [] }
        switch candidates[index].state {
        case .inFlight, .retrying:
            break
        case .failed:
            // Late, after its timeout: still a good answer (the driver may have asked again).
            failures -= 1
        case .waiting, .answered:
            return []  // unsolicited or repeated: ignored
        }
        candidates[index].state = .answered
        answers += 1
        merge(nodes, hop: candidates[index].hop + 1)
        return next(now: now)
    }

    /// The query to `id` failed (an error reply, or the driver gave up on it).
    public mutating func failed(_ id: ID, now: KademliaTime) -> [LookupAction<Width, Address>] {
        guard let index = candidates.firstIndex(where: { $0.contact.id == id }) else { return [] }
        switch candidates[index].state {
        case .inFlight, .retrying: break
        case .waiting, .answered, .failed: return []
        }
        candidates[index].state = .failed
        failures += 1
        return next(now: now)
    }

    /// The query to `id` timed out and the driver sent it again: the lookup asks the next
    /// candidate at once instead of waiting, but still waits for this one's answer (or
    /// ``failed(_:now:)``) before it ends, in case that node is one of the closest.
    public mutating func stalled(_ id: ID, now: KademliaTime) -> [LookupAction<Width, Address>] {
        guard let index = candidates.firstIndex(where: { $0.contact.id == id }),
            case .inFlight = candidates[index].state
        else { return [] }
        candidates[index].state = .retrying
        return next(now: now)
    }

    /// Fails queries older than the timeout; returns new queries, and which nodes timed out
    /// (for the routing table).
    public mutating func timerFired(now: KademliaTime) -> (
        actions: [LookupAction<Width, Address>], timedOut: [Node]
    ) {
        var timedOut: [Node] = []
        for index in candidates.indices {
            if case .inFlight(let since) = candidates[index].state, now - since >= configuration.timeout {
                candidates[index].state = .failed
                failures += 1
                timedOut.append(candidates[index].contact)
            }
        }
        return (next(now: now), timedOut)
    }

    /// When the next query times out, if any is in flight.
    public var nextDeadline: KademliaTime? {
        candidates.compactMap { candidate -> KademliaTime? in
            if case .inFlight(let since) = candidate.state { return since + configuration.timeout }
            return nil
        }.min()
    }

    /// Whether the lookup has converged (nothing in flight that could change the result).
    public var isFinished: Bool {
        var counted = 0
        var retrying = false
        for candidate in candidates {
            switch candidate.state {
            case .failed: continue
            case .retrying:
                retrying = true
                continue
            case .answered: counted += 1
            case .waiting, .inFlight: return false
            }
            if counted == configuration.k { return !retrying }
        }
        return !retrying
    }

    /// The closest nodes that answered, nearest first (at most k).
    public var closest: [Node] {
        Array(candidates.lazy.filter { $0.state == .answered }.prefix(configuration.k).map { $0.contact })
    }

    /// Hops to the closest answering node (1: a seed).
    public var hops: Int { candidates.first { $0.state == .answered }?.hop ?? 0 }

    private var inFlight: Int {
        candidates.reduce(0) { count, candidate in
            if case .inFlight = candidate.state { return count + 1 }
            return count
        }
    }

    private mutating func next(now: KademliaTime) -> [LookupAction<Width, Address>] {
        var actions: [LookupAction<Width, Address>] = []
        var flying = inFlight
        var live = 0
        for index in candidates.indices {
            guard flying < configuration.alpha, live < configuration.k else { break }
            switch candidates[index].state {
            case .failed, .retrying: continue
            case .answered, .inFlight: live += 1
            case .waiting:
                candidates[index].state = .inFlight(since: now)
                queriesSent += 1
                flying += 1
                live += 1
                actions.append(.query(candidates[index].contact))
            }
        }
        return actions
    }

    private mutating func merge(_ nodes: [Node], hop: Int) {
        // Candidates stay sorted by distance: each newcomer goes in at its place.
        for node in nodes where seen.insert(node.id).inserted {
            let distance = node.id.distance(to: target)
            var low = 0
            var high = candidates.count
            while low < high {
                let middle = (low + high) / 2
                if candidates[middle].distance < distance { low = middle + 1 } else { high = middle }
            }
            candidates.insert(
                Candidate(contact: node, distance: distance, state: .waiting, hop: hop), at: low)
        }
        if candidates.count > configuration.maxCandidates {
            // Drop the farthest not yet asked; never forget what is in flight or answered.
            var index = candidates.count - 1
            while candidates.count > configuration.maxCandidates && index >= 0 {
                if candidates[index].state == .waiting { candidates.remove(at: index) }
                index -= 1
            }
        }
    }
}

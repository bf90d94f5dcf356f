import DequeModule
import Multiformats

/// The fetching half of Bitswap, sans I/O: blocks wanted from several peers at once, a bounded
/// number in flight (in all and per peer), each asked of one peer as a want-block with
/// `sendDontHave`; a `DONT_HAVE` or a timeout passes the block to the next peer that has not
/// refused it, and a block nobody has is reported missing. Blocks arrive with CIDs computed over
/// their data (``BitswapMessage``), so a block is always its CID's; a peer that sends a block
/// nobody here wants is dropped. Time is passed in (`now`, since any origin).
public struct BitswapSession<Peer: Hashable & Sendable>: Sendable {
    public struct Limits: Sendable, Hashable {
        public var maxInFlight = 256
        public var maxInFlightPerPeer = 64
        /// A want unanswered this long goes to another peer.
        public var timeout: Duration = .seconds(20)
        public init() {}
    }

    public enum Action: Sendable, Equatable {
        case send(Peer, BitswapMessage)
        /// Stop using the peer (it sent a block nobody asked it for).
        case drop(Peer, reason: String)
    }

    struct Request: Sendable {
        var peer: Peer
        var sentAt: Duration
    }

    struct PeerState: Sendable {
        var inFlight: Set<CID> = []
        /// Wants cancelled at a timeout: the block may still come (late, not unasked).
        var cancelled: Set<CID> = []
    }

    /// Most cancelled wants remembered per peer.
    static var maxCancelled: Int { 4_096 }

    /// Whether `cid` is wanted and not yet received.
    public func wants(_ cid: CID) -> Bool { wanted.contains(cid) }

    public let limits: Limits
    var peers: [Peer: PeerState] = [:]
    /// The order peers were added, for turns.
    var order: [Peer] = []
    var turn = 0
    var waiting = Deque<CID>()
    var wanted: Set<CID> = []
    var inFlight: [CID: Request] = [:]
    /// Peers that said `DONT_HAVE` (or timed out) for a CID.
    var refused: [CID: Set<Peer>] = [:]

    public init(limits: Limits = Limits()) { self.limits = limits }

    /// Blocks wanted and not yet received.
    public var outstanding: Int { wanted.count }
    public var peerCount: Int { peers.count }

    public mutating func addPeer(_ peer: Peer, now: Duration) -> [Action] {
        guard peers[peer] == nil else { return [] }
        peers[peer] = PeerState()
        order.append(peer)
        return schedule(now: now)
    }

    /// A peer went away: its wants go to others.
    public mutating func removePeer(_ peer: Peer, now: Duration) -> [Action] {
        guard let state = peers.removeValue(forKey: peer) else { return [] }
        order.removeAll { $0 == peer }
        for cid in state.inFlight {
            inFlight[cid] = nil
            waiting.prepend(cid)
        }
        return schedule(now: now)
    }

    /// Wants these blocks (already-wanted ones are ignored).
    public mutating func want(_ cids: [CID], now: Duration) -> [Action] {
        for cid in cids where wanted.insert(cid).inserted { waiting.append(cid) }
        return schedule(now: now)
    }

    /// What a peer sent: the blocks that were wanted (to store and follow), CIDs nobody had,
    /// and what to send next.
    public mutating func received(_ message: BitswapMessage, from peer: Peer, now: Duration) -> (
        blocks: [BitswapMessage.Block], missing: [CID], actions: [Action]
    ) {
        guard peers[peer] != nil else { return ([], [], []) }
        var blocks: [BitswapMessage.Block] = []
        var missing: [CID] = []
        var lateCancels: [Peer: [CID]] = [:]
        for block in message.blocks {
            if peers[peer]?.cancelled.remove(block.cid) != nil, !wanted.contains(block.cid) {
                continue  // asked of this peer, cancelled at a timeout, and since received
            }
            guard wanted.contains(block.cid) else {
                // Not wanted by us at all: a peer that pushes blocks is dropped.
                var actions = [
                    Action.drop(peer, reason: "sent block \(block.cid), which nobody asked it for")
                ]
                actions += removePeer(peer, now: now)
                return (blocks, missing, actions)
            }
            wanted.remove(block.cid)
            refused[block.cid] = nil
            if let request = inFlight.removeValue(forKey: block.cid) {
                peers[request.peer]?.inFlight.remove(block.cid)
                if request.peer != peer { lateCancels[request.peer, default: []].append(block.cid) }
            }
            blocks.append(block)
        }
        // Another peer was asked for a block that came from this one: cancel it there.
        var cancels: [Action] = []
        for (other, cids) in lateCancels {
            for cid in cids { remember(cancelled: cid, by: other) }
            cancels.append(.send(other, BitswapMessage(entries: cids.map { .init(cid: $0, cancel: true) })))
        }
        for (cid, presence) in message.presences where presence == .dontHave {
            guard let request = inFlight[cid], request.peer == peer else { continue }
            if refuse(cid, by: peer) { missing.append(cid) }
        }
        return (blocks, missing, cancels + schedule(now: now))
    }

    /// Moves wants that timed out to other peers (and reports those no peer is left for).
    public mutating func tick(now: Duration) -> (missing: [CID], actions: [Action]) {
        var missing: [CID] = []
        var cancels: [Peer: [CID]] = [:]
        for (cid, request) in inFlight where now - request.sentAt >= limits.timeout {
            cancels[request.peer, default: []].append(cid)
            remember(cancelled: cid, by: request.peer)
            if refuse(cid, by: request.peer) { missing.append(cid) }
        }
        var actions: [Action] = cancels.map { peer, cids in
            .send(peer, BitswapMessage(entries: cids.map { .init(cid: $0, cancel: true) }))
        }
        actions += schedule(now: now)
        return (missing, actions)
    }

    /// A want of `peer` cancelled before its block came: the block may still arrive.
    mutating func remember(cancelled cid: CID, by peer: Peer) {
        guard var state = peers[peer] else { return }
        if state.cancelled.count >= Self.maxCancelled { state.cancelled.removeFirst() }
        state.cancelled.insert(cid)
        peers[peer] = state
    }

    /// `peer` said it lacks `cid` (or timed out): the want goes back in line for another peer,
    /// or, when every connected peer has refused it, is given up (true: report it missing).
    mutating func refuse(_ cid: CID, by peer: Peer) -> Bool {
        inFlight[cid] = nil
        peers[peer]?.inFlight.remove(cid)
        refused[cid, default: []].insert(peer)
        guard allRefused(cid) else {
            waiting.prepend(cid)
            return false
        }
        wanted.remove(cid)
        refused[cid] = nil
        return true
    }

    /// Whether every peer now connected has refused `cid`.
    func allRefused(_ cid: CID) -> Bool {
        let refusers = refused[cid] ?? []
        return order.allSatisfy { refusers.contains($0) }
    }

    /// Hands waiting wants to peers with room, a peer at a time in turn, skipping peers that
    /// refused the CID; one message per peer.
    mutating func schedule(now: Duration) -> [Action] {
        guard !order.isEmpty else { return [] }
        var batches: [Peer: [CID]] = [:]
        var skipped: [CID] = []
        while inFlight.count < limits.maxInFlight, let cid = waiting.popFirst() {
            guard wanted.contains(cid), inFlight[cid] == nil else { continue }
            let refusers = refused[cid] ?? []
            var chosen: Peer?
            for step in 0..<order.count {
                let peer = order[(turn + step) % order.count]
                if refusers.contains(peer) { continue }
                if (peers[peer]?.inFlight.count ?? 0) < limits.maxInFlightPerPeer {
                    chosen = peer
                    turn = (turn + step + 1) % order.count
                    break
                }
            }
            guard let peer = chosen else {
                skipped.append(cid)
                // Every peer with room refused it, or none has room: stop when none has room.
                if order.allSatisfy({ (peers[$0]?.inFlight.count ?? 0) >= limits.maxInFlightPerPeer }) {
                    break
                }
                continue
            }
            inFlight[cid] = Request(peer: peer, sentAt: now)
            peers[peer]?.inFlight.insert(cid)
            batches[peer, default: []].append(cid)
        }
        for cid in skipped.reversed() { waiting.prepend(cid) }
        return order.compactMap { peer in
            guard let cids = batches[peer] else { return nil }
            return .send(
                peer,
                BitswapMessage(entries: cids.map { .init(cid: $0, wantType: .block, sendDontHave: true) }))
        }
    }
}

import DequeModule
import PeerNet

/// A peer as the node sees it.
public struct PeerInfo: Sendable, Hashable {
    public let id: Int
    public let address: Endpoint
    public let inbound: Bool
    public var version: VersionMessage?
    public var handshakeDone = false
    public var misbehaviour = 0
    public var sendHeaders = false
    /// Inventory the peer has or was told about (not announced to it again).
    var known: Set<Hash256> = []
    /// What the peer asked for with `getdata` and is still to be sent, served a budget at a
    /// time while the peer reads (``NodeCore/serveQueued(_:)``); each item once.
    var requested = Deque<Inventory>()
    var requestedSet: Set<Inventory> = []
    /// Headers the peer sent that ended on a chain with less work than our tip.
    var lowWorkHeaders = 0
    /// Address gossip: whether the peer asked for `addrv2` (BIP 155), the addresses it knows
    /// (not sent to it again), those queued for its next trickle, and the token bucket that
    /// bounds how many of its addresses are processed (Core: 0.1 a second, 1,000 at most).
    public var wantsAddrV2 = false
    var knownAddresses: Set<Endpoint> = []
    var addressQueue: [AddressBook.Record] = []
    var addressTokens: Double = 1
    var tokensUpdated: UInt32 = 0
    var answeredGetaddr = false
    var nextAddressSend: UInt32 = 0
}

/// What the driver must do after the node handled something.
public enum NodeAction: Sendable, Equatable {
    case send(peer: Int, P2PMessage)
    case disconnect(peer: Int, reason: String)
    /// Disconnect and refuse this peer's IP from now on (any port).
    case ban(peer: Int, address: IPAddress, reason: String)
    /// The chain's store failed (``ChainState/failure``): stop the node. Nothing was judged.
    case fatal(String)
    /// Dial this address from the book (an outbound slot is free); report the outcome with
    /// ``NodeCore/connected(peer:address:inbound:)`` or ``NodeCore/dialFailed(_:)``.
    case connect(Endpoint)
}

/// The node's protocol logic, sans I/O (Bitcoin Core's `PeerManager` in small): handshake,
/// ping, headers-first sync, relay of transactions and blocks by `inv`/`getdata`, and
/// misbehaviour scores — a peer reaching 100 (invalid data) is banned. Invalid transactions and
/// blocks are never relayed. Driven by ``BitcoinNode`` on one event loop.
public final class NodeCore {
    public let chain: ChainState
    public let mempool: Mempool
    public private(set) var peers: [Int: PeerInfo] = [:]
    public private(set) var banned: Set<IPAddress> = []
    /// Per peer, the headers of a low-work branch held in memory (``maxStoredForkDepth``).
    var pendingHeaders: [Int: [BlockIndexEntry]] = [:]
    /// Addresses heard of through gossip, and chosen from for outbound connections.
    public var addressBook: AddressBook
    /// Where this node listens, announced to its peers (nil: not announced).
    public var localAddress: Endpoint?
    /// Mean seconds between address trickles to a peer (Core: 30); tests shorten it.
    public var addressInterval: UInt32 = 30
    /// Outbound connections kept, dialled from the address book (Core: 8 full-relay).
    public var targetOutbound = 8
    /// Addresses being dialled for an outbound slot.
    var connecting: Set<Endpoint> = []
    var random: SplitMix64
    let nonce: UInt64
    let userAgent = "/PeerStack:0.1.0/"
    /// The time of the event being handled (seconds since 1970): every entry point takes it
    /// as `now:`, so the state machine reads no clock of its own.
    public private(set) var now: UInt32 = 0
    func clock() -> UInt32 { now }

    /// `nonce` identifies this node in `version` (to notice a connection to itself); the driver
    /// picks it at random, tests may fix it.
    public init(chain: ChainState, mempool: Mempool = Mempool(), nonce: UInt64) {
        self.chain = chain
        self.mempool = mempool
        self.nonce = nonce
        self.addressBook = AddressBook(allowLoopback: chain.parameters.name == "regtest")
        self.random = SplitMix64(seed: nonce)
    }

    /// Most inventory hashes remembered per peer (a peer's `inv` floods must not grow it without end).
    static let maxKnown = 50_000

    func remember(_ hash: Hash256, for peer: Int) {
        guard peers[peer] != nil else { return }
        if peers[peer]?.known.count ?? 0 >= Self.maxKnown {
            peers[peer]?.known.removeAll(keepingCapacity: true)
        }
        peers[peer]?.known.insert(hash)
    }

    /// The services this node offers: NODE_NETWORK (full blocks) and NODE_WITNESS.
    public static let services: UInt64 = 1 | 8

    func versionMessage() -> VersionMessage {
        let none = NetworkAddress(services: 0, ip: [0, 0, 0, 0], port: 0)
        return VersionMessage(
            services: Self.services, timestamp: Int64(clock()), receiver: none, sender: none, nonce: nonce,
            userAgent: userAgent,
            startHeight: Int32(chain.height))
    }

    /// A connection is up: an outbound one starts the handshake.
    public func connected(peer: Int, address: Endpoint, inbound: Bool, now: UInt32) -> [NodeAction] {
        self.now = now
        if inbound, banned.contains(address.ip) { return [.disconnect(peer: peer, reason: "banned")] }
        peers[peer] = PeerInfo(id: peer, address: address, inbound: inbound)
        if !inbound { connecting.remove(address) }
        return inbound ? [] : [.send(peer: peer, .version(versionMessage()))]
    }

    /// A dial for an outbound slot failed.
    public func dialFailed(_ endpoint: Endpoint) {
        connecting.remove(endpoint)
        addressBook.failed(endpoint)
    }

    public func disconnected(peer: Int) {
        peers[peer] = nil
        pendingHeaders[peer] = nil
        mempool.dropOrphans(from: peer)
    }

    func misbehave(_ peer: Int, _ score: Int, _ reason: String) -> [NodeAction] {
        guard var info = peers[peer] else { return [] }
        info.misbehaviour += score
        peers[peer] = info
        guard info.misbehaviour >= 100 else { return [] }
        peers[peer] = nil
        // As Bitcoin Core: a local peer is disconnected but not banned (that would ban every
        // peer on the same local address).
        guard !info.address.ip.isLoopback else { return [.disconnect(peer: peer, reason: reason)] }
        banned.insert(info.address.ip)
        return [.ban(peer: peer, address: info.address.ip, reason: reason)]
    }

    /// Handles one message from `peer`. Once the store has failed, every message gets only
    /// the instruction to stop.
    public func handle(_ message: P2PMessage, from peer: Int, now: UInt32) -> [NodeAction] {
        self.now = now
        if let failure = chain.failure { return [.fatal(failure)] }
        let actions = handleChecked(message, from: peer)
        if let failure = chain.failure { return [.fatal(failure)] }
        return actions
    }

    func handleChecked(_ message: P2PMessage, from peer: Int) -> [NodeAction] {
        guard var info = peers[peer] else { return [] }
        switch message {
        case .version(let version):
            guard info.version == nil else { return misbehave(peer, 1, "second version") }
            if version.nonce == nonce { return [.disconnect(peer: peer, reason: "connected to self")] }
            info.version = version
            peers[peer] = info
            var actions: [NodeAction] = []
            if info.inbound { actions.append(.send(peer: peer, .version(versionMessage()))) }
            // BIP 155: after version, before verack.
            actions.append(.send(peer: peer, .sendaddrv2))
            actions.append(.send(peer: peer, .verack))
            return actions
        case .sendaddrv2:
            // Only between version and verack counts (BIP 155).
            guard !info.handshakeDone else { return [] }
            info.wantsAddrV2 = true
            peers[peer] = info
            return []
        case .verack:
            guard !info.handshakeDone else { return [] }
            info.handshakeDone = true
            let now = clock()
            info.tokensUpdated = now
            // Our own address goes out with the first trickle, soon after the handshake.
            info.nextAddressSend = now &+ 1
            if let localAddress {
                info.addressQueue.append(
                    AddressBook.Record(endpoint: localAddress, time: now, services: Self.services))
            }
            var actions: [NodeAction] = [
                .send(peer: peer, .sendheaders),
                .send(peer: peer, .getheaders(version: 70016, locator: chain.locator(), stop: .zero)),
            ]
            if !info.inbound {
                // Core asks outbound peers for addresses once, and takes up to 1,000 in reply.
                actions.append(.send(peer: peer, .getaddr))
                info.addressTokens += Double(P2PCodec.maxAddresses)
                addressBook.connected(info.address, now: now)
            }
            peers[peer] = info
            return actions
        default:
            guard info.handshakeDone || info.version != nil else {
                return misbehave(peer, 10, "message before version")
            }
        }
        switch message {
        case .ping(let value): return [.send(peer: peer, .pong(value))]
        case .sendheaders:
            info.sendHeaders = true
            peers[peer] = info
            return []
        case .addr(let addresses):
            return receiveAddresses(
                addresses.compactMap { address in
                    address.endpoint.map { ($0, address.time, address.services) }
                },
                count: addresses.count, from: peer)
        case .addrv2(let addresses):
            return receiveAddresses(
                addresses.compactMap { address in
                    address.endpoint.map { ($0, address.time, address.services) }
                },
                count: addresses.count, from: peer)
        case .getaddr:
            // As Core: only inbound peers are answered (an outbound one asking is fingerprinting
            // us), and once per connection.
            guard info.inbound, !info.answeredGetaddr else { return [] }
            info.answeredGetaddr = true
            let sample = addressBook.sample(using: &random).filter {
                !info.knownAddresses.contains($0.endpoint)
            }
            for record in sample { info.knownAddresses.insert(record.endpoint) }
            peers[peer] = info
            return sample.isEmpty ? [] : [.send(peer: peer, addressMessage(sample, v2: info.wantsAddrV2))]
        case .getheaders(_, let locator, let stop):
            return [.send(peer: peer, .headers(chain.headers(after: locator, stop: stop)))]
        case .headers(let headers):
            return receiveHeaders(headers, from: peer)
        case .inv(let items):
            var wanted: [Inventory] = []
            for item in items {
                remember(item.hash, for: peer)
                switch item.type & ~Inventory.witnessFlag {
                case Inventory.tx where !mempool.contains(item.hash):
                    wanted.append(Inventory(type: Inventory.tx | Inventory.witnessFlag, hash: item.hash))
                case Inventory.block where !chain.contains(item.hash):
                    wanted.append(Inventory(type: Inventory.block | Inventory.witnessFlag, hash: item.hash))
                default: break
                }
            }
            return wanted.isEmpty ? [] : [.send(peer: peer, .getdata(wanted))]
        case .getdata(let items):
            // Queued once each (a getdata naming one block a thousand times costs one send),
            // at most P2PCodec.maxInventory outstanding, and served a budget at a time.
            for item in items where info.requested.count < P2PCodec.maxInventory {
                if info.requestedSet.insert(item).inserted { info.requested.append(item) }
            }
            peers[peer] = info
            return serveQueued(peer)
        case .tx(let transaction): return receive(transaction, from: peer)
        case .block(let block): return receive(block, from: peer)
        default: return []
        }
    }

    /// Bytes of blocks and transactions sent per ``serveQueued(_:)`` call (at least one item):
    /// more than the connection's write-buffer high water, so the peer's reading, not the queue,
    /// sets the pace.
    public static let serveBudget = 2 << 20
    /// Low-work headers (ending below our tip's chain work) a peer may send before it is
    /// banned: on regtest proof of work is free, and each stored header costs memory.
    public static let maxLowWorkHeaders = 2 * P2PCodec.maxHeaders

    /// Sends the next items `peer` asked for, up to ``serveBudget``; the driver calls it again
    /// when the peer's connection can take more.
    public func serveQueued(_ peer: Int) -> [NodeAction] {
        guard var info = peers[peer] else { return [] }
        var actions: [NodeAction] = []
        var missing: [Inventory] = []
        var bytes = 0
        while bytes < Self.serveBudget, let item = info.requested.popFirst() {
            info.requestedSet.remove(item)
            switch item.type & ~Inventory.witnessFlag {
            case Inventory.tx:
                if let transaction = mempool.transaction(item.hash) {
                    bytes += transaction.serialized().count
                    actions.append(.send(peer: peer, .tx(transaction)))
                } else {
                    missing.append(item)
                }
            case Inventory.block:
                if let block = chain.block(item.hash) {
                    bytes += block.serialized().count
                    actions.append(.send(peer: peer, .block(block)))
                } else {
                    missing.append(item)
                }
            default: missing.append(item)
            }
        }
        peers[peer] = info
        if !missing.isEmpty { actions.append(.send(peer: peer, .notfound(missing))) }
        return actions
    }

    /// Most addresses remembered per peer as known to it.
    static let maxKnownAddresses = 5_000
    /// Address tokens a peer earns per second, and the most it can hold (Core's
    /// MAX_ADDR_RATE_PER_SECOND and MAX_ADDR_PROCESSING_TOKEN_BUCKET).
    static let addressRate = 0.1
    static let maxAddressTokens = Double(P2PCodec.maxAddresses)

    func addressMessage(_ records: [AddressBook.Record], v2: Bool) -> P2PMessage {
        v2
            ? .addrv2(records.map { AddressV2(time: $0.time, services: $0.services, endpoint: $0.endpoint) })
            : .addr(
                records.map {
                    NetworkAddress(
                        time: $0.time, services: $0.services, ip: $0.endpoint.ip.mappedBytes,
                        port: $0.endpoint.port)
                })
    }

    /// Addresses a peer gossiped: as many as its tokens allow go into the book, and fresh
    /// ones from a small message are passed on to two other peers (Core's relay rule).
    func receiveAddresses(_ heard: [(Endpoint, UInt32, UInt64)], count: Int, from peer: Int) -> [NodeAction] {
        guard var info = peers[peer], info.handshakeDone else { return [] }
        let now = clock()
        info.addressTokens = min(
            Self.maxAddressTokens, info.addressTokens + Double(now &- info.tokensUpdated) * Self.addressRate)
        info.tokensUpdated = now
        let allowed = min(heard.count, Int(info.addressTokens))
        info.addressTokens -= Double(allowed)
        let taken = Array(heard.prefix(allowed))
        if info.knownAddresses.count > Self.maxKnownAddresses {
            info.knownAddresses.removeAll(keepingCapacity: true)
        }
        for (endpoint, _, _) in taken { info.knownAddresses.insert(endpoint) }
        peers[peer] = info
        // A peer's own address (what it dials from, if it announces it) carries no penalty.
        let own = taken.filter { $0.0 == info.address }
        let relayed = taken.filter { $0.0 != info.address }
        addressBook.add(own, now: now)
        addressBook.add(relayed, now: now, penalty: 2 * 3_600)
        guard count <= 10 else { return [] }
        // Relay what is fresh (announced within the last 10 minutes) to two other peers.
        for (endpoint, time, services) in taken
        where addressBook.isUsable(endpoint) && time <= now &+ 600 && now &- time <= 600 {
            let record = AddressBook.Record(endpoint: endpoint, time: time, services: services)
            let others = peers.values.filter {
                $0.id != peer && $0.handshakeDone && !$0.knownAddresses.contains(endpoint)
            }.map(\.id).sorted().shuffled(using: &random).prefix(2)
            for other in others where (peers[other]?.addressQueue.count ?? 0) < P2PCodec.maxAddresses {
                peers[other]?.addressQueue.append(record)
            }
        }
        return []
    }

    /// The driver calls this about once a second: address trickles that are due, and dials
    /// from the address book while outbound slots are free.
    public func tick(now: UInt32) -> [NodeAction] {
        self.now = now
        if let failure = chain.failure { return [.fatal(failure)] }
        var actions: [NodeAction] = []
        for id in peers.keys.sorted() {
            guard var info = peers[id], info.handshakeDone, info.nextAddressSend <= now else { continue }
            // Core's Poisson timer in small: the interval with ±50 % jitter.
            let jitter = UInt32(random.next() % UInt64(max(addressInterval, 1)))
            info.nextAddressSend = now &+ max(1, addressInterval / 2 + jitter)
            let due = info.addressQueue.filter { !info.knownAddresses.contains($0.endpoint) }
            info.addressQueue.removeAll()
            for record in due { info.knownAddresses.insert(record.endpoint) }
            peers[id] = info
            if !due.isEmpty {
                actions.append(
                    .send(
                        peer: id,
                        addressMessage(Array(due.prefix(P2PCodec.maxAddresses)), v2: info.wantsAddrV2)))
            }
        }
        let outbound = peers.values.filter { !$0.inbound }.count + connecting.count
        if outbound < targetOutbound {
            var excluding = Set(peers.values.map(\.address)).union(connecting)
            if let localAddress { excluding.insert(localAddress) }
            for endpoint in addressBook.candidates(targetOutbound - outbound, excluding: excluding, now: now)
            {
                addressBook.attempted(endpoint, now: now)
                connecting.insert(endpoint)
                actions.append(.connect(endpoint))
            }
        }
        return actions
    }

    /// A branch forking more than this many blocks below the tip is not stored while its work
    /// is below the best chain's: its headers are held in memory (per peer, bounded) until they
    /// prove more work, and dropped if the peer runs out of them first (Core keeps such
    /// chains out of its block index the same way, by its headers presync).
    public static let maxStoredForkDepth = 144
    /// Most headers of a low-work branch held for one peer.
    public static let maxPendingHeaders = 10 * P2PCodec.maxHeaders

    func receiveHeaders(_ headers: [BlockHeader], from peer: Int) -> [NodeAction] {
        guard var info = peers[peer] else { return [] }
        if info.lowWorkHeaders > Self.maxLowWorkHeaders {
            return misbehave(peer, 100, "more than \(Self.maxLowWorkHeaders) headers with too little work")
        }
        guard let first = headers.first else { return [] }
        // Where the batch attaches: the tail of this peer's held branch, or a stored block.
        var held = pendingHeaders[peer] ?? []
        var parent: BlockIndexEntry
        if let tail = held.last, tail.hash == first.previous {
            parent = tail
        } else if let known = chain.entry(first.previous) {
            parent = known
            held = []
        } else {
            // Not connecting: ask for the headers in between.
            pendingHeaders[peer] = nil
            return [.send(peer: peer, .getheaders(version: 70016, locator: chain.locator(), stop: .zero))]
        }
        var checked: [BlockIndexEntry] = []
        let now = clock()
        for header in headers {
            if let known = chain.entry(header.hash) {
                if known.invalid { return misbehave(peer, 100, "invalid header: duplicate-invalid") }
                parent = known
                continue
            }
            do {
                let entry = try chain.checkHeader(header, parent: parent, now: now)
                checked.append(entry)
                parent = entry
            } catch {
                return misbehave(peer, 100, "invalid header: \(error)")
            }
        }
        let end = parent
        let forkDepth = chain.height - chain.forkPoint(end).height
        var actions: [NodeAction] = []
        let more = headers.count == P2PCodec.maxHeaders
        let askMore = NodeAction.send(
            peer: peer, .getheaders(version: 70016, locator: [headers[headers.count - 1].hash], stop: .zero))
        if forkDepth > Self.maxStoredForkDepth, end.chainWork <= chain.tip.chainWork, !checked.isEmpty {
            held += checked
            if held.count > Self.maxPendingHeaders || !more {
                // Too long a branch with too little work, or the peer has no more of it.
                info.lowWorkHeaders += held.count
                peers[peer] = info
                pendingHeaders[peer] = nil
                return []
            }
            pendingHeaders[peer] = held
            return [askMore]
        }
        pendingHeaders[peer] = nil
        guard chain.adopt(held + checked) else { return [.fatal(chain.failure ?? "the store failed")] }
        if end.chainWork < chain.tip.chainWork { info.lowWorkHeaders += headers.count }
        peers[peer] = info
        var wanted: [Inventory] = []
        for header in headers {
            let hash = header.hash
            remember(hash, for: peer)
            if let entry = chain.entry(hash), !entry.hasData {
                wanted.append(Inventory(type: Inventory.block | Inventory.witnessFlag, hash: hash))
            }
        }
        // Blocks of a held branch that just proved its work come first.
        let heldWanted = held.map { Inventory(type: Inventory.block | Inventory.witnessFlag, hash: $0.hash) }
        wanted = heldWanted + wanted
        if !wanted.isEmpty {
            actions.append(.send(peer: peer, .getdata(Array(wanted.prefix(P2PCodec.maxInventory)))))
        }
        if more { actions.append(askMore) }
        return actions
    }

    /// Validates and relays a transaction from a peer (or the node's own wallet, `peer` nil).
    /// One whose parent is unknown waits in the orphan pool while the parent is asked for; when
    /// it comes, both are relayed.
    public func receive(_ transaction: Transaction, from peer: Int?, now: UInt32) -> [NodeAction] {
        self.now = now
        return receive(transaction, from: peer)
    }

    func receive(_ transaction: Transaction, from peer: Int?) -> [NodeAction] {
        let txid = transaction.txid
        if let peer { remember(txid, for: peer) }
        let receipt: MempoolReceipt
        do {
            receipt = try mempool.receive(transaction, chain: chain, now: clock(), from: peer)
        } catch {
            guard let peer else { return [] }
            switch error {
            case .script(let input, _) where failsConsensus(transaction, input: input):
                return misbehave(peer, 100, "invalid transaction \(txid): \(error)")
            case .transaction("bad-txns-in-belowout"):
                return misbehave(peer, 100, "invalid transaction \(txid): \(error)")
            case .transaction(let reason)
            where reason.hasPrefix("bad-txns-vout") || reason.hasPrefix("bad-txns-inputs-duplicate"):
                return misbehave(peer, 100, "invalid transaction \(txid): \(error)")
            default:
                // Policy refusals, and a conflict with the mempool (Core does not punish
                // TX_CONFLICT: with replacement, conflicts are normal).
                return []
            }
        }
        switch receipt {
        case .orphan(let parents):
            guard let peer else { return [] }
            let wanted = parents.filter { !mempool.contains($0) }.map {
                Inventory(type: Inventory.tx | Inventory.witnessFlag, hash: $0)
            }
            return wanted.isEmpty ? [] : [.send(peer: peer, .getdata(wanted))]
        case .accepted(let txids):
            return txids.flatMap { announce(Inventory(type: Inventory.tx, hash: $0), except: peer) }
        }
    }

    /// Whether input `input` of a transaction the mempool refused for its script also fails
    /// under the consensus rules (Core punishes only those; one that fails only the standard
    /// policy flags is refused without blame).
    func failsConsensus(_ transaction: Transaction, input: Int) -> Bool {
        guard input < transaction.inputs.count,
            let coin = mempool.coin(transaction.inputs[input].previous, chain: chain)
        else { return false }
        do {
            try Interpreter.verify(
                transaction, input: input, spending: coin, flags: chain.scriptFlags(height: chain.height + 1))
            return false
        } catch {
            return true
        }
    }

    /// A block of our own (mined here, or given by `submitblock`): processed, and when it moved
    /// the tip, the mempool updated and the new blocks announced. Returns what happened.
    public func submit(_ block: Block, now: UInt32) -> (BlockOutcome, [NodeAction]) {
        self.now = now
        let outcome = chain.process(block, now: clock())
        switch outcome {
        case .tipChanged(let disconnected, let connected):
            mempool.update(disconnected: disconnected, connected: connected, chain: chain, now: clock())
            return (outcome, connected.flatMap { announce(block: $0, except: nil) })
        case .storeFailed(let reason):
            return (outcome, [.fatal(reason)])
        default:
            return (outcome, [])
        }
    }

    /// Validates a block, moves the chain, updates the mempool and relays the block.
    public func receive(_ block: Block, from peer: Int?, now: UInt32) -> [NodeAction] {
        self.now = now
        return receive(block, from: peer)
    }

    func receive(_ block: Block, from peer: Int?) -> [NodeAction] {
        let hash = block.hash
        if let peer { remember(hash, for: peer) }
        switch chain.process(block, now: clock()) {
        case .tipChanged(let disconnected, let connected):
            mempool.update(disconnected: disconnected, connected: connected, chain: chain, now: clock())
            var actions: [NodeAction] = []
            for block in connected { actions += announce(block: block, except: peer) }
            return actions
        case .invalid(let error):
            guard let peer else { return [] }
            return misbehave(peer, 100, "invalid block \(hash): \(error)")
        case .storeFailed(let reason):
            return [.fatal(reason)]
        case .orphan:
            guard let peer else { return [] }
            return [.send(peer: peer, .getheaders(version: 70016, locator: chain.locator(), stop: .zero))]
        case .sideBranch, .duplicate:
            return []
        }
    }

    func announce(_ item: Inventory, except: Int?) -> [NodeAction] {
        var actions: [NodeAction] = []
        for (id, info) in peers where id != except && info.handshakeDone && !info.known.contains(item.hash) {
            remember(item.hash, for: id)
            actions.append(.send(peer: id, .inv([item])))
        }
        return actions
    }

    func announce(block: Block, except: Int?) -> [NodeAction] {
        let hash = block.hash
        var actions: [NodeAction] = []
        for (id, info) in peers where id != except && info.handshakeDone && !info.known.contains(hash) {
            remember(hash, for: id)
            actions.append(
                .send(
                    peer: id,
                    info.sendHeaders
                        ? .headers([block.header]) : .inv([Inventory(type: Inventory.block, hash: hash)])))
        }
        return actions
    }
}

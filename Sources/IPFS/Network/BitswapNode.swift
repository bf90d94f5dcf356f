import DequeModule
import Libp2p
import Multiformats
import PeerCrypto

/// Bitswap on a libp2p host: the driver of the sans-I/O engines (``BitswapLedger`` serving each
/// peer, ``BitswapSession`` and ``DAGFetch`` fetching). Every peer gets one outgoing stream
/// (`/ipfs/bitswap/1.2.0`, falling back to 1.1.0 and 1.0.0), opened when there is something to
/// send; messages from a peer come on the streams it opens, as Kubo sends them. Answers are built
/// one message at a time as the previous one is written, so a peer that wants much and reads
/// slowly costs its wantlist, not the blocks.
public actor BitswapNode {
    public struct Configuration: Sendable {
        public var message = BitswapMessage.Limits()
        public var ledger = BitswapLedger.Limits()
        public var session = BitswapSession<PeerID>.Limits()
        /// Peers with Bitswap state at once (a ledger and a stream each); past it a new peer's
        /// streams are reset.
        public var maxPeers = 512
        /// Most blocks one fetched DAG may name.
        public var maxBlocks = ExportLimits().maxBlocks
        public init() {}
    }

    /// A fetch's progress: blocks and bytes stored (or found in the store) so far.
    public struct Progress: Sendable, Hashable {
        public var blocks = 0
        public var bytes = 0
        public var fetchedBlocks = 0
        public var fetchedBytes = 0
        public var peers = 0
    }

    /// The protocol IDs, in order of preference.
    public static let protocolIDs = [BitswapMessage.Version.v120, .v110, .v100].map(\.protocolID)

    public nonisolated let host: Libp2pHost
    public nonisolated let configuration: Configuration
    let store: any BlockSource & BlockSink
    let log: @Sendable (String) -> Void
    let origin = ContinuousClock.now

    struct PeerState {
        var connection: Libp2pConnection
        var ledger: BitswapLedger
        var outbox = Deque<BitswapMessage>()
        var wake: CheckedContinuation<Void, Never>?
        /// Tells this state's writer from the writer of a state the peer had before.
        var generation: Int
    }

    struct Fetch {
        var dag: DAGFetch
        var follow: Bool
        var session: BitswapSession<PeerID>
        var progress: Progress
        var report: @Sendable (Progress) -> Void
        var continuation: CheckedContinuation<Progress, any Error>
        var ticker: Task<Void, Never>?
    }

    var peers: [PeerID: PeerState] = [:]
    var generations = 0
    var fetch: Fetch?
    /// Messages received and blocks served, for statistics and tests.
    public private(set) var servedBlocks = 0
    public private(set) var droppedPeers = 0

    /// Bitswap for `host`, serving and storing blocks in `store`. Call ``start()`` to serve.
    public init(
        host: Libp2pHost, store: any BlockSource & BlockSink, configuration: Configuration = Configuration(),
        log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.host = host
        self.store = store
        self.configuration = configuration
        self.log = log
    }

    /// Serves the Bitswap protocols on the host (which then keeps this node).
    public nonisolated func start() {
        for id in Self.protocolIDs {
            host.handle(id) { stream in try await self.serve(stream) }
        }
    }

    var now: Duration { ContinuousClock.now - origin }

    // MARK: Fetching

    /// Fetches `root` and, with `follow`, every block of the DAG under it that the store lacks,
    /// from `connections` and every other peer speaking Bitswap; blocks are verified (their CID
    /// is computed from their bytes), stored, and followed. Returns when all are here; throws
    /// ``IPFSError/unavailable(_:peers:)`` for a block no peer has. One fetch at a time.
    public func fetch(
        _ root: CID, from connections: [Libp2pConnection] = [], follow: Bool = true,
        progress report: @escaping @Sendable (Progress) -> Void = { _ in }
    ) async throws -> Progress {
        guard fetch == nil else { throw IPFSError.badInput("a fetch is already running on this node") }
        var dag = DAGFetch(root: root, maxBlocks: configuration.maxBlocks)
        let wants: [CID]
        if follow {
            wants = try dag.start(store: store)
        } else {
            wants = store.has(root) ? [] : [root]
        }
        var progress = Progress(blocks: dag.blocks - wants.count, bytes: dag.bytes)
        guard !wants.isEmpty else { return progress }
        for connection in connections { _ = register(connection) }
        progress.peers = peers.count
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                var session = BitswapSession<PeerID>(limits: configuration.session)
                var actions: [BitswapSession<PeerID>.Action] = []
                for peer in peers.keys.sorted(by: { $0.description < $1.description }) {
                    actions += session.addPeer(peer, now: now)
                }
                actions += session.want(wants, now: now)
                fetch = Fetch(
                    dag: dag, follow: follow, session: session, progress: progress, report: report,
                    continuation: continuation)
                fetch?.ticker = Task { [weak self] in
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(1))
                        await self?.tick()
                    }
                }
                guard !peers.isEmpty else {
                    return finish(.failure(IPFSError.unavailable(wants[0], peers: 0)))
                }
                perform(actions)
            }
        } onCancel: {
            Task { await self.finish(.failure(CancellationError())) }
        }
    }

    func finish(_ result: Result<Progress, any Error>) {
        guard let done = fetch else { return }
        fetch = nil
        done.ticker?.cancel()
        // Wants still with peers are cancelled there.
        done.continuation.resume(with: result)
    }

    func tick() {
        guard fetch != nil else { return }
        let (missing, actions) = fetch!.session.tick(now: now)
        perform(actions)
        if let cid = missing.first { finish(.failure(IPFSError.unavailable(cid, peers: peers.count))) }
    }

    func perform(_ actions: [BitswapSession<PeerID>.Action]) {
        for action in actions {
            switch action {
            case .send(let peer, let message):
                guard peers[peer] != nil else { continue }
                peers[peer]!.outbox.append(message)
                wake(peer)
            case .drop(let peer, let reason):
                drop(peer, reason: reason)
            }
        }
    }

    /// Blocks and presences for the fetch; blocks are stored and followed.
    func fetched(_ message: BitswapMessage, from peer: PeerID) {
        guard fetch != nil else { return }
        let (blocks, missing, actions) = fetch!.session.received(message, from: peer, now: now)
        var more = actions
        do {
            for block in blocks {
                try store.put(block.cid, block.data)
                fetch!.progress.fetchedBlocks += 1
                fetch!.progress.fetchedBytes += block.data.count
                if fetch!.follow {
                    let next = try fetch!.dag.received(block.cid, block.data, store: store)
                    more += fetch!.session.want(next, now: now)
                }
                for other in peers.keys where other != peer { peers[other]!.ledger.blockAdded(block.cid) }
            }
        } catch {
            return finish(.failure(error))
        }
        if !blocks.isEmpty {
            var progress = fetch!.progress
            if fetch!.follow {
                progress.blocks = fetch!.dag.blocks - fetch!.session.outstanding
                progress.bytes = fetch!.dag.bytes
            } else {
                progress.blocks = progress.fetchedBlocks
                progress.bytes = progress.fetchedBytes
            }
            progress.peers = peers.count
            fetch!.progress = progress
            fetch!.report(progress)
        }
        perform(more)
        guard fetch != nil else { return }
        if let cid = missing.first {
            return finish(.failure(IPFSError.unavailable(cid, peers: peers.count)))
        }
        if fetch!.session.outstanding == 0 { finish(.success(fetch!.progress)) }
    }

    // MARK: Peers

    /// Starts Bitswap with the peer on `connection` (false: too many peers).
    func register(_ connection: Libp2pConnection) -> Bool {
        let peer = connection.remotePeer
        if let state = peers[peer] {
            if !state.connection.isActive { peers[peer]!.connection = connection }
            return true
        }
        guard peers.count < configuration.maxPeers else { return false }
        generations += 1
        let generation = generations
        peers[peer] = PeerState(
            connection: connection, ledger: BitswapLedger(limits: configuration.ledger),
            generation: generation)
        Task { await self.write(to: peer, generation: generation) }
        Task {
            await connection.closed()
            self.closed(connection)
        }
        if fetch != nil { perform(fetch!.session.addPeer(peer, now: now)) }
        return true
    }

    func closed(_ connection: Libp2pConnection) {
        let peer = connection.remotePeer
        guard let state = peers[peer], state.connection === connection else { return }
        if let other = host.connections.first(where: { $0.remotePeer == peer && $0.isActive }) {
            peers[peer]!.connection = other  // the peer is still here on another connection
            return
        }
        forget(peer)
    }

    func forget(_ peer: PeerID) {
        guard let state = peers.removeValue(forKey: peer) else { return }
        state.wake?.resume()
        guard fetch != nil else { return }
        perform(fetch!.session.removePeer(peer, now: now))
        if fetch?.session.peerCount == 0, fetch?.session.outstanding ?? 0 > 0 {
            finish(.failure(IPFSError.badInput("every peer went away before the fetch was done")))
        }
    }

    /// Stops using a peer that broke the protocol, and closes its connection.
    func drop(_ peer: PeerID, reason: String) {
        guard let state = peers[peer] else { return }
        droppedPeers += 1
        log("dropped \(peer): \(reason)")
        forget(peer)
        Task { await state.connection.close() }
    }

    func wake(_ peer: PeerID) {
        guard let waiter = peers[peer]?.wake else { return }
        peers[peer]!.wake = nil
        waiter.resume()
    }

    /// The next message for `peer`: what the fetch asks first, then the ledger's answers; waits
    /// while there is nothing. nil once the peer is gone.
    func nextMessage(for peer: PeerID, generation: Int) async -> BitswapMessage? {
        while peers[peer]?.generation == generation {
            if let message = peers[peer]!.outbox.popFirst() { return message }
            let store = self.store
            if let answer = peers[peer]!.ledger.nextMessage(
                size: { store.size($0) }, block: { try? store.verifiedBlock($0) })
            {
                servedBlocks += answer.blocks.count
                return answer
            }
            await withCheckedContinuation { peers[peer]?.wake = $0 }
        }
        return nil
    }

    /// The writer of `peer`'s outgoing stream, opened at the first message.
    func write(to peer: PeerID, generation: Int) async {
        guard var message = await nextMessage(for: peer, generation: generation),
            let connection = peers[peer]?.connection
        else {
            return
        }
        do {
            let stream = try await connection.openStream(Self.protocolIDs)
            let version =
                BitswapMessage.Version.allCases.first { $0.protocolID == stream.protocolID } ?? .v100
            while true {
                try await stream.writeDelimited(message.encoded(for: version))
                guard let next = await nextMessage(for: peer, generation: generation) else { break }
                message = next
            }
            stream.closeWrite()
        } catch {
            log("Bitswap to \(peer) failed: \(error)")
            if peers[peer]?.generation == generation { forget(peer) }
        }
    }

    /// An incoming stream: every message on it, until the peer closes it.
    nonisolated func serve(_ stream: Libp2pStream) async throws {
        let peer = stream.remotePeer
        guard await register(stream.connection) else {
            stream.reset()
            return
        }
        while let frame = try await stream.readDelimited(limit: configuration.message.maxMessage) {
            let message: BitswapMessage
            do {
                message = try BitswapMessage(decoding: frame, limits: configuration.message)
            } catch {
                stream.reset()
                await drop(peer, reason: "\(error)")
                return
            }
            await received(message, from: peer, on: stream.connection)
        }
    }

    func received(_ message: BitswapMessage, from peer: PeerID, on connection: Libp2pConnection) {
        if peers[peer] == nil, !register(connection) { return }
        if message.full || !message.entries.isEmpty {
            peers[peer]!.ledger.received(message)
            wake(peer)
        }
        if !message.blocks.isEmpty || !message.presences.isEmpty { fetched(message, from: peer) }
    }

    /// Peers with Bitswap state now.
    public var peerIDs: [PeerID] { Array(peers.keys) }
}

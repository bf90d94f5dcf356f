import Foundation
import Libp2p
import Multiformats
import PeerCrypto
import PeerNet

/// GossipSub on a libp2p host (the driver of ``GossipSubRouter``): it serves `/meshsub/1.1.0`,
/// `/meshsub/1.0.0` and `/floodsub/1.0.0`, opens one outbound pubsub stream to each connected
/// peer that speaks one of them, reads RPCs from the peer's stream, and runs the heartbeat.
/// Each peer's outbound RPCs wait in a bounded queue; a peer that does not read loses RPCs, not
/// our memory (go-libp2p drops the same way).
public actor GossipSubService {
    /// A message delivered to this node's application.
    public struct Delivery: Sendable {
        public let message: PubSubMessage
        public let id: [UInt8]
        /// The peer that forwarded it here (not necessarily the author).
        public let receivedFrom: PeerID
        /// The author, when the message is signed.
        public var author: PeerID? { message.from.flatMap { PeerID(wireID: $0) } }
    }

    public let host: Libp2pHost
    public let configuration: GossipSubConfiguration
    /// RPCs waiting for one peer's stream before newer ones are dropped.
    public let queueLength: Int
    private var router: GossipSubRouter<PeerID>
    private let started = ContinuousClock.now
    private var seqno: UInt64
    private var writers: [PeerID: AsyncStream<[UInt8]>.Continuation] = [:]
    private var subscribers: [String: [UUID: AsyncStream<Delivery>.Continuation]] = [:]
    private var validator: @Sendable (PubSubMessage) -> ValidationResult = { _ in .accept }
    private var heartbeatTask: Task<Void, Never>?
    private let log: @Sendable (String) -> Void

    /// Starts pubsub on `host`: registers the protocols and watches for connections.
    public init(
        host: Libp2pHost, configuration: GossipSubConfiguration = GossipSubConfiguration(),
        queueLength: Int = 256, log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.host = host
        self.configuration = configuration
        self.queueLength = queueLength
        self.log = log
        var seed = SystemRandomNumberGenerator()
        router = GossipSubRouter(configuration: configuration, seed: seed.next())
        // go-libp2p starts its sequence numbers at the time in nanoseconds, so restarts go on
        // counting up.
        seqno = UInt64(Date().timeIntervalSince1970 * 1e9)
        let protocols = configuration.d == 0 ? [PubSubProtocol.floodsub] : PubSubProtocol.allCases
        for proto in protocols {
            host.handle(proto.rawValue) { [weak self] stream in
                try await self?.serveInbound(stream, proto: proto)
            }
        }
        host.onConnection { [weak self] connection in
            Task { await self?.connected(connection) }
        }
    }

    /// Starts the heartbeat and attaches connections that are already open.
    public func start() {
        guard heartbeatTask == nil else { return }
        let interval = configuration.heartbeatInterval
        heartbeatTask = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                await self?.heartbeat()
            }
        }
        for connection in host.connections { Task { await connected(connection) } }
    }

    /// Stops the heartbeat and every writer (the host stays open).
    public func stop() {
        heartbeatTask?.cancel()
        heartbeatTask = nil
        for writer in writers.values { writer.finish() }
        writers = [:]
        for topic in subscribers.values { for continuation in topic.values { continuation.finish() } }
        subscribers = [:]
    }

    /// Decides on every new message before it is delivered or forwarded.
    public func setValidator(_ validator: @escaping @Sendable (PubSubMessage) -> ValidationResult) {
        self.validator = validator
    }

    private var now: Duration { ContinuousClock.now - started }

    // MARK: The application's side

    /// Subscribes to `topic`; the stream yields each new valid message until it is cancelled.
    public func subscribe(_ topic: String) -> AsyncStream<Delivery> {
        let (stream, continuation) = AsyncStream<Delivery>.makeStream(
            bufferingPolicy: .bufferingOldest(1_024))
        let key = UUID()
        subscribers[topic, default: [:]][key] = continuation
        continuation.onTermination = { [weak self] _ in
            Task { await self?.unsubscribe(topic, key: key) }
        }
        perform(router.subscribe(topic, now: now))
        return stream
    }

    private func unsubscribe(_ topic: String, key: UUID) {
        subscribers[topic]?[key] = nil
        if subscribers[topic]?.isEmpty == true {
            subscribers[topic] = nil
            perform(router.unsubscribe(topic, now: now))
        }
    }

    /// Publishes `data` on `topic`, signed by the host's identity (or anonymous under
    /// StrictNoSign); returns the message ID.
    @discardableResult
    public func publish(_ data: [UInt8], topic: String) throws -> [UInt8] {
        guard data.count + 512 <= configuration.limits.maxSize else {
            throw GossipError.tooLarge(
                "a message of \(data.count) bytes", limit: configuration.limits.maxSize - 512)
        }
        let message: PubSubMessage
        switch configuration.signaturePolicy {
        case .strictSign:
            seqno &+= 1
            message = try PubSubMessage.signed(topic: topic, data: data, seqno: seqno, by: host.identity)
        case .strictNoSign:
            message = .anonymous(topic: topic, data: data)
        }
        perform(router.publish(message, now: now))
        let id = configuration.messageID(message)
        // Local subscribers get the message too, as go-libp2p delivers its own publications.
        for continuation in subscribers[topic]?.values ?? [:].values {
            continuation.yield(Delivery(message: message, id: id, receivedFrom: host.peerID))
        }
        return id
    }

    /// Peers known to subscribe to `topic`.
    public func peers(in topic: String) -> [PeerID] { Array(router.peers(in: topic)) }
    /// The peers of this node's mesh for `topic`.
    public func mesh(_ topic: String) -> [PeerID] { Array(router.meshPeers(topic)) }
    /// Peers with an open pubsub stream, and the protocol each speaks.
    public func pubsubPeers() -> [(PeerID, PubSubProtocol)] {
        router.connectedPeers.compactMap { peer in router.protocolOf(peer).map { (peer, $0) } }
    }
    public var statistics: GossipStatistics { router.statistics }
    public func score(_ peer: PeerID) -> Double { router.score(peer, now: now) }

    /// Waits until `topic` has a subscribed peer (or `count` of them), up to `timeout`.
    public func waitForPeers(in topic: String, count: Int = 1, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if router.peers(in: topic).count >= count { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return router.peers(in: topic).count >= count
    }

    /// Waits until every peer's queue is written out (or `timeout`).
    public func flush(timeout: Duration) async {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline, pendingWrites > 0 {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }

    private var pendingWrites = 0

    // MARK: Streams

    private func connected(_ connection: Libp2pConnection) async {
        let peer = connection.remotePeer
        guard writers[peer] == nil, connection.isActive else { return }
        let (queue, continuation) = AsyncStream<[UInt8]>.makeStream(
            bufferingPolicy: .bufferingOldest(queueLength))
        writers[peer] = continuation
        let offered = configuration.d == 0 ? [PubSubProtocol.floodsub] : PubSubProtocol.allCases
        let stream: Libp2pStream
        do {
            stream = try await connection.openStream(offered.map(\.rawValue))
        } catch {
            writers[peer] = nil
            waiting[peer] = nil
            log("pubsub: \(peer) speaks no pubsub protocol: \(error)")
            return
        }
        guard let proto = PubSubProtocol(rawValue: stream.protocolID) else { return }
        let ip = connection.remoteAddress.flatMap { try? $0.tcpEndpoint() }.map { "\($0.ip)" }
        perform(router.addPeer(peer, protocol: proto, outbound: connection.isOutbound, ip: ip, now: now))
        log("pubsub: \(peer) over \(proto.rawValue)")
        if let subscriptions = waiting.removeValue(forKey: peer) {
            received(PubSubRPC(subscriptions: subscriptions), from: peer)
        }
        Task { [weak self] in
            for await bytes in queue {
                do {
                    try await stream.writeDelimited(bytes)
                } catch {
                    await self?.wrote()
                    break
                }
                await self?.wrote()
            }
            stream.closeWrite()
        }
        Task { [weak self] in
            await connection.closed()
            await self?.disconnected(peer, continuation: continuation)
        }
    }

    private func wrote() { pendingWrites = max(0, pendingWrites - 1) }

    private func disconnected(_ peer: PeerID, continuation: AsyncStream<[UInt8]>.Continuation) {
        // Another connection to the same peer may have replaced this one.
        if host.connections.contains(where: { $0.remotePeer == peer && $0.isActive }) {
            return
        }
        continuation.finish()
        writers[peer] = nil
        waiting[peer] = nil
        router.removePeer(peer, now: now)
    }

    /// Reads RPCs from a stream the peer opened until it ends or sends something malformed.
    private nonisolated func serveInbound(_ stream: Libp2pStream, proto: PubSubProtocol) async throws {
        let peer = stream.remotePeer
        let limits = configuration.limits
        do {
            while let bytes = try await stream.readDelimited(limit: limits.maxSize) {
                let rpc = try PubSubRPC.decode(bytes, limits: limits)
                await received(rpc, from: peer)
            }
        } catch {
            log("pubsub: \(peer)'s stream: \(error)")
            stream.reset()
            throw error
        }
    }

    private func received(_ rpc: PubSubRPC, from peer: PeerID) {
        guard router.protocolOf(peer) != nil else {
            // The peer's stream can deliver its hello before ours is agreed: its subscriptions
            // are kept (as many as a peer may have) until the peer is added.
            let room = configuration.maxTopicsPerPeer - waiting[peer, default: []].count
            waiting[peer, default: []] += rpc.subscriptions.prefix(max(0, room))
            return
        }
        let validate = validator
        perform(router.receive(rpc, from: peer, now: now, validate: validate))
    }

    /// Subscriptions from peers whose outbound stream is still being opened.
    private var waiting: [PeerID: [PubSubRPC.Subscription]] = [:]

    private func heartbeat() {
        perform(router.heartbeat(now: now))
    }

    private func perform(_ actions: [GossipAction<PeerID>]) {
        for action in actions {
            switch action {
            case .send(let peer, let rpc):
                guard let writer = writers[peer] else { continue }
                if case .enqueued = writer.yield(rpc.encoded()) { pendingWrites += 1 }
            case .deliver(let message, let id, let from):
                for continuation in subscribers[message.topic]?.values ?? [:].values {
                    continuation.yield(Delivery(message: message, id: id, receivedFrom: from))
                }
            case .connect(let peers):
                // Peer exchange without signed records gives IDs only; a peer is dialled when
                // an open connection or identify already names an address for it.
                for peer in peers {
                    guard let info = host.peerInfo(peer), let address = info.listenAddresses.first else {
                        continue
                    }
                    Task { [host] in _ = try? await host.connect(address) }
                }
            }
        }
    }
}

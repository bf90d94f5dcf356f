import Logging
import NIOCore
import NIOPosix
import PeerNet

/// A SWIM member on the network: one UDP socket and one TCP listener on the same port (as
/// memberlist binds them), driving a ``SWIMMember`` with a 50 ms timer. Datagrams wait in a
/// bounded queue (a flood loses datagrams, as UDP would, not memory); streams are bounded in
/// size, time and number.
public actor MembershipService {
    public struct Options: Sendable {
        public var configuration: SWIMConfiguration
        /// Where to bind; port 0 picks one (then advertised).
        public var listen: Endpoint
        public var framing = MemberlistFraming()
        public var seed: UInt64 = UInt64.random(in: 0...UInt64.max)
        /// Simultaneous inbound streams.
        public var maxStreams = 64
        /// memberlist's `TCPTimeout`: a stream must finish within this.
        public var streamTimeout: Duration = .seconds(10)

        public init(configuration: SWIMConfiguration, listen: Endpoint) {
            self.configuration = configuration
            self.listen = listen
        }
    }

    public nonisolated let events: AsyncStream<MembershipEvent>
    public nonisolated let localAddress: Endpoint
    let eventSink: AsyncStream<MembershipEvent>.Continuation
    let options: Options
    let group: any EventLoopGroup
    let udp: any Channel
    let tcp: TCPListener
    let clock = ContinuousClock()
    let started: ContinuousClock.Instant
    var member: SWIMMember
    var timer: Task<Void, Never>?
    var reader: Task<Void, Never>?
    var logger = Logger(label: "peerstack.members")

    /// Binds UDP and TCP on `options.listen` and starts the member.
    public static func start(
        _ options: Options, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    )
        async throws -> MembershipService
    {
        let (datagrams, datagramSink) = AsyncStream<(ByteBuffer, Endpoint)>.makeStream(
            bufferingPolicy: .bufferingNewest(1024))
        let box = ServiceBox()
        var limits = ConnectionLimits(handshakeTimeout: .seconds(10), idleTimeout: .seconds(10))
        limits.maxQueuedBytes = options.framing.limits.streamSize + 1024
        var tcpConfiguration = TCPListener.Configuration(limits: limits)
        tcpConfiguration.admission.maxConnections = options.maxStreams
        tcpConfiguration.admission.maxHandshaking = options.maxStreams
        let tcp = try await TCPListener.bind(
            on: options.listen, group: group, configuration: tcpConfiguration
        ) { channel in
            let handler = MemberlistStreamHandler(framing: options.framing) { channel, message in
                guard let service = box.service else { return }
                Task { await service.answer(message, on: channel) }
            }
            try channel.pipeline.syncOperations.addHandler(handler)
        }
        var port = options.listen.port
        if port == 0, let bound = tcp.localAddress { port = bound.port }
        let bind = Endpoint(ip: options.listen.ip, port: port)
        let udp: any Channel
        do {
            udp = try await UDPEndpoint.bind(on: bind, loop: group.next()) { channel in
                try channel.pipeline.syncOperations.addHandler(DatagramForwarder(sink: datagramSink))
            }
        } catch {
            await tcp.close()
            throw error
        }
        var configuration = options.configuration
        if configuration.advertise.port == 0 { configuration.advertise.port = port }
        var resolved = options
        resolved.configuration = configuration
        let service = MembershipService(options: resolved, group: group, udp: udp, tcp: tcp, bound: bind)
        box.service = service
        await service.run(datagrams)
        return service
    }

    init(options: Options, group: any EventLoopGroup, udp: any Channel, tcp: TCPListener, bound: Endpoint) {
        self.options = options
        self.group = group
        self.udp = udp
        self.tcp = tcp
        self.localAddress = bound
        started = clock.now
        member = SWIMMember(configuration: options.configuration, now: .zero, seed: options.seed)
        (events, eventSink) = AsyncStream<MembershipEvent>.makeStream(bufferingPolicy: .bufferingNewest(4096))
    }

    var now: Duration { clock.now - started }

    func run(_ datagrams: AsyncStream<(ByteBuffer, Endpoint)>) {
        timer = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(50))
                await self?.tick()
            }
        }
        reader = Task { [weak self] in
            for await (buffer, from) in datagrams {
                await self?.datagram(buffer, from: from)
            }
        }
    }

    func tick() {
        perform(member.tick(now: now))
    }

    func datagram(_ buffer: ByteBuffer, from: Endpoint) {
        let bytes = Array(buffer.readableBytesView)
        do {
            var messages: [MemberlistMessage] = []
            for part in try options.framing.messages(inPacket: bytes) {
                switch part {
                case .success(let message): messages.append(message)
                case .failure(let error):
                    member.noteMalformed()
                    logger.debug("packet from \(from): \(error)")
                }
            }
            perform(member.receive(messages, from: from, now: now))
        } catch {
            member.noteMalformed()
            logger.debug("packet from \(from): \(error)")
        }
    }

    func perform(_ actions: [SWIMAction]) {
        for action in actions {
            switch action {
            case .send(let messages, let to, let checksum):
                guard let packet = try? options.framing.packet(messages, checksum: checksum) else { continue }
                let envelope = AddressedEnvelope(
                    remoteAddress: to.socketAddress, data: udp.allocator.buffer(bytes: packet))
                udp.writeAndFlush(envelope, promise: nil)
            case .pushPull(let to, let join):
                Task { await self.pushPull(with: to, join: join) }
            case .streamPing(let ping, let to, let deadline):
                let timeout = max(.milliseconds(10), deadline - now)
                Task {
                    guard
                        let answer = await Self.request(
                            .ping(ping), to: to, framing: options.framing, group: group, timeout: timeout),
                        case .ack(let sequence, _) = answer, sequence == ping.sequence
                    else { return }
                    await self.fallbackAcked(answer, from: to)
                }
            case .event(let event):
                eventSink.yield(event)
            }
        }
    }

    /// Answers an inbound stream: a push-pull with our view (then merges theirs), a ping with
    /// an ack; then closes it.
    func answer(_ message: MemberlistMessage, on channel: any Channel) {
        switch message {
        case .pushPull(let remote):
            let observer = remote.nodes.isEmpty
            let reply = member.localState(join: remote.join, forObserver: observer, now: now)
            guard let bytes = try? options.framing.stream(MemberlistCodec.encode(.pushPull(reply))) else {
                channel.close(promise: nil)
                return
            }
            channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenComplete { _ in
                channel.close(promise: nil)
            }
            if !observer { perform(member.merge(remote, now: now)) }
        case .ping(let ping):
            if let ack = member.streamAck(for: ping) {
                guard let bytes = try? options.framing.stream(MemberlistCodec.encode(ack)) else {
                    channel.close(promise: nil)
                    return
                }
                channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenComplete { _ in
                    channel.close(promise: nil)
                }
            } else {
                channel.close(promise: nil)
            }
        default:
            channel.close(promise: nil)
        }
    }

    /// Exchanges views with `endpoint` over TCP; true when its view arrived and was merged.
    @discardableResult
    public func pushPull(with endpoint: Endpoint, join: Bool) async -> Bool {
        let state = member.localState(join: join, now: now)
        guard
            let remote = await Self.exchange(
                state, with: endpoint, framing: options.framing, group: group, timeout: options.streamTimeout)
        else { return false }
        perform(member.merge(remote, now: now))
        return true
    }

    func fallbackAcked(_ ack: MemberlistMessage, from: Endpoint) {
        perform(member.receive([ack], from: from, now: now))
    }

    /// One push-pull as a client: send `state`, read the answer. Also what `members list` uses
    /// (with no members: an observer's request).
    public static func exchange(
        _ state: PushPull, with endpoint: Endpoint, framing: MemberlistFraming,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton, timeout: Duration = .seconds(10)
    ) async -> PushPull? {
        guard
            case .pushPull(let remote)? = await request(
                .pushPull(state), to: endpoint, framing: framing, group: group, timeout: timeout)
        else { return nil }
        return remote
    }

    /// One request over a fresh TCP stream (a push-pull or a ping) and the message that answers
    /// it, or nil on any failure or past `timeout`.
    static func request(
        _ message: MemberlistMessage, to endpoint: Endpoint, framing: MemberlistFraming,
        group: any EventLoopGroup,
        timeout: Duration
    ) async -> MemberlistMessage? {
        let promise = group.next().makePromise(of: MemberlistMessage.self)
        guard let bytes = try? framing.stream(MemberlistCodec.encode(message)) else { return nil }
        let seconds = TimeAmount.nanoseconds(
            Int64(timeout.components.seconds) * 1_000_000_000
                + Int64(timeout.components.attoseconds / 1_000_000_000))
        var limits = ConnectionLimits(handshakeTimeout: seconds, idleTimeout: seconds)
        limits.maxQueuedBytes = framing.limits.streamSize + 1024
        do {
            let channel = try await TCPDialer.connect(
                to: endpoint, on: group.next(), limits: limits, timeout: seconds
            ) { channel in
                let handler = MemberlistStreamHandler(framing: framing) { _, message in
                    promise.succeed(message)
                }
                handler.failure = { promise.fail($0) }
                try channel.pipeline.syncOperations.addHandler(handler)
            }.get()
            channel.closeFuture.whenComplete { _ in promise.fail(ChannelError.eof) }
            channel.eventLoop.scheduleTask(in: seconds) { promise.fail(ChannelError.connectTimeout(seconds)) }
            try await channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).get()
            let answer = try await promise.futureResult.get()
            channel.close(promise: nil)
            return answer
        } catch {
            promise.fail(error)
            return nil
        }
    }

    /// Joins through `seeds`; the number that answered.
    public func join(_ seeds: [Endpoint]) async -> Int {
        var answered = 0
        for case .pushPull(let to, let join) in member.join(seeds) where await pushPull(with: to, join: join)
        {
            answered += 1
        }
        return answered
    }

    /// Leaves gracefully: the news goes out, then `linger` passes so gossip repeats it.
    public func leave(linger: Duration = .seconds(1)) async {
        perform(member.leave(now: now))
        try? await Task.sleep(for: linger)
    }

    public func view() -> [MemberRecord] { member.view }
    public func statistics() -> SWIMMember.Statistics { member.statistics }
    public func awareness() -> Int { member.awareness }

    public func shutdown() async {
        timer?.cancel()
        reader?.cancel()
        eventSink.finish()
        try? await udp.close().get()
        await tcp.close()
    }
}

final class ServiceBox: @unchecked Sendable {
    // Set once, before any connection can reach it.
    var service: MembershipService?
}

/// Hands each datagram to the service's bounded queue.
final class DatagramForwarder: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    let sink: AsyncStream<(ByteBuffer, Endpoint)>.Continuation

    init(sink: AsyncStream<(ByteBuffer, Endpoint)>.Continuation) { self.sink = sink }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let from = Endpoint(envelope.remoteAddress) else { return }
        sink.yield((envelope.data, from))
    }
}

/// Collects a stream's bytes until one memberlist message is whole (bounded by the framing's
/// stream limit), then hands it on once; a malformed stream is closed.
final class MemberlistStreamHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let framing: MemberlistFraming
    let deliver: (any Channel, MemberlistMessage) -> Void
    var failure: ((any Error) -> Void)?
    var buffer: [UInt8] = []
    var progress = MemberlistCodec.PushPullProgress()
    var done = false

    init(framing: MemberlistFraming, deliver: @escaping (any Channel, MemberlistMessage) -> Void) {
        self.framing = framing
        self.deliver = deliver
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        buffer.append(contentsOf: unwrapInboundIn(data).readableBytesView)
        do {
            switch try framing.streamMessage(buffer, progress: &progress) {
            case .needMore: return
            case .message(let message, _):
                done = true
                buffer = []
                ConnectionGuard.handshakeCompleted(context.channel)
                deliver(context.channel, message)
            }
        } catch {
            done = true
            failure?(error)
            context.close(promise: nil)
        }
    }
}

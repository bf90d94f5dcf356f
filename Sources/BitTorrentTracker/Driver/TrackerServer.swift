import BitTorrent
import NIOCore
import NIOHTTP1
import NIOPosix
import PeerNet

#if canImport(Glibc)
    import Glibc
#endif

/// A running tracker: the HTTP and UDP drivers around one ``TrackerService``, all on one event
/// loop (the state is confined to it, so no locks), with peer expiry on a timer.
public final class TrackerServer: Sendable {
    /// The bound addresses (with the real port when 0 was asked).
    public let httpAddress: SocketAddress?
    public let udpAddress: SocketAddress?
    private let loop: EventLoop
    private let core: NIOLoopBound<TrackerCore>
    private let channels: [Channel]

    private init(
        core: NIOLoopBound<TrackerCore>, channels: [Channel], http: SocketAddress?, udp: SocketAddress?
    ) {
        loop = core.eventLoop
        self.core = core
        self.channels = channels
        httpAddress = http
        udpAddress = udp
    }

    /// Starts listening on one loop of `group` (the process's shared group by default). At least
    /// one of `http` and `udp` should be given; `[::]` listens on both families.
    public static func start(
        configuration: TrackerConfiguration, http: Endpoint?, udp: Endpoint?,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> TrackerServer {
        let loop = group.next()
        var channels: [Channel] = []
        do {
            let core = try await loop.submit {
                NIOLoopBound(TrackerCore(configuration: configuration, loop: loop), eventLoop: loop)
            }.get()
            var httpAddress: SocketAddress?
            var udpAddress: SocketAddress?
            if let http {
                let requestLimits = configuration.httpRequests
                var listening = configuration.httpConnections
                listening.backlog = max(listening.backlog, 256)
                listening.maxMessagesPerRead = listening.maxMessagesPerRead ?? 1
                listening.receiveAllocator =
                    listening.receiveAllocator
                    ?? AdaptiveRecvByteBufferAllocator(minimum: 1_024, initial: 4_096, maximum: 16_384)
                let listener = try await TCPListener.bind(on: http, group: loop, configuration: listening) {
                    channel in
                    try channel.pipeline.syncOperations.addHandler(HTTPLingeringClose())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: true, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPRequestGuard(limits: requestLimits))
                    try channel.pipeline.syncOperations.addHandler(HTTPTrackerHandler(core: core.value))
                }
                let channel = listener.channel
                channels.append(channel)
                httpAddress = channel.localAddress
            }
            if let udp {
                // BEP 15 requests are under 2,048 bytes (BEP 41 URL data included); 16 a read.
                let channel = try await UDPEndpoint.bind(
                    on: udp, loop: loop,
                    configuration: UDPEndpoint.Configuration(
                        maxDatagram: 2_048, datagramsPerRead: 16, receiveBuffer: 4 << 20, sendBuffer: 4 << 20)
                ) { channel in
                    try channel.pipeline.syncOperations.addHandler(UDPTrackerHandler(core: core.value))
                }
                channels.append(channel)
                udpAddress = channel.localAddress
            }
            try await loop.submit { core.value.startTimers() }.get()
            return TrackerServer(core: core, channels: channels, http: httpAddress, udp: udpAddress)
        } catch {
            for channel in channels { try? await channel.close().get() }
            throw error
        }
    }

    /// A snapshot of the counts `/stats` shows.
    public func statistics() async throws -> TrackerStatistics {
        try await loop.submit { [core] in core.value.statistics }.get()
    }

    /// Replaces the admission rule, as a reloaded whitelist does; dropped torrents lose their peers.
    public func setAdmission(_ admission: TrackerAdmission) async throws {
        try await loop.submit { [core] in core.value.service.setAdmission(admission) }.get()
    }

    /// Closes the sockets (the event-loop group is the caller's).
    public func stop() async {
        try? await loop.submit { [core] in core.value.stopTimers() }.get()
        for channel in channels { try? await channel.close().get() }
    }
}

/// The loop-confined owner of the service: the clock, the random source, timers.
final class TrackerCore {
    var service: TrackerService
    private let loop: EventLoop
    private let started = NIODeadline.now()
    private var random: SplitMix64
    private var expiry: RepeatedTask?

    init(configuration: TrackerConfiguration, loop: EventLoop) {
        service = TrackerService(configuration: configuration)
        self.loop = loop
        random = SplitMix64(seed: UInt64.random(in: 0...UInt64.max))
    }

    /// Whole seconds since the start, plus one so that "never" (0) is before everything.
    var now: UInt32 { UInt32(clamping: (NIODeadline.now() - started).nanoseconds / 1_000_000_000 + 1) }

    func nextRandom() -> UInt64 { random.next() }

    var statistics: TrackerStatistics { service.state.statistics(uptime: Int(now) - 1) }

    func startTimers() {
        let period = TimeAmount.seconds(Int64(max(1, min(60, service.configuration.peerTimeout / 4))))
        let core = NIOLoopBound(self, eventLoop: loop)
        expiry = loop.scheduleRepeatedTask(initialDelay: period, delay: period) { _ in
            core.value.service.expire(now: core.value.now)
        }
    }

    func stopTimers() {
        expiry?.cancel()
        expiry = nil
    }
}

/// BEP 15 over a datagram channel: each packet in, one reply out, flushed once per read burst.
final class UDPTrackerHandler: ChannelInboundHandler {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    private let core: TrackerCore
    private var reply: [UInt8] = []
    private var pending = false

    init(core: TrackerCore) {
        self.core = core
        reply.reserveCapacity(2_048)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard let sender = Endpoint(envelope.remoteAddress) else { return }
        reply.removeAll(keepingCapacity: true)
        let now = core.now
        let random = core.nextRandom()
        let answer = envelope.data.withUnsafeReadableBytes { packet in
            core.service.serveUDP(packet, from: sender, now: now, random: random, into: &reply)
        }
        guard answer else { return }
        let buffer = context.channel.allocator.buffer(bytes: reply)
        context.write(
            wrapOutboundOut(AddressedEnvelope(remoteAddress: envelope.remoteAddress, data: buffer)),
            promise: nil)
        pending = true
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if pending {
            pending = false
            context.flush()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A send to a vanished client (ICMP unreachable) must not stop the tracker.
    }
}

/// HTTP/1.1 GET requests (keep-alive and pipelining) answered from the service.
final class HTTPTrackerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let core: TrackerCore
    private var head: HTTPRequestHead?

    init(core: TrackerCore) {
        self.core = core
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break  // a tracker GET has none; anything sent is discarded, never stored
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let response: HTTPTrackerResponse
        if head.method != .GET && head.method != .HEAD {
            response = HTTPTrackerResponse(
                status: 405, contentType: "text/plain", body: HTTPTrackerReply.failure("only GET is served"))
        } else {
            let source = context.remoteAddress.flatMap(IPAddress.init) ?? .anyV4
            let now = core.now
            response = core.service.serveHTTP(
                target: head.uri.utf8, source: source,
                forwardedFor: head.headers.first(name: "X-Forwarded-For"),
                now: now, random: core.nextRandom(), uptime: Int(now) - 1)
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: response.contentType)
        headers.add(name: "Content-Length", value: "\(response.body.count)")
        let keepAlive = head.isKeepAlive
        headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        let responseHead = HTTPResponseHead(
            version: head.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        if head.method != .HEAD {
            context.write(
                wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: response.body)))),
                promise: nil)
        }
        let done = context.writeAndFlushPromise()
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if !keepAlive {
            let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
            done.futureResult.whenComplete { _ in bound.value.close(promise: nil) }
        }
    }
}

extension ChannelHandlerContext {
    fileprivate func writeAndFlushPromise() -> EventLoopPromise<Void> { eventLoop.makePromise() }
}

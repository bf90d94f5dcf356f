import NIOCore
import NIOPosix

/// uTP (BEP 29) on a UDP socket: the handler that sits first in a datagram channel's pipeline,
/// takes the datagrams that are uTP (version 1, a known type: a bencoded DHT message starts with
/// `d` and passes on to the next handler, so the DHT and uTP share a port as in libtorrent),
/// and runs one ``UTPConnection`` per peer and connection ID, each exposed as a NIO `Channel`.
///
/// Incoming connections are admitted through a ``ConnectionLimiter`` and get a
/// ``ConnectionGuard`` first in their pipeline, then the `accept` initializer, as
/// ``TCPListener`` does; outgoing ones come from ``connect(to:initialize:)``. Acks for a burst
/// of datagrams go out once the burst is read; timers are checked every `tick`.
public final class UTPSocket: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    public typealias InboundIn = AddressedEnvelope<ByteBuffer>
    public typealias InboundOut = AddressedEnvelope<ByteBuffer>
    public typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    public struct Configuration: Sendable {
        public var connection = UTPConfiguration()
        /// The guard's limits for every uTP connection, as for TCP ones.
        public var limits = ConnectionLimits()
        /// How often retransmission timers are checked.
        public var tick: TimeAmount = .milliseconds(20)
        /// The read slot for one datagram of the socket's own UDP channel (`UDPEndpoint`'s
        /// `maxDatagram`): libtorrent and libutp send uTP packets of at most ~1,500 bytes, and a
        /// datagram that fills the slot is dropped as possibly cut. A socket shared with the DHT
        /// reads 64 KiB slots.
        public var maxDatagram = 4_096
        /// How long a closed connection lingers to finish its FIN exchange before it is dropped.
        public var closeLinger: TimeAmount = .seconds(30)

        public init() {}
    }

    struct Key: Hashable {
        var address: SocketAddress
        var id: UInt16
    }

    public let configuration: Configuration
    private let limiter: ConnectionLimiter?
    /// Sets up an accepted connection's pipeline (after the guard); nil: incoming SYNs are reset.
    private var accept: (@Sendable (any Channel) throws -> Void)?
    private var context: ChannelHandlerContext?
    private var streams: [Key: UTPStreamChannel] = [:]
    private var closedAt: [Key: NIODeadline] = [:]
    /// Connections that got packets in this burst of reads (each once), to send for at its end.
    private var touched: [Key] = []
    private var touchedSet: Set<Key> = []
    private var ticker: RepeatedTask?
    private var random = SystemRandomNumberGenerator()
    /// The UDP channel, once the handler is in its pipeline.
    public private(set) var channel: (any Channel)?

    public init(
        configuration: Configuration = Configuration(), limiter: ConnectionLimiter? = nil,
        accept: (@Sendable (any Channel) throws -> Void)? = nil
    ) {
        self.configuration = configuration
        self.limiter = limiter
        self.accept = accept
    }

    /// Microseconds on the monotonic clock.
    static func now() -> UInt64 { NIODeadline.now().uptimeNanoseconds / 1_000 }

    /// Connections open or finishing, for tests and statistics.
    public var connectionCount: Int { streams.count }

    // MARK: Handler

    public func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        channel = context.channel
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ticker = context.eventLoop.scheduleRepeatedTask(
            initialDelay: configuration.tick, delay: configuration.tick
        ) {
            _ in bound.value.tickAll()
        }
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        shutdown()
        self.context = nil
    }

    public func channelInactive(context: ChannelHandlerContext) {
        shutdown()
        context.fireChannelInactive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let envelope = unwrapInboundIn(data)
        guard UTPPacket.isUTP(envelope.data) else {
            context.fireChannelRead(data)
            return
        }
        // A datagram that filled its read slot may have been cut (NIO does not say): drop it.
        guard envelope.data.readableBytes < configuration.maxDatagram else { return }
        guard let packet = try? UTPPacket(decoding: envelope.data) else { return }
        let now = Self.now()
        let address = envelope.remoteAddress
        if packet.kind == .syn {
            let key = Key(address: address, id: packet.connectionID &+ 1)
            if let stream = streams[key] {
                stream.received(packet, now: now)
                touch(key)
                return
            }
            acceptConnection(packet, key: key, now: now)
            return
        }
        let key = Key(address: address, id: packet.connectionID)
        guard let stream = streams[key] else {
            // Not ours (any more): tell the peer, as libtorrent does, unless it is a RESET.
            if packet.kind != .reset {
                let reset = UTPPacket(
                    kind: .reset, connectionID: packet.connectionID,
                    timestamp: UInt32(truncatingIfNeeded: now),
                    sequenceNumber: 0, ackNumber: packet.sequenceNumber)
                write(reset, to: address)
                context.flush()
            }
            return
        }
        stream.received(packet, now: now)
        touch(key)
    }

    private func touch(_ key: Key) {
        if touchedSet.insert(key).inserted { touched.append(key) }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        let keys = touched
        touched = []
        touchedSet = []
        let now = Self.now()
        var wrote = false
        for key in keys {
            guard let stream = streams[key] else { continue }
            wrote = sendOutgoing(key, stream, now: now) || wrote
        }
        if wrote { context.flush() }
        context.fireChannelReadComplete()
    }

    // MARK: Connections

    private func acceptConnection(_ syn: UTPPacket, key: Key, now: UInt64) {
        guard let accept, let context else { return }
        guard
            let connection = UTPConnection(
                accepting: syn, sequenceNumber: UInt16.random(in: 0...UInt16.max, using: &random), now: now,
                configuration: configuration.connection)
        else { return }
        let stream = UTPStreamChannel(
            socket: self, connection: connection, remote: key.address, eventLoop: context.eventLoop,
            limits: configuration.limits, connectPromise: nil)
        if let limiter, !limiter.admit(stream) {
            _ = stream.abort()
            return
        }
        do {
            try stream.pipeline.syncOperations.addHandler(
                ConnectionGuard(limits: configuration.limits, limiter: limiter), position: .first)
            try accept(stream)
        } catch {
            _ = stream.abort()
            return
        }
        streams[key] = stream
        stream.becomeActive()
        touch(key)
    }

    /// Opens a uTP connection to `address` from this socket's event loop; `initialize` adds the
    /// protocol's handlers (after a ``ConnectionGuard``). The future fails if the peer does not
    /// answer (the SYN is tried three times, 3 s in all) or resets.
    public func connect(
        to address: SocketAddress, initialize: @escaping @Sendable (any Channel) throws -> Void
    ) -> EventLoopFuture<any Channel> {
        guard let context else {
            return MultiThreadedEventLoopGroup.singleton.next().makeFailedFuture(
                ChannelError.ioOnClosedChannel)
        }
        let loop = context.eventLoop
        guard loop.inEventLoop else {
            return loop.flatSubmit { self.connect(to: address, initialize: initialize) }
        }
        var id = UInt16.random(in: 0...UInt16.max, using: &random)
        while streams[Key(address: address, id: id)] != nil { id &+= 2 }
        let promise = loop.makePromise(of: (any Channel).self)
        let connection = UTPConnection(
            connecting: id, sequenceNumber: UInt16.random(in: 0...UInt16.max, using: &random),
            now: Self.now(),
            configuration: configuration.connection)
        let stream = UTPStreamChannel(
            socket: self, connection: connection, remote: address, eventLoop: loop,
            limits: configuration.limits,
            connectPromise: promise)
        do {
            try stream.pipeline.syncOperations.addHandler(
                ConnectionGuard(limits: configuration.limits), position: .first)
            try initialize(stream)
        } catch {
            promise.fail(error)
            return promise.futureResult
        }
        let key = Key(address: address, id: id)
        streams[key] = stream
        stream.pipeline.fireChannelRegistered()
        transmit(stream)
        return promise.futureResult
    }

    /// Sends what `stream` has to send now.
    func transmit(_ stream: UTPStreamChannel) {
        guard let context else { return }
        let packets = stream.outgoing(now: Self.now())
        guard !packets.isEmpty else { return }
        send(packets, to: stream.remote)
        context.flush()
    }

    private func write(_ packet: UTPPacket, to address: SocketAddress) {
        guard let context else { return }
        let datagram = packet.encoded(allocator: context.channel.allocator)
        context.write(
            wrapOutboundOut(AddressedEnvelope(remoteAddress: address, data: datagram)), promise: nil)
    }

    /// Most datagrams in one segmented write (Linux takes up to 64, in at most 64 KiB).
    static let maxSegments = 40
    /// Whether runs of equal-sized packets go out as one write the kernel cuts up (UDP GSO):
    /// one pass down the stack instead of one per datagram. Off where unsupported, and after
    /// the first segmented write that fails.
    private var segmenting = System.supportsUDPSegmentationOffload

    /// Writes `packets` for `address`: runs of packets of one size (the last of a run may be
    /// shorter) as segmented writes, the rest one by one.
    private func send(_ packets: [UTPPacket], to address: SocketAddress) {
        guard let context else { return }
        guard segmenting, packets.count > 1 else {
            for packet in packets { write(packet, to: address) }
            return
        }
        var run = ByteBuffer()
        var segment = 0
        var count = 0
        func flushRun() {
            guard count > 0 else { return }
            if count == 1 {
                context.write(
                    wrapOutboundOut(AddressedEnvelope(remoteAddress: address, data: run)), promise: nil)
            } else {
                let metadata = AddressedEnvelope<ByteBuffer>.Metadata(
                    ecnState: .transportNotCapable, packetInfo: nil, segmentSize: segment)
                let promise = context.eventLoop.makePromise(of: Void.self)
                let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
                promise.futureResult.whenFailure { _ in bound.value.segmenting = false }
                context.write(
                    wrapOutboundOut(AddressedEnvelope(remoteAddress: address, data: run, metadata: metadata)),
                    promise: promise)
            }
            count = 0
        }
        for packet in packets {
            let size = packet.encodedLength
            if count > 0, size > segment || count == Self.maxSegments { flushRun() }
            if count == 0 {
                segment = size
                run = context.channel.allocator.buffer(capacity: size * min(packets.count, Self.maxSegments))
            }
            packet.write(into: &run)
            count += 1
            if size < segment { flushRun() }  // a shorter datagram ends a run
        }
        flushRun()
    }

    private func tickAll() {
        guard let context else { return }
        let now = Self.now()
        var wrote = false
        for (key, stream) in streams {
            stream.tick(now: now)
            wrote = sendOutgoing(key, stream, now: now) || wrote
        }
        if wrote { context.flush() }
        // Closed channels whose FIN exchange never ended are dropped after the linger.
        let deadline = NIODeadline.now()
        for (key, since) in closedAt where deadline - since > configuration.closeLinger {
            closedAt[key] = nil
            streams[key] = nil
        }
    }

    /// Writes (without flushing) what `stream` has to send now; whether anything was written.
    private func sendOutgoing(_ key: Key, _ stream: UTPStreamChannel, now: UInt64) -> Bool {
        let packets = stream.outgoing(now: now)
        if !packets.isEmpty { send(packets, to: key.address) }
        noteIfFinished(key, stream)
        return !packets.isEmpty
    }

    private func noteIfFinished(_ key: Key, _ stream: UTPStreamChannel) {
        if stream.isFinished {
            streams[key] = nil
            closedAt[key] = nil
        } else if stream.isChannelClosed, closedAt[key] == nil {
            closedAt[key] = .now()
        }
    }

    /// Resets every connection (the socket is closing).
    private func shutdown() {
        ticker?.cancel()
        ticker = nil
        let all = streams
        streams = [:]
        closedAt = [:]
        for (key, stream) in all {
            if let reset = stream.abort() { write(reset, to: key.address) }
        }
        context?.flush()
    }
}

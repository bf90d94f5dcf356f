import DequeModule
import NIOCore
import Synchronization

/// One uTP connection as a NIO `Channel`, so a protocol's handlers (the peer wire, MSE, the
/// connection guard) run on it as on a TCP socket. It lives on its ``UTPSocket``'s event loop:
/// reads come from the socket's datagrams, writes go into the ``UTPConnection``'s send queue.
/// Writability follows the bytes not yet acknowledged against the write-buffer watermarks;
/// `read()` is honoured (bytes wait here, and the window we advertise shrinks by them), so a
/// handler that pauses reading slows the peer as TCP would.
final class UTPStreamChannel: Channel, ChannelCore, @unchecked Sendable {
    let eventLoop: any EventLoop
    let allocator = ByteBufferAllocator()
    var parent: (any Channel)? { socket.channel }
    private unowned let socket: UTPSocket
    private(set) var connection: UTPConnection
    let remote: SocketAddress
    private let closePromise: EventLoopPromise<Void>
    /// Made once, at the end of `init` (a lazy property because the pipeline needs `self`).
    private lazy var _pipeline = ChannelPipeline(channel: self)
    private let active = Atomic<Bool>(false)
    private let writable = Atomic<Bool>(true)

    private enum State {
        case connecting(EventLoopPromise<any Channel>?)
        case open
        case closed
    }
    private var state: State
    private var autoRead = true
    private var readRequested = false
    private var delivering = false
    private var windowReopened = false
    private var inbound = Deque<ByteBuffer>()
    private var inboundBytes = 0
    private var endOfStream = false
    private var pendingWrites: [(ByteBuffer, EventLoopPromise<Void>?)] = []
    private var lowWater: Int
    private var highWater: Int
    private let maxQueued: Int

    init(
        socket: UTPSocket, connection: UTPConnection, remote: SocketAddress, eventLoop: any EventLoop,
        limits: ConnectionLimits, connectPromise: EventLoopPromise<any Channel>?
    ) {
        self.socket = socket
        self.connection = connection
        self.remote = remote
        self.eventLoop = eventLoop
        self.closePromise = eventLoop.makePromise()
        self.lowWater = limits.writeBufferLowWater
        self.highWater = max(limits.writeBufferLowWater + 1, limits.writeBufferHighWater)
        self.maxQueued = limits.maxQueuedBytes
        self.state = connection.isConnected ? .open : .connecting(connectPromise)
        _ = _pipeline
    }

    // MARK: Channel

    var pipeline: ChannelPipeline { _pipeline }
    var closeFuture: EventLoopFuture<Void> { closePromise.futureResult }
    var isWritable: Bool { writable.load(ordering: .relaxed) }
    var isActive: Bool { active.load(ordering: .relaxed) }
    var _channelCore: any ChannelCore { self }
    var localAddress: SocketAddress? { socket.channel?.localAddress }
    var remoteAddress: SocketAddress? { remote }

    func setOption<Option: ChannelOption>(_ option: Option, value: Option.Value) -> EventLoopFuture<Void> {
        if eventLoop.inEventLoop {
            setOption0(option, value: value)
            return eventLoop.makeSucceededVoidFuture()
        }
        return eventLoop.submit { self.setOption0(option, value: value) }
    }

    func getOption<Option: ChannelOption>(_ option: Option) -> EventLoopFuture<Option.Value> {
        if eventLoop.inEventLoop { return eventLoop.makeCompletedFuture { try self.getOption0(option) } }
        return eventLoop.submit { try self.getOption0(option) }
    }

    /// Options a stream has: auto-read and the write-buffer watermarks; socket options mean
    /// nothing here and are accepted without effect.
    private func setOption0<Option: ChannelOption>(_ option: Option, value: Option.Value) {
        if option is ChannelOptions.Types.AutoReadOption, let on = value as? Bool {
            autoRead = on
            if on { read0() }
        } else if option is ChannelOptions.Types.WriteBufferWaterMarkOption,
            let mark = value as? ChannelOptions.Types.WriteBufferWaterMark
        {
            lowWater = mark.low
            highWater = mark.high
        }
    }

    private func getOption0<Option: ChannelOption>(_ option: Option) throws -> Option.Value {
        if option is ChannelOptions.Types.AutoReadOption, let value = autoRead as? Option.Value {
            return value
        }
        if option is ChannelOptions.Types.WriteBufferWaterMarkOption,
            let value = ChannelOptions.Types.WriteBufferWaterMark(low: lowWater, high: highWater)
                as? Option.Value
        {
            return value
        }
        throw ChannelError.operationUnsupported
    }

    // MARK: ChannelCore

    func localAddress0() throws -> SocketAddress {
        guard let address = socket.channel?.localAddress else { throw ChannelError.ioOnClosedChannel }
        return address
    }

    func remoteAddress0() throws -> SocketAddress { remote }
    func register0(promise: EventLoopPromise<Void>?) { promise?.succeed() }
    func registerAlreadyConfigured0(promise: EventLoopPromise<Void>?) { promise?.succeed() }
    func bind0(to: SocketAddress, promise: EventLoopPromise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }
    func connect0(to: SocketAddress, promise: EventLoopPromise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }

    func write0(_ data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard case .open = state else {
            promise?.fail(ChannelError.ioOnClosedChannel)
            return
        }
        guard case .byteBuffer(let buffer) = tryUnwrapData(data, as: IOData.self) else {
            promise?.fail(ChannelError.operationUnsupported)
            return
        }
        pendingWrites.append((buffer, promise))
    }

    func flush0() {
        guard case .open = state, !pendingWrites.isEmpty else { return }
        let writes = pendingWrites
        pendingWrites = []
        for (buffer, _) in writes { connection.write(buffer) }
        // Handed to the connection, which sends them reliably: writability, not these promises,
        // is what holds a writer back.
        for (_, promise) in writes { promise?.succeed() }
        socket.transmit(self)
        updateWritability()
    }

    func read0() {
        guard case .open = state else { return }
        readRequested = true
        deliverInbound()
    }

    func close0(error: any Error, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode != .input else {
            promise?.fail(ChannelError.operationUnsupported)
            return
        }
        if case .closed = state {
            promise?.fail(ChannelError.alreadyClosed)
            return
        }
        finish(error: nil)
        promise?.succeed()
    }

    func triggerUserOutboundEvent0(_ event: Any, promise: EventLoopPromise<Void>?) {
        promise?.fail(ChannelError.operationUnsupported)
    }

    func channelRead0(_ data: NIOAny) {}
    func errorCaught0(error: any Error) {}

    // MARK: From the socket

    /// An accepted connection's handlers are in place: it is open.
    func becomeActive() {
        pipeline.fireChannelRegistered()
        guard case .open = state else { return }
        active.store(true, ordering: .relaxed)
        pipeline.fireChannelActive()
        if autoRead { pipeline.read() }
    }

    /// A packet for this connection.
    func received(_ packet: UTPPacket, now: UInt64) {
        handle(connection.received(packet, now: now))
    }

    /// The retransmission timer may be due.
    func tick(now: UInt64) {
        if let deadline = connection.deadline, deadline <= now { handle(connection.timerFired(now: now)) }
    }

    /// The packets to send now.
    func outgoing(now: UInt64) -> [UTPPacket] {
        let packets = connection.outgoing(now: now)
        updateWritability()
        return packets
    }

    /// Drops the connection with a RESET (the socket is going away).
    func abort() -> UTPPacket? {
        let reset = connection.abort()
        finish(error: nil)
        return reset
    }

    /// Whether the channel is closed (its connection may still be finishing).
    var isChannelClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    /// Whether the socket can forget this stream: the channel closed and the connection over.
    var isFinished: Bool {
        if case .closed = state { return connection.isClosed }
        return false
    }

    private func handle(_ events: [UTPEvent]) {
        for event in events {
            switch event {
            case .connected:
                guard case .connecting(let promise) = state else { continue }
                state = .open
                active.store(true, ordering: .relaxed)
                pipeline.fireChannelActive()
                promise?.succeed(self)
                if autoRead { pipeline.read() }
            case .deliver(let buffer):
                inbound.append(buffer)
                inboundBytes += buffer.readableBytes
                connection.readBacklog = inboundBytes
            case .endOfStream:
                endOfStream = true
            case .writable:
                updateWritability()
            case .closed(let error):
                finish(error: error)
            }
        }
        deliverInbound()
        updateWritability()
    }

    /// Hands held bytes to the pipeline while it asks for them.
    private func deliverInbound() {
        guard !delivering else { return }
        delivering = true
        defer { delivering = false }
        while readRequested, !inbound.isEmpty, case .open = state {
            readRequested = false
            let before = inboundBytes
            while let buffer = inbound.popFirst() {
                inboundBytes -= buffer.readableBytes
                pipeline.fireChannelRead(NIOAny(buffer))
            }
            connection.readBacklog = inboundBytes
            if before > connection.configuration.receiveWindow / 2 {
                // The window we advertised was small: say at once that it is open again.
                connection.announceWindow()
                windowReopened = true
            }
            pipeline.fireChannelReadComplete()
            if autoRead { pipeline.read() }
        }
        if endOfStream, inbound.isEmpty, case .open = state {
            // The peer finished sending: close our side too, as a TCP peer would.
            finish(error: nil)
        }
        // Acks for packets just read go out once the socket's burst of reads ends; only a
        // reopened window is worth a datagram of its own.
        if windowReopened {
            windowReopened = false
            socket.transmit(self)
        }
    }

    private func updateWritability() {
        guard case .open = state else { return }
        let unacknowledged = connection.unacknowledgedBytes
        if unacknowledged > maxQueued {
            finish(error: ConnectionGuardError.outboundOverflow(queued: unacknowledged, limit: maxQueued))
            return
        }
        let now = writable.load(ordering: .relaxed)
        if now, unacknowledged > highWater {
            writable.store(false, ordering: .relaxed)
            pipeline.fireChannelWritabilityChanged()
        } else if !now, unacknowledged < lowWater {
            writable.store(true, ordering: .relaxed)
            pipeline.fireChannelWritabilityChanged()
        }
    }

    /// Ends the channel: our FIN goes after what is queued (or the connection is already over),
    /// the pipeline hears the error, if any, and that the channel is inactive.
    private func finish(error: (any Error)?) {
        let previous = state
        if case .closed = previous { return }
        state = .closed
        let wasActive = active.exchange(false, ordering: .relaxed)
        for (_, promise) in pendingWrites { promise?.fail(ChannelError.ioOnClosedChannel) }
        pendingWrites = []
        if case .connecting = previous {
            _ = connection.abort()  // never connected: nothing to finish with the peer
        } else if !connection.isClosed {
            connection.close()
        }
        socket.transmit(self)
        closePromise.succeed()
        if case .connecting(let promise) = previous {
            promise?.fail(error ?? ChannelError.ioOnClosedChannel)
        } else {
            if let error { pipeline.fireErrorCaught(error) }
            if wasActive { pipeline.fireChannelInactive() }
        }
        pipeline.fireChannelUnregistered()
        eventLoop.execute { self.removeHandlers(pipeline: self.pipeline) }
    }
}

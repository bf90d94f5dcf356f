import Logging
import NIOCore

/// The limits every connection of a PeerStack server or client lives under (each protocol's
/// `Configuration` holds one). Defaults suit a peer-to-peer protocol over the Internet.
public struct ConnectionLimits: Sendable, Hashable {
    /// A connection that has not completed its protocol's handshake (see
    /// ``ConnectionGuard/handshakeCompleted(_:)``) within this time is closed. nil: no deadline.
    public var handshakeTimeout: TimeAmount?
    /// A connection from which no byte arrived for this long is closed. nil: none.
    public var idleTimeout: TimeAmount?
    /// Outbound bytes queued past which the connection is "not writable": the guard stops
    /// reading from the peer (so a peer that never reads cannot make us queue replies) until the
    /// queue drains below `writeBufferLowWater`.
    public var writeBufferHighWater: Int
    public var writeBufferLowWater: Int
    /// Outbound bytes queued past which the peer is dropped: the hard cap on what a peer that
    /// never reads costs.
    public var maxQueuedBytes: Int
    /// Whether reading stops while the connection is not writable. Right for request-reply
    /// protocols (a peer that sends requests but never reads the replies is slowed, not served);
    /// wrong for a multiplexed connection with its own flow control (yamux), where both sides
    /// sending at once would each stop reading the other and stall.
    public var pauseReadingWhenUnwritable = true

    public init(
        handshakeTimeout: TimeAmount? = .seconds(15), idleTimeout: TimeAmount? = .seconds(300),
        writeBufferHighWater: Int = 1 << 20, writeBufferLowWater: Int = 256 << 10,
        maxQueuedBytes: Int = 8 << 20
    ) {
        self.handshakeTimeout = handshakeTimeout
        self.idleTimeout = idleTimeout
        self.writeBufferHighWater = writeBufferHighWater
        self.writeBufferLowWater = writeBufferLowWater
        self.maxQueuedBytes = maxQueuedBytes
    }
}

/// Why the guard closed a connection (passed down the pipeline as an error first).
public enum ConnectionGuardError: Error, Hashable, Sendable, CustomStringConvertible {
    case handshakeTimedOut(TimeAmount)
    case idle(TimeAmount)
    case outboundOverflow(queued: Int, limit: Int)

    public var description: String {
        switch self {
        case .handshakeTimedOut(let time): return "no handshake within \(time.nanoseconds / 1_000_000_000) s"
        case .idle(let time): return "nothing received for \(time.nanoseconds / 1_000_000_000) s"
        case .outboundOverflow(let queued, let limit):
            return "peer is not reading: \(queued) bytes queued, over the limit of \(limit)"
        }
    }
}

/// The first handler of a connection's pipeline (next to the socket): enforces
/// ``ConnectionLimits`` — the handshake deadline, the idle timeout, and outbound backpressure.
/// While the connection is not writable, or while the application asked
/// (``setReadingPaused(_:_:)``, e.g. because its disk is behind), it swallows `read` so NIO stops
/// reading the socket and TCP slows the peer; past the hard cap it drops the peer.
public final class ConnectionGuard: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = IOData
    public typealias OutboundOut = IOData

    /// Outbound user events the guard acts on (send them with the static helpers).
    public enum Event: Sendable {
        case handshakeCompleted
        case pauseReading
        case resumeReading
    }

    private let limits: ConnectionLimits
    private let limiter: ConnectionLimiter?
    private var handshakeTimer: Scheduled<Void>?
    private var idleTimer: Scheduled<Void>?
    private var lastRead = NIODeadline.uptimeNanoseconds(0)
    private var queued = 0
    private var applicationPaused = false
    private var writable = true
    private var readPending = false
    private var closed = false

    /// `limiter`, when the connection was admitted by one, is told when the handshake completes.
    public init(limits: ConnectionLimits, limiter: ConnectionLimiter? = nil) {
        self.limits = limits
        self.limiter = limiter
    }

    /// Tells the guard of `channel` that its handshake is complete (ends the deadline).
    public static func handshakeCompleted(_ channel: any Channel) {
        channel.triggerUserOutboundEvent(Event.handshakeCompleted, promise: nil)
    }

    /// Pauses or resumes reading from `channel` for the application's own reasons.
    public static func setReadingPaused(_ channel: any Channel, _ paused: Bool) {
        channel.triggerUserOutboundEvent(paused ? Event.pauseReading : Event.resumeReading, promise: nil)
    }

    /// Bytes written to the channel and not yet taken by the kernel.
    public var queuedBytes: Int { queued }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    private var started = false

    private func start(context: ChannelHandlerContext) {
        guard !started else { return }
        started = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        if let timeout = limits.handshakeTimeout {
            handshakeTimer = context.eventLoop.scheduleTask(in: timeout) {
                bound.value.0.fail(bound.value.1, .handshakeTimedOut(timeout))
            }
        }
        lastRead = context.eventLoop.now
        scheduleIdleCheck(context: context)
    }

    private func scheduleIdleCheck(context: ChannelHandlerContext) {
        guard let timeout = limits.idleTimeout else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(deadline: lastRead + timeout) {
            let (guardHandler, context) = bound.value
            if context.eventLoop.now >= guardHandler.lastRead + timeout {
                guardHandler.fail(context, .idle(timeout))
            } else {
                guardHandler.scheduleIdleCheck(context: context)
            }
        }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        cancelTimers()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        cancelTimers()
    }

    private func cancelTimers() {
        closed = true
        handshakeTimer?.cancel()
        handshakeTimer = nil
        idleTimer?.cancel()
        idleTimer = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastRead = context.eventLoop.now
        context.fireChannelRead(data)
    }

    public func channelWritabilityChanged(context: ChannelHandlerContext) {
        writable = context.channel.isWritable
        resumeIfAllowed(context: context)
        context.fireChannelWritabilityChanged()
    }

    public func read(context: ChannelHandlerContext) {
        if (!writable && limits.pauseReadingWhenUnwritable) || applicationPaused {
            readPending = true
        } else {
            context.read()
        }
    }

    private func resumeIfAllowed(context: ChannelHandlerContext) {
        if (writable || !limits.pauseReadingWhenUnwritable) && !applicationPaused && readPending {
            readPending = false
            context.read()
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let bytes = unwrapOutboundIn(data).readableBytes
        queued += bytes
        guard queued <= limits.maxQueuedBytes else {
            promise?.fail(ConnectionGuardError.outboundOverflow(queued: queued, limit: limits.maxQueuedBytes))
            queued -= bytes
            fail(context, .outboundOverflow(queued: queued + bytes, limit: limits.maxQueuedBytes))
            return
        }
        let done = promise ?? context.eventLoop.makePromise()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        done.futureResult.whenComplete { _ in bound.value.queued -= bytes }
        context.write(data, promise: done)
    }

    public func triggerUserOutboundEvent(
        context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?
    ) {
        guard let event = event as? Event else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch event {
        case .handshakeCompleted:
            handshakeTimer?.cancel()
            handshakeTimer = nil
            limiter?.handshakeCompleted(context.channel)
        case .pauseReading:
            applicationPaused = true
        case .resumeReading:
            applicationPaused = false
            resumeIfAllowed(context: context)
        }
        promise?.succeed()
    }

    private static let logger = Logger(label: "peerstack.peernet")

    private func fail(_ context: ChannelHandlerContext, _ error: ConnectionGuardError) {
        guard !closed else { return }
        closed = true
        Self.logger.debug("closing \(context.remoteAddress?.description ?? "a connection"): \(error)")
        context.fireErrorCaught(error)
        context.close(promise: nil)
    }
}

extension ConnectionLimits {
    /// The channel's write-buffer watermarks (NIO's writability follows them).
    public var waterMark: ChannelOptions.Types.WriteBufferWaterMark {
        .init(low: writeBufferLowWater, high: max(writeBufferLowWater + 1, writeBufferHighWater))
    }
}

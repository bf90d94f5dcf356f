import NIOCore

/// Closes an HTTP server connection without losing its last response (RFC 9112 §9.6): a server
/// that refuses a request it has not read whole (an oversized head, a body over the limit) and
/// closes at once leaves the client's unread bytes in its receive buffer, so the kernel answers
/// with a reset, and a reset that arrives before the client has read the response discards it —
/// the client sees "connection reset" instead of the 431. This handler turns an application's
/// close into: finish the queued writes, shut down the sending side, then read and drop what
/// the client still sends until it closes, for at most ``linger`` or ``maxDrainedBytes``.
///
/// Put it in the pipeline before NIO's HTTP handlers (closer to the socket), after the
/// ``ConnectionGuard``: the guard's own closes (idle, never-reading peers) stay immediate.
public final class HTTPLingeringClose: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Longest a closing connection stays open to drain the client's bytes.
    public let linger: TimeAmount
    /// Most bytes drained before the connection is closed anyway.
    public let maxDrainedBytes: Int
    private var lingering = false
    private var drained = 0
    private var timer: Scheduled<Void>?

    public init(linger: TimeAmount = .seconds(2), maxDrainedBytes: Int = 1 << 20) {
        self.linger = linger
        self.maxDrainedBytes = maxDrainedBytes
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard lingering else { return context.fireChannelRead(data) }
        drained += unwrapInboundIn(data).readableBytes
        if drained > maxDrainedBytes { context.close(promise: nil) }
    }

    public func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    public func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        guard mode == .all, context.channel.isActive else {
            return context.close(mode: mode, promise: promise)
        }
        // A second close (another handler reacting to the same error) waits for the first.
        context.channel.closeFuture.cascade(to: promise)
        guard !lingering else { return }
        lingering = true
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: linger) { bound.value.close(promise: nil) }
        // The sending side shuts once the queued response is written; a client that never
        // reads it is closed by the timer.
        let halfClosed = context.eventLoop.makePromise(of: Void.self)
        halfClosed.futureResult.whenFailure { _ in bound.value.close(promise: nil) }
        context.close(mode: .output, promise: halfClosed)
        context.read()
    }
}

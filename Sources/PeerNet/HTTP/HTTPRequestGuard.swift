import NIOCore
import NIOHTTP1

/// Limits on each HTTP request a PeerStack server reads (the tracker, the JSON-RPC server).
public struct HTTPRequestLimits: Sendable, Hashable {
    /// From the connection's start, or the end of the last response, to the end of the next
    /// request: a client that trickles its request (slowloris) is closed at this deadline. The
    /// head itself is bounded by NIO's parser (80 KiB; a larger one gets 431 and a close).
    public var requestTimeout: TimeAmount
    /// Most body bytes one request may carry.
    public var maxBodyBytes: Int

    public init(requestTimeout: TimeAmount = .seconds(10), maxBodyBytes: Int = 1 << 20) {
        self.requestTimeout = requestTimeout
        self.maxBodyBytes = maxBodyBytes
    }
}

/// Why the guard closed an HTTP connection.
public enum HTTPRequestGuardError: Error, Hashable, Sendable, CustomStringConvertible {
    case requestTimedOut(TimeAmount)
    case bodyTooLarge(limit: Int)

    public var description: String {
        switch self {
        case .requestTimedOut(let time):
            return "request not complete within \(time.nanoseconds / 1_000_000_000) s"
        case .bodyTooLarge(let limit): return "request body over \(limit) bytes"
        }
    }
}

/// Enforces ``HTTPRequestLimits`` on a server pipeline: put it after NIO's HTTP server
/// handlers and before the application's. Between requests on a kept-alive connection the
/// same deadline applies, so an idle connection is closed too.
public final class HTTPRequestGuard: ChannelDuplexHandler {
    public typealias InboundIn = HTTPServerRequestPart
    public typealias InboundOut = HTTPServerRequestPart
    public typealias OutboundIn = HTTPServerResponsePart
    public typealias OutboundOut = HTTPServerResponsePart

    private let limits: HTTPRequestLimits
    private var deadline: Scheduled<Void>?
    private var bodyBytes = 0
    private var discarding = false

    public init(limits: HTTPRequestLimits = HTTPRequestLimits()) {
        self.limits = limits
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    private func arm(_ context: ChannelHandlerContext) {
        disarm()
        let timeout = limits.requestTimeout
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            bound.value.fireErrorCaught(HTTPRequestGuardError.requestTimedOut(timeout))
            bound.value.close(promise: nil)
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !discarding else { return }
        switch unwrapInboundIn(data) {
        case .head:
            bodyBytes = 0
        case .body(let buffer):
            bodyBytes += buffer.readableBytes
            guard bodyBytes <= limits.maxBodyBytes else {
                discarding = true
                disarm()
                context.fireErrorCaught(HTTPRequestGuardError.bodyTooLarge(limit: limits.maxBodyBytes))
                context.close(promise: nil)
                return
            }
        case .end:
            disarm()  // the request is whole; the application answers it
        }
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { arm(context) }
        context.write(data, promise: promise)
    }
}

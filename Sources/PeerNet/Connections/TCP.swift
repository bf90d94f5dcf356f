import NIOCore
import NIOPosix

/// A TCP listener with the limits every PeerStack server needs: admission through a
/// ``ConnectionLimiter`` and a ``ConnectionGuard`` first in every connection's pipeline.
public final class TCPListener: Sendable {
    /// How a listener admits and bounds its connections.
    public struct Configuration: Sendable, Hashable {
        public var limits = ConnectionLimits()
        public var admission = ConnectionLimiter.Configuration()
        public var backlog: Int32 = 256
        public var receiveAllocator: AdaptiveRecvByteBufferAllocator? = nil
        /// Reads per readable event before other connections get their turn (NIO's default is
        /// 16). A request-reply server sets 1 with a small allocator, so one client that floods
        /// requests gets one small read's worth of work at a time and cannot starve the others.
        public var maxMessagesPerRead: UInt? = nil

        public init(
            limits: ConnectionLimits = ConnectionLimits(),
            admission: ConnectionLimiter.Configuration = ConnectionLimiter.Configuration()
        ) {
            self.limits = limits
            self.admission = admission
        }

        public static func == (lhs: Self, rhs: Self) -> Bool {
            lhs.limits == rhs.limits && lhs.admission == rhs.admission && lhs.backlog == rhs.backlog
                && lhs.maxMessagesPerRead == rhs.maxMessagesPerRead
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(limits)
            hasher.combine(admission)
        }
    }

    public let channel: any Channel
    public let limiter: ConnectionLimiter
    /// The bound address (with the real port when 0 was asked).
    public var localAddress: Endpoint? { channel.localAddress.flatMap(Endpoint.init) }

    private init(channel: any Channel, limiter: ConnectionLimiter) {
        self.channel = channel
        self.limiter = limiter
    }

    /// Listens on `endpoint` on one loop of `group`; each admitted connection gets a guard and
    /// then `initialize` (on its event loop) to add the protocol's handlers.
    public static func bind(
        on endpoint: Endpoint, group: any EventLoopGroup, configuration: Configuration = Configuration(),
        limiter: ConnectionLimiter? = nil,
        initialize: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> TCPListener {
        let limiter = limiter ?? ConnectionLimiter(configuration.admission)
        let limits = configuration.limits
        var bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: configuration.backlog)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.writeBufferWaterMark, value: limits.waterMark)
        if let allocator = configuration.receiveAllocator {
            bootstrap = bootstrap.childChannelOption(ChannelOptions.recvAllocator, value: allocator)
        }
        if let reads = configuration.maxMessagesPerRead {
            bootstrap = bootstrap.childChannelOption(ChannelOptions.maxMessagesPerRead, value: reads)
        }
        let channel = try await bootstrap.childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                guard limiter.admit(channel) else { throw ConnectionRefused() }
                try channel.pipeline.syncOperations.addHandler(
                    ConnectionGuard(limits: limits, limiter: limiter), position: .first)
                try initialize(channel)
            }
        }
        .bind(to: endpoint.socketAddress).get()
        return TCPListener(channel: channel, limiter: limiter)
    }

    public func close() async {
        try? await channel.close().get()
    }
}

/// Thrown from a child initializer to drop a connection the limiter refused.
struct ConnectionRefused: Error {}

/// Outgoing TCP connections under the same ``ConnectionLimits``.
public enum TCPDialer {
    /// Connects to `endpoint` from `loop` within `timeout`; the channel gets a guard, then
    /// `initialize`.
    public static func connect(
        to endpoint: Endpoint, on loop: any EventLoop, limits: ConnectionLimits = ConnectionLimits(),
        timeout: TimeAmount = .seconds(5), receiveAllocator: AdaptiveRecvByteBufferAllocator? = nil,
        initialize: @escaping @Sendable (any Channel) throws -> Void
    ) -> EventLoopFuture<any Channel> {
        var bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.writeBufferWaterMark, value: limits.waterMark)
        if let receiveAllocator {
            bootstrap = bootstrap.channelOption(ChannelOptions.recvAllocator, value: receiveAllocator)
        }
        return bootstrap.channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(
                    ConnectionGuard(limits: limits), position: .first)
                try initialize(channel)
            }
        }
        .connect(to: endpoint.socketAddress)
    }
}

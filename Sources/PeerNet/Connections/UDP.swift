import NIOCore
import NIOPosix

/// A UDP socket on one event loop, as the tracker (BEP 15) and the DHT (BEP 5) use it: every
/// datagram read whole (a receive buffer the size of the largest datagram the protocol allows),
/// optionally several per system call, and kernel buffers sized for bursts.
public enum UDPEndpoint {
    public struct Configuration: Sendable, Hashable {
        /// The largest datagram read whole; a longer one is cut (and the codec refuses it).
        public var maxDatagram: Int
        /// Datagrams per `recvmmsg` (1: plain `recvmsg`).
        public var datagramsPerRead: Int
        /// `SO_RCVBUF` and `SO_SNDBUF`, so bursts are not dropped by the kernel.
        public var receiveBuffer: Int
        public var sendBuffer: Int?

        public init(
            maxDatagram: Int = 65_536, datagramsPerRead: Int = 1, receiveBuffer: Int = 1 << 20,
            sendBuffer: Int? = nil
        ) {
            self.maxDatagram = maxDatagram
            self.datagramsPerRead = datagramsPerRead
            self.receiveBuffer = receiveBuffer
            self.sendBuffer = sendBuffer
        }
    }

    /// Binds `endpoint` on `loop`; `initialize` adds the protocol's handler.
    public static func bind(
        on endpoint: Endpoint, loop: any EventLoop, configuration: Configuration = Configuration(),
        initialize: @escaping @Sendable (any Channel) throws -> Void
    ) async throws -> any Channel {
        var bootstrap = DatagramBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .channelOption(ChannelOptions.socketOption(.so_rcvbuf), value: configuration.receiveBuffer)
        if let send = configuration.sendBuffer {
            bootstrap = bootstrap.channelOption(ChannelOptions.socketOption(.so_sndbuf), value: send)
        }
        if configuration.datagramsPerRead > 1 {
            bootstrap = bootstrap.channelOption(
                ChannelOptions.datagramVectorReadMessageCount, value: configuration.datagramsPerRead
            )
            .channelOption(ChannelOptions.maxMessagesPerRead, value: 1)
        }
        return try await bootstrap.channelOption(
            ChannelOptions.recvAllocator,
            value: FixedSizeRecvByteBufferAllocator(
                capacity: configuration.maxDatagram * configuration.datagramsPerRead)
        )
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try initialize(channel) }
        }
        .bind(to: endpoint.socketAddress).get()
    }
}

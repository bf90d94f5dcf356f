import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import PeerNet
import Synchronization

/// A tracker URL split into its parts.
struct TrackerURL: Hashable, Sendable {
    enum Scheme: String, Sendable {
        case http
        case https
        case udp
    }
    var scheme: Scheme
    var host: String
    var port: Int
    var path: String
    var query: String?

    init(_ text: String) throws(TrackerError) {
        let lower = text.lowercased()
        let scheme: Scheme
        if lower.hasPrefix("http://") {
            scheme = .http
        } else if lower.hasPrefix("https://") {
            scheme = .https
        } else if lower.hasPrefix("udp://") {
            scheme = .udp
        } else {
            throw .unsupportedURL(text)
        }
        self.scheme = scheme
        var rest = Substring(text.dropFirst(scheme.rawValue.count + 3))
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = rest[..<authorityEnd]
        rest = rest[authorityEnd...]
        var host = authority
        var port = scheme == .https ? 443 : 80
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let parsed = Int(after.dropFirst()) else { throw .unsupportedURL(text) }
                port = parsed
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let parsed = Int(authority[authority.index(after: colon)...]) else {
                throw .unsupportedURL(text)
            }
            port = parsed
        }
        guard !host.isEmpty, port > 0, port < 65_536 else { throw .unsupportedURL(text) }
        self.host = String(host)
        self.port = port
        if let question = rest.firstIndex(of: "?") {
            path = String(rest[..<question])
            query = String(rest[rest.index(after: question)...])
        } else {
            path = String(rest)
            query = nil
        }
        if path.isEmpty { path = "/" }
    }
}

/// Announces to and scrapes HTTP and UDP trackers from an event loop.
public final class TrackerClient: Sendable {
    public let loop: EventLoop
    /// BEP 15 connection IDs, reusable for a minute.
    private let connections = Mutex<[String: (id: UInt64, until: NIODeadline)]>([:])
    /// TLS for https trackers: the system's trust store plus any extra roots.
    private let tls: NIOSSLContext?

    /// `extraTrustRoots`: certificates to trust besides the system's, for https trackers with a
    /// private certificate authority.
    public init(loop: EventLoop, extraTrustRoots: [NIOSSLCertificate] = []) {
        self.loop = loop
        var configuration = TLSConfiguration.makeClientConfiguration()
        if !extraTrustRoots.isEmpty { configuration.additionalTrustRoots = [.certificates(extraTrustRoots)] }
        tls = try? NIOSSLContext(configuration: configuration)
    }

    /// One announce. `timeout` bounds the whole exchange (UDP retransmits within it, BEP 15).
    public func announce(_ url: String, _ request: AnnounceRequest, timeout: TimeAmount)
        -> EventLoopFuture<AnnounceResponse>
    {
        let parsed: TrackerURL
        do {
            parsed = try TrackerURL(url)
        } catch {
            return loop.makeFailedFuture(error)
        }
        switch parsed.scheme {
        case .http, .https:
            let target = parsed.path + "?" + HTTPTrackerCodec.query(for: request, existingQuery: parsed.query)
            return get(parsed, path: target, timeout: timeout).flatMapThrowing {
                try HTTPTrackerCodec.parse($0)
            }
        case .udp:
            let urlData =
                parsed.path == "/" && parsed.query == nil
                ? nil : parsed.path + (parsed.query.map { "?" + $0 } ?? "")
            return udpExchange(parsed, timeout: timeout) { connection, transaction in
                UDPTrackerCodec.announceRequest(
                    request, connection: connection, transaction: transaction, urlData: urlData)
            } parse: { reply, transaction, ipv6 in
                try UDPTrackerCodec.parseAnnounce(reply, transaction: transaction, ipv6: ipv6)
            }
        }
    }

    /// Counts for `infoHashes` from the tracker behind announce URL `url` (BEP 48 for HTTP,
    /// BEP 15 for UDP).
    public func scrape(_ url: String, _ infoHashes: [InfoHash], timeout: TimeAmount)
        -> EventLoopFuture<[InfoHash: ScrapeStats]>
    {
        let parsed: TrackerURL
        do {
            parsed = try TrackerURL(url)
        } catch {
            return loop.makeFailedFuture(error)
        }
        switch parsed.scheme {
        case .http, .https:
            guard let scrapeURL = HTTPTrackerCodec.scrapeURL(forAnnounce: url),
                let target = try? TrackerURL(scrapeURL)
            else {
                return loop.makeFailedFuture(TrackerError.unsupportedURL("\(url) (no scrape URL)"))
            }
            let path =
                target.path + "?" + HTTPTrackerCodec.scrapeQuery(infoHashes, existingQuery: target.query)
            return get(target, path: path, timeout: timeout).flatMapThrowing {
                try HTTPTrackerCodec.parseScrape($0)
            }
        case .udp:
            return udpExchange(parsed, timeout: timeout) { connection, transaction in
                UDPTrackerCodec.scrapeRequest(infoHashes, connection: connection, transaction: transaction)
            } parse: { reply, transaction, _ in
                try UDPTrackerCodec.parseScrape(reply, transaction: transaction, infoHashes: infoHashes)
            }
        }
    }

    // MARK: HTTP

    /// One HTTP GET; the body, at most 4 MiB.
    private func get(_ url: TrackerURL, path target: String, timeout: TimeAmount) -> EventLoopFuture<[UInt8]>
    {
        let promise = loop.makePromise(of: [UInt8].self)
        let hostHeader = url.host.contains(":") ? "[\(url.host)]:\(url.port)" : "\(url.host):\(url.port)"
        var tlsHandler: NIOSSLClientHandler?
        if url.scheme == .https {
            guard let tls else {
                return loop.makeFailedFuture(TrackerError.transport("TLS is not available"))
            }
            // SNI only for names, never for IP literals (RFC 6066).
            let isLiteral = IPAddress(url.host) != nil
            do {
                tlsHandler = try NIOSSLClientHandler(context: tls, serverHostname: isLiteral ? nil : url.host)
            } catch {
                return loop.makeFailedFuture(TrackerError.transport("TLS: \(error)"))
            }
        }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(timeout)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tlsHandler { try channel.pipeline.syncOperations.addHandler(tlsHandler) }
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(
                        HTTPGetHandler(target: target, host: hostHeader, promise: promise))
                }
            }
        bootstrap.connect(host: url.host, port: url.port).whenComplete { result in
            switch result {
            case .success(let channel):
                let timer = channel.eventLoop.scheduleTask(in: timeout) {
                    promise.fail(TrackerError.timedOut)
                    channel.close(promise: nil)
                }
                promise.futureResult.whenComplete { _ in
                    timer.cancel()
                    channel.close(promise: nil)
                }
            case .failure(let error):
                promise.fail(TrackerError.transport("cannot reach \(url.host):\(url.port): \(error)"))
            }
        }
        return promise.futureResult
    }

    // MARK: UDP

    /// Connect (or reuse a connection ID less than a minute old), then one request and its
    /// reply, retransmitted within `timeout` (BEP 15).
    private func udpExchange<Reply: Sendable>(
        _ url: TrackerURL, timeout: TimeAmount,
        build: @escaping @Sendable (_ connection: UInt64, _ transaction: UInt32) -> [UInt8],
        parse: @escaping @Sendable (_ reply: [UInt8], _ transaction: UInt32, _ ipv6: Bool) throws -> Reply
    ) -> EventLoopFuture<Reply> {
        let key = "\(url.host):\(url.port)"
        let exchange = UDPExchange(loop: loop, deadline: .now() + timeout)
        let bootstrap = DatagramBootstrap(group: loop).channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(exchange) }
        }
        let cached = connections.withLock { cache -> UInt64? in
            guard let entry = cache[key], entry.until > .now() else { return nil }
            return entry.id
        }
        let isIPv6 = url.host.contains(":")
        return bootstrap.bind(host: isIPv6 ? "::" : "0.0.0.0", port: 0).flatMap { channel in
            exchange.resolve(host: url.host, port: url.port).flatMap { remote -> EventLoopFuture<Reply> in
                exchange.remote = remote
                let connect: EventLoopFuture<UInt64>
                if let cached {
                    connect = channel.eventLoop.makeSucceededFuture(cached)
                } else {
                    let transaction = UInt32.random(in: 0...UInt32.max)
                    connect = exchange.send(
                        UDPTrackerCodec.connectRequest(transaction: transaction), on: channel
                    )
                    .flatMapThrowing { try UDPTrackerCodec.parseConnect($0, transaction: transaction) }
                    .map { id in
                        self.connections.withLock { $0[key] = (id, .now() + .seconds(60)) }
                        return id
                    }
                }
                return connect.flatMap { id in
                    let transaction = UInt32.random(in: 0...UInt32.max)
                    return exchange.send(build(id, transaction), on: channel).flatMapThrowing { reply in
                        try parse(reply, transaction, remote.protocol == .inet6)
                    }
                }
            }.always { _ in channel.close(promise: nil) }
        }.flatMapErrorThrowing { error in
            // A refusal after a reused connection ID may mean the tracker no longer accepts it
            // (it restarted, or binds IDs to the source port): connect afresh next time.
            if cached != nil { self.connections.withLock { $0[key] = nil } }
            if error is TrackerError { throw error }
            throw TrackerError.transport("\(key): \(error)")
        }
    }
}

/// Sends one HTTP GET and collects the body (at most 4 MiB).
private final class HTTPGetHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundOut = HTTPClientRequestPart

    let target: String
    let host: String
    let promise: EventLoopPromise<[UInt8]>
    var body: [UInt8] = []
    var status: HTTPResponseStatus = .ok

    init(target: String, host: String, promise: EventLoopPromise<[UInt8]>) {
        self.target = target
        self.host = host
        self.promise = promise
    }

    func channelActive(context: ChannelHandlerContext) {
        var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: target)
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "User-Agent", value: "PeerStack/0.1.0")
        head.headers.add(name: "Connection", value: "close")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            status = head.status
        case .body(var buffer):
            guard body.count + buffer.readableBytes <= 4 << 20 else {
                promise.fail(TrackerError.badResponse("body over 4 MiB"))
                context.close(promise: nil)
                return
            }
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            if status == .ok {
                promise.succeed(body)
            } else {
                promise.fail(TrackerError.badResponse("HTTP \(status.code)"))
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(TrackerError.badResponse("connection closed before the response ended"))
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        promise.fail(TrackerError.transport("\(error)"))
        context.close(promise: nil)
    }
}

/// One request/response at a time over a UDP socket, retransmitted with doubling timeouts
/// (BEP 15) until the overall deadline.
private final class UDPExchange: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = AddressedEnvelope<ByteBuffer>
    typealias OutboundOut = AddressedEnvelope<ByteBuffer>

    let loop: EventLoop
    let deadline: NIODeadline
    var remote: SocketAddress?
    private var pending: EventLoopPromise<[UInt8]>?
    private var retransmit: Scheduled<Void>?

    init(loop: EventLoop, deadline: NIODeadline) {
        self.loop = loop
        self.deadline = deadline
    }

    /// Looks the tracker's name up off the event loop (getaddrinfo blocks).
    func resolve(host: String, port: Int) -> EventLoopFuture<SocketAddress> {
        let promise = loop.makePromise(of: SocketAddress.self)
        promise.completeWithTask {
            let name = HostPort(host: host, port: UInt16(clamping: port))
            guard let endpoint = try await name.resolve().first else {
                throw TrackerError.transport("no address for \(name)")
            }
            return endpoint.socketAddress
        }
        return promise.futureResult
    }

    func send(_ packet: [UInt8], on channel: Channel) -> EventLoopFuture<[UInt8]> {
        let promise = loop.makePromise(of: [UInt8].self)
        pending = promise
        transmit(packet, on: channel, wait: .seconds(2))
        return promise.futureResult
    }

    private func transmit(_ packet: [UInt8], on channel: Channel, wait: TimeAmount) {
        guard let remote else { return }
        guard NIODeadline.now() < deadline else {
            pending?.fail(TrackerError.timedOut)
            pending = nil
            return
        }
        channel.writeAndFlush(
            AddressedEnvelope(remoteAddress: remote, data: ByteBuffer(bytes: packet)), promise: nil)
        let next = min(NIODeadline.now() + wait, deadline)
        retransmit = loop.scheduleTask(deadline: next) { [weak self] in
            self?.transmit(packet, on: channel, wait: wait * 2)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var envelope = unwrapInboundIn(data)
        guard envelope.remoteAddress == remote, let promise = pending else { return }
        // Bounded by the datagram size; peers beyond are ignored by the parser's strides.
        let bytes = envelope.data.readBytes(length: min(envelope.data.readableBytes, 65_536)) ?? []
        retransmit?.cancel()
        pending = nil
        promise.succeed(bytes)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        retransmit?.cancel()
        pending?.fail(TrackerError.transport("\(error)"))
        pending = nil
    }
}

import DequeModule
import Multiformats
import NIOCore
import NIOSSL
import NIOTLS
import PeerCrypto
import PeerNet

/// One yamux stream's buffers on its connection's event loop: bytes received and not yet read
/// (at most the stream's receive window, since the window only grows as the application reads),
/// writes waiting for send window, and who waits on what.
final class StreamBuffers {
    var inbound: Deque<[UInt8]> = []
    var inboundBytes = 0
    var remoteClosed = false
    var localClosed = false
    /// A read has returned the end of the stream.
    var endDelivered = false
    /// The application dropped the stream: what still arrives is discarded.
    var released = false
    var failure: Libp2pError?
    var reader: (max: Int, promise: EventLoopPromise<[UInt8]?>)?
    var writes: Deque<(bytes: [UInt8], offset: Int, promise: EventLoopPromise<Void>)> = []
}

/// The NIO driver of one libp2p connection: runs ``ConnectionUpgrade`` on the raw bytes, then
/// the Noise transport and a ``YamuxSession``; streams are ``StreamBuffers`` that
/// ``Libp2pStream`` reads and writes through this loop. All state lives on the channel's loop.
final class ConnectionDriver: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase { case upgrading, running, closed }

    let host: HostCore
    let role: ConnectionUpgrade.Role
    var phase = Phase.upgrading
    // Kept apart (not in the phase enum) so each is mutated in place, never copied.
    var upgrade: ConnectionUpgrade
    var noise: NoiseTransport?
    var yamux = YamuxSession(role: .client)
    var yamuxReader = YamuxFrameReader()
    var context: ChannelHandlerContext?
    var streams: [UInt32: StreamBuffers] = [:]
    /// Streams with writes waiting while the socket was not writable.
    var blocked: Set<UInt32> = []
    let established: EventLoopPromise<Libp2pConnection>
    var connection: Libp2pConnection?
    /// Inbound streams still choosing their protocol (bounded: each costs a task).
    var negotiating = 0

    init(host: HostCore, upgrade: ConnectionUpgrade, established: EventLoopPromise<Libp2pConnection>) {
        self.host = host
        self.role = upgrade.role
        self.upgrade = upgrade
        self.established = established
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    var started = false
    func start(_ context: ChannelHandlerContext) {
        guard !started, phase == .upgrading else { return }
        started = true
        perform(upgrade.start(), context: context)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        if phase == .running, noise != nil {
            // The fast path: ciphertext straight from NIO's buffer, plaintext into one array.
            var plaintext: [UInt8] = []
            plaintext.reserveCapacity(buffer.readableBytes)
            do {
                try noise!.open(buffer.readableBytesView, appendingTo: &plaintext)
            } catch {
                fail(.upgrade(.noise(.noise(error))), context: context)
                return
            }
            receivePlaintext(plaintext, context: context)
            return
        }
        receive(Array(buffer.readableBytesView), context: context)
    }

    func receive(_ bytes: [UInt8], context: ChannelHandlerContext) {
        switch phase {
        case .closed:
            return
        case .upgrading:
            do {
                perform(try upgrade.receive(bytes), context: context)
            } catch {
                fail(.upgrade(error), context: context)
            }
        case .running:
            var plaintext = bytes
            if noise != nil {
                do {
                    plaintext = try noise!.open(bytes)
                } catch {
                    fail(.upgrade(.noise(.noise(error))), context: context)
                    return
                }
            }
            receivePlaintext(plaintext, context: context)
        }
    }

    func receivePlaintext(_ plaintext: [UInt8], context: ChannelHandlerContext) {
        let (events, error) = yamux.receive(bytes: plaintext, reader: &yamuxReader)
        handle(events, context: context)
        if let error { fail(.yamux(error), context: context) }
    }

    func perform(_ actions: [ConnectionUpgrade.Action], context: ChannelHandlerContext) {
        for action in actions {
            switch action {
            case .send(let bytes):
                context.write(wrapOutboundOut(context.channel.allocator.buffer(bytes: bytes)), promise: nil)
            case .startTLS(let pending):
                context.flush()
                startTLS(pending: pending, context: context)
                return
            case .established(let upgraded):
                context.flush()
                establish(upgraded, context: context)
                return
            }
        }
        context.flush()
    }

    // MARK: TLS

    /// What the TLS handler's certificate check found, kept until the handshake completes.
    var tlsVerified: Result<PublicKey, LibP2PTLSError>?
    var tlsStarted = false

    /// Puts a TLS handler in front of this driver; bytes already read after the security
    /// protocol's name are the first TLS bytes.
    func startTLS(pending: [UInt8], context: ChannelHandlerContext) {
        guard let tls = host.tls else {
            fail(.upgrade(.tls(host.tlsFailure ?? "unavailable")), context: context)
            return
        }
        do {
            let loop = context.eventLoop
            let driver = NIOLoopBound(self, eventLoop: loop)
            let handler = try tls.handler(role) { result in
                loop.preconditionInEventLoop()
                driver.value.tlsVerified = result
            }
            try context.pipeline.syncOperations.addHandler(handler, position: .before(self))
            tlsStarted = true
            if !pending.isEmpty {
                let tlsContext = try context.pipeline.syncOperations.context(handler: handler)
                handler.channelRead(
                    context: tlsContext, data: NIOAny(context.channel.allocator.buffer(bytes: pending)))
                handler.channelReadComplete(context: tlsContext)
            }
        } catch {
            fail(.upgrade(.tls("\(error)")), context: context)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard phase == .upgrading, let event = event as? TLSUserEvent, case .handshakeCompleted = event else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        switch tlsVerified {
        case .success(let key):
            do {
                perform(try upgrade.tlsEstablished(remoteKey: key), context: context)
            } catch {
                fail(.upgrade(error), context: context)
            }
        case .failure(let error):
            fail(.upgrade(.tls("\(error)")), context: context)
        case nil:
            fail(.upgrade(.tls("the handshake completed without the peer's certificate")), context: context)
        }
    }

    func establish(_ upgraded: UpgradedConnection, context: ChannelHandlerContext) {
        let connection = Libp2pConnection(
            channel: context.channel, driver: self, remotePeer: upgraded.remotePeer,
            remoteKey: upgraded.remoteKey, security: upgraded.security, muxer: upgraded.muxer,
            role: role, host: host)
        if let refusal = host.admit(connection) {
            fail(.refused(refusal), context: context)
            return
        }
        self.connection = connection
        yamux = YamuxSession(role: role == .dialer ? .client : .server, limits: host.configuration.yamux)
        noise = upgraded.noise
        phase = .running
        ConnectionGuard.handshakeCompleted(context.channel)
        established.succeed(connection)
        host.connected(connection)
        // Bytes after the muxer's name are plaintext already: yamux's, not the cipher's.
        if !upgraded.muxerBytes.isEmpty { receivePlaintext(upgraded.muxerBytes, context: context) }
    }

    // MARK: Writing

    /// Sends yamux bytes (encrypted when Noise is the security).
    func send(_ plaintext: [UInt8], context: ChannelHandlerContext, promise: EventLoopPromise<Void>? = nil) {
        guard phase == .running, !plaintext.isEmpty else {
            promise?.fail(Libp2pError.connectionClosed)
            return
        }
        var buffer: ByteBuffer
        if noise != nil {
            buffer = context.channel.allocator.buffer(capacity: NoiseTransport.sealedSize(plaintext.count))
            do {
                try noise!.seal(plaintext[...], into: &buffer)
            } catch {
                promise?.fail(Libp2pError.upgrade(.noise(.noise(error))))
                fail(.upgrade(.noise(.noise(error))), context: context)
                return
            }
        } else {
            buffer = context.channel.allocator.buffer(bytes: plaintext)
        }
        context.writeAndFlush(wrapOutboundOut(buffer), promise: promise)
    }

    /// Runs a yamux operation on the session in place.
    func withSession<T>(_ body: (inout YamuxSession) throws(YamuxError) -> T) throws(Libp2pError) -> T {
        guard phase == .running else { throw .connectionClosed }
        do {
            return try body(&yamux)
        } catch {
            throw .yamux(error)
        }
    }

    /// Writes what the send window allows of the stream's queued writes.
    func pump(_ id: UInt32) {
        guard let context, let buffers = streams[id] else { return }
        guard context.channel.isWritable else {
            blocked.insert(id)
            return
        }
        while var write = buffers.writes.first {
            // 128 KiB a send: its buffers stay under the allocator's mmap threshold (an mmap'd
            // buffer is faulted in page by page for every send).
            let remaining = write.bytes[write.offset...].prefix(128 << 10)
            guard
                let (frames, count) = try? withSession({ session in
                    session.write(remaining, on: id)
                }), count > 0
            else { return }
            write.offset += count
            if write.offset == write.bytes.count {
                buffers.writes.removeFirst()
                send(frames, context: context, promise: write.promise)
            } else {
                buffers.writes[0] = write
                send(frames, context: context)
            }
            guard context.channel.isWritable else {
                blocked.insert(id)
                return
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            let waiting = blocked
            blocked = []
            for id in waiting { pump(id) }
        }
        context.fireChannelWritabilityChanged()
    }

    // MARK: Session events

    func handle(_ events: [YamuxSession.Event], context: ChannelHandlerContext) {
        for event in events {
            switch event {
            case .send(let bytes):
                send(bytes, context: context)
            case .opened(let id):
                inbound(id, context: context)
            case .data(let id, let bytes):
                guard let buffers = streams[id] else { continue }
                if buffers.released {
                    if let update = try? withSession({ session in session.consumed(bytes.count, on: id) }),
                        !update.isEmpty
                    {
                        send(update, context: context)
                    }
                    continue
                }
                buffers.inbound.append(bytes)
                buffers.inboundBytes += bytes.count
                deliver(buffers, id: id)
            case .remoteClosed(let id):
                guard let buffers = streams[id] else { continue }
                buffers.remoteClosed = true
                if buffers.released, buffers.localClosed { streams[id] = nil }
                deliver(buffers, id: id)
            case .reset(let id):
                guard let buffers = streams.removeValue(forKey: id) else { continue }
                terminate(buffers, .streamReset)
            case .writable(let id):
                pump(id)
            case .goAway:
                context.close(promise: nil)
            }
        }
    }

    func inbound(_ id: UInt32, context: ChannelHandlerContext) {
        guard let connection, negotiating < host.configuration.maxNegotiatingStreams else {
            // Too many streams still choosing a protocol: refuse this one.
            if let bytes = try? withSession({ session in
                _ = session.accept(id)
                return session.reset(id)
            }) {
                send(bytes, context: context)
            }
            return
        }
        let buffers = StreamBuffers()
        streams[id] = buffers
        if let ack = try? withSession({ session in session.accept(id) }) { send(ack, context: context) }
        negotiating += 1
        let stream = StreamHandle(connection: connection, id: id)
        let driver = NIOLoopBound(self, eventLoop: context.eventLoop)
        let loop = context.eventLoop
        host.serve(stream) {
            loop.execute { driver.value.negotiating -= 1 }
        }
    }

    /// Hands buffered bytes (or the end) to a waiting reader.
    func deliver(_ buffers: StreamBuffers, id: UInt32) {
        guard let (max, promise) = buffers.reader else { return }
        if let failure = buffers.failure {
            buffers.reader = nil
            promise.fail(failure)
            return
        }
        guard !buffers.inbound.isEmpty else {
            if buffers.remoteClosed {
                buffers.reader = nil
                buffers.endDelivered = true
                if buffers.localClosed { streams[id] = nil }
                promise.succeed(nil)
            }
            return
        }
        buffers.reader = nil
        var chunk = buffers.inbound.removeFirst()
        if chunk.count > max {
            buffers.inbound.prepend(Array(chunk[max...]))
            chunk = Array(chunk.prefix(max))
        }
        buffers.inboundBytes -= chunk.count
        promise.succeed(chunk)
        if let context, let update = try? withSession({ session in session.consumed(chunk.count, on: id) }),
            !update.isEmpty
        {
            send(update, context: context)
        }
    }

    func terminate(_ buffers: StreamBuffers, _ error: Libp2pError) {
        buffers.failure = error
        if let (_, promise) = buffers.reader {
            buffers.reader = nil
            promise.fail(error)
        }
        while let write = buffers.writes.popFirst() { write.promise.fail(error) }
    }

    // MARK: Stream operations (called on the loop by StreamHandle)

    func open() throws(Libp2pError) -> UInt32 {
        guard let context else { throw .connectionClosed }
        let (id, bytes) = try withSession { session throws(YamuxError) in try session.open() }
        streams[id] = StreamBuffers()
        send(bytes, context: context)
        return id
    }

    func read(_ id: UInt32, max: Int, promise: EventLoopPromise<[UInt8]?>) {
        guard let buffers = streams[id] else {
            promise.fail(Libp2pError.connectionClosed)
            return
        }
        guard buffers.reader == nil else {
            promise.fail(Libp2pError.malformed("two reads at once on one stream"))
            return
        }
        buffers.reader = (max, promise)
        deliver(buffers, id: id)
    }

    /// Puts bytes back in front of a stream's inbound queue (what multistream-select read past
    /// the protocol's name). Not counted against the window again.
    func unread(_ id: UInt32, _ bytes: [UInt8]) {
        guard let buffers = streams[id], !bytes.isEmpty else { return }
        buffers.inbound.prepend(bytes)
        buffers.inboundBytes += bytes.count
    }

    func write(_ id: UInt32, _ bytes: [UInt8], promise: EventLoopPromise<Void>) {
        guard let buffers = streams[id] else {
            promise.fail(Libp2pError.connectionClosed)
            return
        }
        if let failure = buffers.failure {
            promise.fail(failure)
            return
        }
        guard !buffers.localClosed else {
            promise.fail(Libp2pError.streamClosed)
            return
        }
        guard !bytes.isEmpty else {
            promise.succeed(())
            return
        }
        buffers.writes.append((bytes, 0, promise))
        if buffers.writes.count == 1 { pump(id) }
    }

    func closeWrite(_ id: UInt32) {
        guard let context, let buffers = streams[id], !buffers.localClosed else { return }
        buffers.localClosed = true
        // The FIN goes after the queued writes: wait for the last one.
        if let last = buffers.writes.last {
            last.promise.futureResult.assumeIsolated().whenComplete { _ in self.finishWrite(id) }
        } else {
            finishWrite(id)
        }
    }

    func finishWrite(_ id: UInt32) {
        guard let context, let buffers = streams[id] else { return }
        if let bytes = try? withSession({ session in session.close(id) }) { send(bytes, context: context) }
        if buffers.endDelivered || (buffers.released && buffers.remoteClosed) { streams[id] = nil }
    }

    /// The application is done with the stream: close this side once queued writes are out,
    /// discard what still comes, and forget the stream when the peer closes too.
    func release(_ id: UInt32) {
        guard let buffers = streams[id] else { return }
        buffers.released = true
        let unread = buffers.inboundBytes
        buffers.inbound = []
        buffers.inboundBytes = 0
        if let context, unread > 0,
            let update = try? withSession({ session in session.consumed(unread, on: id) }), !update.isEmpty
        {
            send(update, context: context)
        }
        if buffers.localClosed {
            if buffers.remoteClosed { streams[id] = nil }
        } else {
            closeWrite(id)
        }
    }

    func reset(_ id: UInt32) {
        guard let context, let buffers = streams.removeValue(forKey: id) else { return }
        terminate(buffers, .streamReset)
        if let bytes = try? withSession({ session in session.reset(id) }) { send(bytes, context: context) }
    }

    // MARK: Ending

    func fail(_ error: Libp2pError, context: ChannelHandlerContext) {
        if phase == .upgrading { established.fail(error) }
        host.log("connection \(context.channel.remoteAddress.map { "\($0)" } ?? "?"): \(error)")
        shutDown(error)
        context.close(promise: nil)
    }

    func shutDown(_ error: Libp2pError) {
        phase = .closed
        for (_, buffers) in streams { terminate(buffers, error) }
        streams = [:]
        if let connection {
            self.connection = nil
            host.disconnected(connection)
            connection.closedPromise.succeed(())
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if phase == .upgrading { established.fail(Libp2pError.connectionClosed) }
        shutDown(.connectionClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if phase == .upgrading {
            // A TLS handshake that failed on the certificate check: say what was wrong with it.
            if case .failure(let why) = tlsVerified {
                fail(.upgrade(.tls("\(why)")), context: context)
                return
            }
            established.fail(tlsStarted ? Libp2pError.upgrade(.tls("\(error)")) : error)
        }
        host.log("connection \(context.channel.remoteAddress.map { "\($0)" } ?? "?"): \(error)")
        shutDown(.connectionClosed)
        context.close(promise: nil)
    }
}

extension YamuxSession {
    /// Resets a stream (RST): the peer's and our halves both end.
    public mutating func reset(_ id: UInt32) -> [UInt8] {
        guard let stream = streams.removeValue(forKey: id) else { return [] }
        if !stream.acknowledged { unacknowledged -= 1 }
        return YamuxFrame(.windowUpdate, flags: .rst, stream: id, length: 0).bytes
    }
}

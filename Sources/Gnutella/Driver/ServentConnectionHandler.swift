import NIOCore
import PeerNet

/// One TCP connection of a ``GnutellaNode``. An incoming one is told apart by its first bytes:
/// `GNUTELLA` starts the 0.6 handshake, `GET `/`HEAD` is an HTTP upload request (handed to an
/// ``UploadHandler``). After the handshake: descriptors framed (inflated first when agreed),
/// passed to the node; the node's descriptors queued by priority and written while the socket
/// takes them (deflated when agreed).
final class ServentConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum State {
        case sniffing([UInt8])
        case handshaking(Handshake)
        case open(ConnectionID)
        case closed
    }

    let node: GnutellaNode
    /// The host we dialled (nil: an incoming connection).
    let outgoing: Endpoint?
    private var state: State
    private var context: ChannelHandlerContext?
    private var remote: Endpoint?
    private var framer = DescriptorFramer()
    private var inflater: Inflater?
    private var deflater: Deflater?
    private var queue = OutgoingQueue()
    private var queries = RateLimit(perSecond: 20, burst: 60)
    private var pings = RateLimit(perSecond: 2, burst: 10)

    init(node: GnutellaNode, outgoing: Endpoint?) {
        self.node = node
        self.outgoing = outgoing
        state = outgoing == nil ? .sniffing([]) : .handshaking(node.handshake(role: .initiator))
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        remote = context.channel.remoteAddress.flatMap(Endpoint.init)
        if context.channel.isActive { sendRequest(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        remote = context.channel.remoteAddress.flatMap(Endpoint.init)
        sendRequest(context: context)
        context.fireChannelActive()
    }

    private var requested = false
    private func sendRequest(context: ChannelHandlerContext) {
        guard outgoing != nil, !requested, case .handshaking(let handshake) = state else { return }
        requested = true
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: handshake.request())), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let bytes = Array(buffer.readableBytesView)
        do {
            try consume(bytes, context: context)
        } catch {
            close(reason: "\(error)")
        }
    }

    private func consume(_ bytes: [UInt8], context: ChannelHandlerContext) throws {
        switch state {
        case .sniffing(let sofar):
            let all = sofar + bytes
            guard all.count >= 4 else {
                state = .sniffing(all)
                return
            }
            let head = String(decoding: all.prefix(4), as: UTF8.self)
            if head == "GNUT" {
                state = .handshaking(node.handshake(role: .responder))
                try consume(all, context: context)
            } else if head == "GIV " {
                // A firewalled servent answering our Push: "GIV <index>:<GUID>/<name>" + LF LF.
                guard let end = all.indices.first(where: { $0 > 0 && all[$0] == 0x0A && all[$0 - 1] == 0x0A })
                else {
                    guard all.count < 2_048 else { throw GnutellaError.handshake("GIV line too long") }
                    state = .sniffing(all)
                    return
                }
                let line = String(decoding: all[4..<end], as: UTF8.self)
                let parts = line.split(separator: ":", maxSplits: 1)
                guard parts.count == 2, let index = UInt32(parts[0]),
                    let guid = GUID(hexPrefix: parts[1].prefix(32)),
                    node.giv(servent: guid, index: index, channel: context.channel)
                else { throw GnutellaError.handshake("unexpected GIV \(line.prefix(80))") }
                state = .closed
                ConnectionGuard.handshakeCompleted(context.channel)
                _ = context.pipeline.syncOperations.removeHandler(self)
            } else if head == "GET " || head == "HEAD" {
                state = .closed
                let upload = UploadHandler(node: node)
                let pipeline = context.pipeline
                _ = pipeline.syncOperations.removeHandler(self)
                try pipeline.syncOperations.addHandler(upload)
                pipeline.fireChannelRead(NIOAny(ByteBuffer(bytes: all)))
            } else {
                throw GnutellaError.handshake("unknown first bytes \(head.debugDescription)")
            }
        case .handshaking(var handshake):
            let step = try handshake.received(bytes)
            state = .handshaking(handshake)
            switch step {
            case .waiting: break
            case .send(let reply):
                context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: reply)), promise: nil)
            case .refused(let reply, let code, let reason, _):
                if !reply.isEmpty {
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: reply)), promise: nil)
                }
                if let remote { node.onEvent(.refused(remote, code: code, reason: reason)) }
                state = .closed
                context.close(promise: nil)
            case .open(let reply, let result, let leftover):
                if !reply.isEmpty {
                    context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: reply)), promise: nil)
                }
                if result.deflateIncoming { inflater = Inflater() }
                if result.deflateOutgoing { deflater = Deflater() }
                ConnectionGuard.handshakeCompleted(context.channel)
                let id = node.opened(
                    self, kind: result.kind, remote: remote ?? Endpoint(ip: IPAddress(v4: 0), port: 0))
                state = .open(id)
                node.activated(id, kind: result.kind)
                if !leftover.isEmpty { try consume(leftover, context: context) }
                drain()
            }
        case .open(let id):
            let plain: [UInt8]
            do {
                plain = try inflater?.inflate(bytes, limit: 4 << 20) ?? bytes
            } catch {
                throw GnutellaError(error)
            }
            framer.append(plain)
            while let descriptor = try framer.next() {
                guard admit(descriptor) else { continue }
                node.received(descriptor, from: id)
                if case .closed = state { return }
            }
        case .closed:
            break
        }
    }

    /// Rate limits on what a peer floods (queries, pings); a peer far over them is dropped.
    private func admit(_ descriptor: Descriptor) -> Bool {
        let now = node.now
        switch descriptor.payload {
        case .query:
            if queries.allow(now: now) { return true }
            if queries.refused > 1_000 { bye(code: 502, reason: "Too many queries") }
            return false
        case .ping:
            return pings.allow(now: now)
        default:
            return true
        }
    }

    /// Our end of the connection (for the address a Push gives).
    var localAddress: Endpoint? { context?.channel.localAddress.flatMap(Endpoint.init) }

    func send(_ descriptor: Descriptor) {
        guard case .open = state else { return }
        queue.push(descriptor)
        drain()
    }

    /// Writes queued descriptors while the socket takes them.
    private func drain() {
        guard let context, case .open = state else { return }
        var wrote = false
        while context.channel.isWritable, let bytes = queue.pop() {
            let out = deflater?.compress(bytes) ?? bytes
            context.write(wrapOutboundOut(ByteBuffer(bytes: out)), promise: nil)
            wrote = true
        }
        if wrote { context.flush() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        drain()
        context.fireChannelWritabilityChanged()
    }

    func bye(code: UInt16, reason: String) {
        guard let context, case .open = state else {
            close(reason: reason)
            return
        }
        let bye = Descriptor(guid: GUID(random: []), ttl: 1, .bye(Bye(code: code, message: reason))).encoded()
        let out = deflater?.compress(bye) ?? bye
        context.writeAndFlush(wrapOutboundOut(ByteBuffer(bytes: out)), promise: nil)
        close(reason: reason)
    }

    func close(reason: String) {
        guard let context else { return }
        if case .open(let id) = state {
            state = .closed
            node.closed(id, remote: remote, outgoing: outgoing, reason: reason)
        } else if case .closed = state {
        } else {
            state = .closed
            node.closed(nil, remote: nil, outgoing: outgoing, reason: reason)
        }
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch state {
        case .open(let id): node.closed(id, remote: remote, outgoing: outgoing, reason: "closed by peer")
        case .closed: break
        default: node.closed(nil, remote: nil, outgoing: outgoing, reason: "closed during the handshake")
        }
        state = .closed
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        close(reason: "\(error)")
    }
}

import NIOCore
import NIOPosix
import PeerNet
import Synchronization

/// A client's connection to an index server: log in, offer files, search, ask for sources.
public final class ED2KServerSession: Sendable {
    public enum Failure: Error, Sendable, CustomStringConvertible {
        case noAnswer(String)
        case closed

        public var description: String {
            switch self {
            case .noAnswer(let what): "the server did not answer \(what) in time"
            case .closed: "the server closed the connection"
            }
        }
    }

    let channel: any Channel
    let inbox: Inbox<ServerMessage>
    /// The ID the server gave us (high: our IPv4 address; low: below 2^24).
    public let clientID: UInt32
    public let serverMessages: [String]

    init(channel: any Channel, inbox: Inbox<ServerMessage>, clientID: UInt32, texts: [String]) {
        self.channel = channel
        self.inbox = inbox
        self.clientID = clientID
        serverMessages = texts
    }

    /// Connects and logs in; returns once the server has given an ID.
    public static func connect(
        to server: Endpoint, userHash: [UInt8], port: UInt16, name: String = "PeerStack",
        group: any EventLoopGroup, timeout: Duration = .seconds(30)
    ) async throws -> ED2KServerSession {
        let inbox = Inbox<ServerMessage>()
        let channel = try await TCPDialer.connect(
            to: server, on: group.next(),
            limits: ConnectionLimits(handshakeTimeout: nil, idleTimeout: .seconds(900))
        ) { channel in
            try channel.pipeline.syncOperations.addHandler(SessionHandler(inbox: inbox))
        }.get()
        // Flags: zlib, new tags, unicode, large files (as aMule announces them).
        let login = ServerMessage.login(
            userHash: userHash, clientID: 0, port: port,
            tags: [
                Tag(.id(0x01), .string(name)), Tag(.id(0x11), .uint(0x3C)),
                Tag(.id(0x0F), .uint(UInt64(port))),
                Tag(.id(0x20), .uint(0x01 | 0x08 | 0x10 | 0x100)),
            ])
        try await channel.writeAndFlush(ByteBuffer(bytes: login.packet().encoded())).get()
        guard
            case .idChange(let id, _) = await inbox.wait(
                timeout: timeout, { if case .idChange = $0 { true } else { false } })
        else {
            channel.close(promise: nil)
            throw Failure.noAnswer("the login")
        }
        let texts = inbox.drain().compactMap { message -> String? in
            if case .serverMessage(let text) = message { return text }
            return nil
        }
        return ED2KServerSession(channel: channel, inbox: inbox, clientID: id, texts: texts)
    }

    /// Offers `files` (replacing what was offered before).
    public func offer(_ files: [FileEntry]) async throws {
        try await channel.writeAndFlush(
            ByteBuffer(bytes: ServerMessage.offerFiles(files).packet().encoded(pack: true))
        )
        .get()
    }

    /// Searches; the results of the first answer.
    public func search(_ expression: SearchExpression, timeout: Duration = .seconds(20)) async throws
        -> [FileEntry]
    {
        try await channel.writeAndFlush(
            ByteBuffer(bytes: ServerMessage.search(expression).packet().encoded())
        ).get()
        guard
            case .searchResults(let results, _) = await inbox.wait(
                timeout: timeout,
                {
                    if case .searchResults = $0 { true } else { false }
                })
        else { throw Failure.noAnswer("the search") }
        return results
    }

    /// Sources of a file: client IDs and ports.
    public func sources(of hash: [UInt8], size: UInt64, timeout: Duration = .seconds(20)) async throws -> [(
        id: UInt32, port: UInt16
    )] {
        try await channel.writeAndFlush(
            ByteBuffer(bytes: ServerMessage.getSources(hash: hash, size: size).packet().encoded())
        )
        .get()
        guard
            case .foundSources(_, let sources) = await inbox.wait(
                timeout: timeout,
                {
                    if case .foundSources(let found, _) = $0 { found == hash } else { false }
                })
        else { throw Failure.noAnswer("the source request") }
        return sources
    }

    public func close() { channel.close(promise: nil) }

    /// The next client the server asks us to call (OP_CALLBACKREQUESTED: we have a low ID and
    /// it wants a file from us); nil after `timeout` or when the connection closes.
    public func nextCallback(timeout: Duration) async -> Endpoint? {
        guard
            case .callbackRequested(let ip, let port) = await inbox.wait(
                timeout: timeout, { if case .callbackRequested = $0 { true } else { false } })
        else { return nil }
        return Endpoint(ip: ServerState.address(ofHighID: ip), port: port)
    }

    public var isOpen: Bool { channel.isActive }

    /// Asks the server to have low-ID client `id` connect to us (we must have a high ID).
    public func requestCallback(from id: UInt32) async throws {
        try await channel.writeAndFlush(
            ByteBuffer(bytes: ServerMessage.callbackRequest(clientID: id).packet().encoded())
        ).get()
    }

    /// Returns when the connection is closed (by either side).
    public func closed() async { try? await channel.closeFuture.get() }
}

/// Messages from the server, handed to whoever waits for one of their kind (or kept, the
/// newest 256, until someone does).
final class Inbox<Message: Sendable>: Sendable {
    struct Waiter {
        let id: Int
        let pick: @Sendable (Message) -> Bool
        let continuation: CheckedContinuation<Message?, Never>
    }

    struct State {
        var buffer: [Message] = []
        var waiters: [Waiter] = []
        var closed = false
        var nextID = 0
    }

    private let state = Mutex(State())

    func deliver(_ message: Message) {
        let waiter: Waiter? = state.withLock { state in
            if let index = state.waiters.firstIndex(where: { $0.pick(message) }) {
                return state.waiters.remove(at: index)
            }
            state.buffer.append(message)
            if state.buffer.count > 256 { state.buffer.removeFirst() }
            return nil
        }
        waiter?.continuation.resume(returning: message)
    }

    func close() {
        let waiters = state.withLock { state in
            state.closed = true
            defer { state.waiters = [] }
            return state.waiters
        }
        for waiter in waiters { waiter.continuation.resume(returning: nil) }
    }

    func drain() -> [Message] {
        state.withLock { state in
            defer { state.buffer = [] }
            return state.buffer
        }
    }

    /// The first message `pick` accepts (buffered or to come), nil after `timeout` or a close.
    func wait(timeout: Duration, _ pick: @escaping @Sendable (Message) -> Bool) async -> Message? {
        await withCheckedContinuation { continuation in
            let id: Int? = state.withLock { state in
                if let index = state.buffer.firstIndex(where: pick) {
                    continuation.resume(returning: state.buffer.remove(at: index))
                    return nil
                }
                if state.closed {
                    continuation.resume(returning: nil)
                    return nil
                }
                state.nextID += 1
                state.waiters.append(Waiter(id: state.nextID, pick: pick, continuation: continuation))
                return state.nextID
            }
            guard let id else { return }
            Task {
                try? await Task.sleep(for: timeout)
                let waiter = self.state.withLock { state -> Waiter? in
                    guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                    return state.waiters.remove(at: index)
                }
                waiter?.continuation.resume(returning: nil)
            }
        }
    }
}

final class SessionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    let inbox: Inbox<ServerMessage>
    private var framer = EDonkeyFramer(maxSize: 2 << 20, maxUnpacked: 8 << 20, unpackedProtocol: .edonkey)

    init(inbox: Inbox<ServerMessage>) { self.inbox = inbox }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        framer.append(Array(unwrapInboundIn(data).readableBytesView))
        do {
            while let packet = try framer.next() { inbox.deliver(try ServerMessage(packet)) }
        } catch {
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        inbox.close()
        context.fireChannelInactive()
    }
}

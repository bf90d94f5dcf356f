import NIOCore
import NIOPosix
import PeerNet
import SystemPackage

/// A shared file and its ed2k hashes, ready to upload.
public struct ED2KSharedFile: Sendable {
    public var name: String
    public var path: FilePath
    public var size: UInt64
    public var hash: [UInt8]
    public var partHashes: [[UInt8]]
    /// The AICH tree: its root goes into links (`h=`), its block hashes into recovery data.
    public var aich: AICHTree

    /// Hashes `path`.
    public init(path: FilePath, name: String? = nil) throws {
        let result = try ED2KHasher.hashFile(path)
        self.path = path
        self.name = name ?? path.lastComponent?.string ?? "file"
        size = result.size
        hash = result.hash
        partHashes = result.parts
        aich = result.aich
    }

    /// Its ed2k link, with the AICH root.
    public var link: ED2KLink {
        .file(name: name, size: size, hash: hash, aich: AICHHasher.string(aich.root), sources: [])
    }

    /// How servers list it (0xFBFBFBFB:0xFBFB marks a complete file for a server that
    /// understands compression, as eMule and aMule send it).
    public var entry: FileEntry {
        var tags = [Tag(.id(Tag.fileName), .string(name)), Tag(.id(Tag.fileSize), .uint(size & 0xFFFF_FFFF))]
        if size > UInt64(UInt32.max) { tags.append(Tag(.id(Tag.fileSizeHigh), .uint(size >> 32))) }
        return FileEntry(hash: hash, clientID: 0xFBFB_FBFB, port: 0xFBFB, tags: tags)
    }
}

/// Serves shared files to eDonkey/eMule clients that connect (the upload side of the client):
/// the hello answer, file names and part status (complete), hashsets, an upload slot at once
/// while fewer than `maxUploads` run, and parts in 10,240-byte blocks read from disk while the
/// socket takes them. A client asking for more than it may (ranges past the file, other files'
/// parts) is dropped.
///
/// Slots are contained: a client given one that takes no data for `stallLimit` while ranges
/// wait (it never reads) is dropped, and one that asks for nothing for `requestLimit` loses its
/// slot (OP_OUTOFPARTREQS). Clients that find every slot taken wait in a queue (at most
/// `maxQueued`, connected) and get a slot as one frees, as eMule's upload queue calls them.
public final class ED2KUploader: @unchecked Sendable {
    public let loop: any EventLoop
    let files: [[UInt8]: ED2KSharedFile]
    let userHash: [UInt8]
    var clientID: UInt32 = 0
    var server: (ip: UInt32, port: UInt16) = (0, 0)
    var uploads = 0
    public var maxUploads = 4
    /// Clients waiting for a slot, oldest first (connections still open).
    var queue: [UploadConnection] = []
    public var maxQueued = 64
    var callbacks = 0
    public var stallLimit: TimeAmount = .seconds(15)
    public var requestLimit: TimeAmount = .seconds(60)
    private var listener: TCPListener?
    let limits = ConnectionLimits(
        handshakeTimeout: .seconds(30), idleTimeout: .seconds(300), writeBufferHighWater: 256 << 10,
        writeBufferLowWater: 64 << 10, maxQueuedBytes: 4 << 20)

    init(files: [ED2KSharedFile], userHash: [UInt8], loop: any EventLoop) {
        self.files = Dictionary(files.map { ($0.hash, $0) }, uniquingKeysWith: { first, _ in first })
        self.userHash = userHash
        self.loop = loop
    }

    public static func start(
        sharing files: [ED2KSharedFile], userHash: [UInt8], on endpoint: Endpoint, group: any EventLoopGroup
    ) async throws -> ED2KUploader {
        let uploader = ED2KUploader(files: files, userHash: userHash, loop: group.next())
        let listener = try await TCPListener.bind(
            on: endpoint, group: uploader.loop,
            configuration: TCPListener.Configuration(limits: uploader.limits)
        ) { channel in
            try channel.pipeline.syncOperations.addHandler(UploadConnection(uploader: uploader))
        }
        try await uploader.loop.submit { uploader.listener = listener }.get()
        return uploader
    }

    public var localAddress: Endpoint? { listener?.localAddress }

    /// What to say in hellos: the ID the server gave us and the server's address.
    public func loggedIn(clientID: UInt32, server: (ip: UInt32, port: UInt16)) {
        loop.execute {
            self.clientID = clientID
            self.server = server
        }
    }

    /// Logs `session`'s ID into hellos and offers every shared file on it, with the complete-file
    /// marker.
    public func announce(on session: ED2KServerSession, server: (ip: UInt32, port: UInt16)) async throws {
        loggedIn(clientID: session.clientID, server: server)
        try await session.offer(files.values.sorted { $0.name < $1.name }.map(\.entry))
    }

    public func shutdown() async { await listener?.close() }

    /// Connects to a client that asked the server for us (we have a low ID, so it cannot reach
    /// us) and says hello; the client then asks for its file as on any connection. At most 16
    /// such connections are being opened at once.
    public func callBack(to client: Endpoint) {
        loop.execute {
            guard self.callbacks < 16 else { return }
            self.callbacks += 1
            TCPDialer.connect(to: client, on: self.loop, limits: self.limits) { channel in
                try channel.pipeline.syncOperations.addHandler(
                    UploadConnection(uploader: self, initiate: true))
            }.whenComplete { _ in self.callbacks -= 1 }
        }
    }

    /// A slot was freed: the longest-waiting client still connected gets it.
    func slotFreed() {
        uploads -= 1
        while uploads < maxUploads, !queue.isEmpty {
            let next = queue.removeFirst()
            if next.grant() { break }
        }
    }
}

final class UploadConnection: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let uploader: ED2KUploader
    private var framer = EDonkeyFramer(maxSize: 64 * 1024, maxUnpacked: 256 * 1024, unpackedProtocol: .emule)
    private var context: ChannelHandlerContext?
    private var slot = false
    private var ranges = UploadRanges()
    private var scheduled = false
    private var reader: SystemPackage.FileDescriptor?
    private var readerPath: FilePath?
    /// When data last went out (or the slot began) and when the client last asked for a range.
    private var lastProgress = NIODeadline.now()
    private var lastRequest = NIODeadline.now()
    private var watchdog: Scheduled<Void>?
    static let block = 10_240

    /// Whether we opened the connection (a callback): then we say hello first.
    let initiate: Bool

    init(uploader: ED2KUploader, initiate: Bool = false) {
        self.uploader = uploader
        self.initiate = initiate
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        if initiate, context.channel.isActive { sayHello(.hello, context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        if initiate { sayHello(.hello, context: context) }
        context.fireChannelActive()
    }

    private var saidHello = false

    /// Our hello (or hello answer): user hash, our ID and port, name and version, our server.
    private func sayHello(_ kind: HelloKind, context: ChannelHandlerContext) {
        guard !saidHello || kind == .answer else { return }
        saidHello = true
        let port = uploader.localAddress?.port ?? 0
        let tags = ClientMessage.helloTags()
        switch kind {
        case .hello:
            send(
                .hello(
                    userHash: uploader.userHash, clientID: uploader.clientID, port: port, tags: tags,
                    serverIP: uploader.server.ip, serverPort: uploader.server.port), context: context)
        case .answer:
            send(
                .helloAnswer(
                    userHash: uploader.userHash, clientID: uploader.clientID, port: port, tags: tags,
                    serverIP: uploader.server.ip, serverPort: uploader.server.port), context: context)
        }
    }

    enum HelloKind {
        case hello
        case answer
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        framer.append(Array(unwrapInboundIn(data).readableBytesView))
        do {
            while let packet = try framer.next() { try handle(try ClientMessage(packet), context: context) }
        } catch {
            context.close(promise: nil)
        }
    }

    private func send(_ message: ClientMessage, context: ChannelHandlerContext, flush: Bool = true) {
        let bytes = ByteBuffer(bytes: message.packet().encoded())
        if flush {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
        } else {
            context.write(wrapOutboundOut(bytes), promise: nil)
        }
    }

    private func handle(_ message: ClientMessage, context: ChannelHandlerContext) throws {
        switch message {
        case .hello:
            ConnectionGuard.handshakeCompleted(context.channel)
            sayHello(.answer, context: context)
        case .helloAnswer:
            ConnectionGuard.handshakeCompleted(context.channel)
        case .requestFileName(let hash):
            if let file = uploader.files[hash] {
                send(.fileNameAnswer(hash: hash, name: file.name), context: context)
            } else {
                send(.noSuchFile(hash: hash), context: context)
            }
        case .setRequestedFile(let hash):
            // Zero parts: the whole file is here.
            send(
                uploader.files[hash] != nil
                    ? .fileStatus(hash: hash, parts: 0, bitmap: []) : .noSuchFile(hash: hash),
                context: context)
        case .hashSetRequest(let hash):
            guard let file = uploader.files[hash] else {
                return send(.noSuchFile(hash: hash), context: context)
            }
            send(.hashSetAnswer(hash: hash, parts: file.partHashes), context: context)
        case .startUploadRequest:
            guard !slot else { return send(.acceptUpload, context: context) }
            guard uploader.uploads < uploader.maxUploads else {
                if let place = uploader.queue.firstIndex(where: { $0 === self }) {
                    return send(.queueRank(UInt16(place + 1)), context: context)
                }
                guard uploader.queue.count < uploader.maxQueued else {
                    throw EDonkeyError.tooLarge(
                        field: "upload queue", size: uploader.queue.count + 1, limit: uploader.maxQueued)
                }
                uploader.queue.append(self)
                return send(.queueRank(UInt16(uploader.queue.count)), context: context)
            }
            _ = grant()
        case .requestParts(let hash, let asked):
            lastRequest = context.eventLoop.now
            guard slot, let file = uploader.files[hash] else {
                throw EDonkeyError.invalid(
                    field: "part request", offset: 0, reason: "no slot or no such file")
            }
            try ranges.add(asked, of: file)
            pump(context: context)
        case .aichRequest(let hash, let part, let root):
            // Recovery data for a part, if the asker's root is ours (eMule answers the same way).
            guard let file = uploader.files[hash], file.aich.root == root,
                let recovery = file.aich.recovery(part: Int(part))
            else {
                return send(
                    .aichAnswer(hash: hash, part: 0, root: [], recovery: [], large: false), context: context)
            }
            send(
                .aichAnswer(
                    hash: hash, part: part, root: root, recovery: recovery,
                    large: file.size > UInt64(UInt32.max)),
                context: context)
        case .cancelTransfer:
            // The downloader is done with us for now: free the slot (a new session may ask for
            // the same ranges again).
            ranges.reset()
            endSlot()
        default:
            break  // eMule's extensions and anything else: not needed to upload
        }
    }

    /// Gives this client a slot (false if it has gone or already has one).
    func grant() -> Bool {
        guard let context, context.channel.isActive, !slot else { return false }
        uploader.uploads += 1
        slot = true
        lastProgress = context.eventLoop.now
        lastRequest = context.eventLoop.now
        send(.acceptUpload, context: context)
        watch(context: context)
        return true
    }

    private func endSlot() {
        guard slot else { return }
        slot = false
        watchdog?.cancel()
        watchdog = nil
        uploader.slotFreed()
    }

    /// Every second while the slot lasts: a client that takes no data for `stallLimit` is
    /// dropped; one that asks for nothing for `requestLimit` loses the slot.
    private func watch(context: ChannelHandlerContext) {
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        watchdog = context.eventLoop.scheduleTask(in: .seconds(1)) {
            let (connection, context) = bound.value
            guard connection.slot else { return }
            let now = context.eventLoop.now
            if !connection.ranges.isEmpty, now - connection.lastProgress > connection.uploader.stallLimit {
                context.close(promise: nil)
            } else if connection.ranges.isEmpty,
                now - connection.lastRequest > connection.uploader.requestLimit
            {
                connection.send(.outOfPartRequests, context: context)
                connection.endSlot()
            } else {
                connection.watch(context: context)
            }
        }
    }

    /// Blocks sent per tick, and the tick: a slot's data is spread out (at most about 30 MB/s
    /// per connection) as eMule's upload throttler spreads it. aMule 2.3.3, given a whole
    /// request's three ranges (540 KB) at once, stops reading its socket until its 100 s
    /// download timeout cancels the transfer.
    static let blocksPerTick = 6
    static let tick = TimeAmount.milliseconds(2)

    /// Sends up to `blocksPerTick` blocks while the socket takes them, and comes back after a
    /// tick while ranges are waiting.
    private func pump(context: ChannelHandlerContext) {
        guard !scheduled else { return }
        var wrote = false
        var budget = Self.blocksPerTick
        while context.channel.isWritable, budget > 0, let next = ranges.next(upTo: Self.block) {
            budget -= 1
            var data = [UInt8](repeating: 0, count: next.count)
            do {
                if reader == nil || readerPath != next.file.path {
                    try? reader?.close()
                    reader = try SystemPackage.FileDescriptor.open(next.file.path, .readOnly)
                    readerPath = next.file.path
                }
                let read = try data.withUnsafeMutableBytes {
                    try reader!.read(fromAbsoluteOffset: Int64(next.offset), into: $0)
                }
                guard read == next.count else {
                    throw EDonkeyError.truncated(field: "shared file", offset: Int(next.offset))
                }
            } catch {
                context.close(promise: nil)
                return
            }
            send(
                .sendingPart(
                    hash: next.file.hash, start: UInt32(next.offset),
                    end: UInt32(next.offset) + UInt32(next.count), data: data),
                context: context, flush: false)
            wrote = true
            lastProgress = context.eventLoop.now
        }
        if wrote { context.flush() }
        if !ranges.isEmpty, context.channel.isWritable {
            scheduled = true
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: Self.tick) {
                let (connection, context) = bound.value
                connection.scheduled = false
                if context.channel.isActive { connection.pump(context: context) }
            }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        pump(context: context)
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        ranges.reset()
        uploader.queue.removeAll { $0 === self }
        endSlot()
        try? reader?.close()
        reader = nil
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
}

/// The ranges one downloader has asked for and not yet been sent, and the newest sent whole
/// (sans I/O; the connection handler sends what ``next(upTo:)`` gives). eMule and aMule ask
/// again, in each request, for every range they have not yet received whole: a range waiting or
/// on its way is not queued twice (eMule's uploader keeps the same done-blocks list). More than
/// ``maxWaiting`` ranges waiting is a flood.
struct UploadRanges {
    static let maxWaiting = 48
    static let remembered = 32

    private var pending: [(file: ED2KSharedFile, start: UInt64, next: UInt64, end: UInt64)] = []
    private var sent: [(hash: [UInt8], start: UInt64, end: UInt64)] = []

    var isEmpty: Bool { pending.isEmpty }
    var waiting: Int { pending.count }

    /// Queues `ranges` of `file` ([start, end) each; empty ones skipped).
    mutating func add(_ ranges: [(start: UInt32, end: UInt32)], of file: ED2KSharedFile) throws(EDonkeyError)
    {
        for range in ranges where range.end > range.start {
            let start = UInt64(range.start)
            let end = UInt64(range.end)
            guard end <= file.size else {
                throw .invalid(
                    field: "part request", offset: 16, reason: "\(start)..<\(end) past the end of the file")
            }
            if pending.contains(where: { $0.file.hash == file.hash && $0.end == end })
                || sent.contains(where: { $0.hash == file.hash && $0.start == start && $0.end == end })
            {
                continue
            }
            guard pending.count < Self.maxWaiting else {
                throw .tooLarge(field: "requested ranges", size: pending.count + 1, limit: Self.maxWaiting)
            }
            pending.append((file, start, start, end))
        }
    }

    /// The next block to send, at most `limit` bytes, and the range moved past it.
    mutating func next(upTo limit: Int) -> (file: ED2KSharedFile, offset: UInt64, count: Int)? {
        guard let first = pending.first else { return nil }
        let count = Int(min(UInt64(limit), first.end - first.next))
        pending[0].next += UInt64(count)
        if pending[0].next >= pending[0].end {
            pending.removeFirst()
            sent.append((first.file.hash, first.start, first.end))
            if sent.count > Self.remembered { sent.removeFirst() }
        }
        return (first.file, first.next, count)
    }

    /// A new session (the downloader cancelled): nothing waiting, nothing remembered.
    mutating func reset() {
        pending = []
        sent = []
    }
}

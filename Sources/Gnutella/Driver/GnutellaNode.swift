import Crypto
import NIOCore
import NIOPosix
import PeerNet
import SystemPackage

/// A shared file and where it is on disk.
public struct ShareEntry: Sendable {
    public var file: SharedFile
    public var path: FilePath

    public init(file: SharedFile, path: FilePath) {
        self.file = file
        self.path = path
    }

    /// The regular files directly in `directory` (at most `limit`), each hashed for its
    /// `urn:sha1`. `progress` is told of each file as it is hashed.
    public static func scan(
        _ directory: FilePath, limit: Int = 10_000, progress: (String) -> Void = { _ in }
    ) throws -> [ShareEntry] {
        let names = try FileListing.regularFiles(in: directory).prefix(limit)
        var entries: [ShareEntry] = []
        for (index, name) in names.sorted().enumerated() {
            progress(name)
            let path = directory.appending(name)
            let (size, sha1) = try hashFile(path)
            entries.append(
                ShareEntry(
                    file: SharedFile(index: UInt32(index + 1), name: name, size: size, sha1: sha1), path: path
                ))
        }
        return entries
    }

    static func hashFile(_ path: FilePath) throws -> (UInt64, [UInt8]) {
        let fd = try SystemPackage.FileDescriptor.open(path, .readOnly)
        defer { try? fd.close() }
        var hasher = Insecure.SHA1()
        var size: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try buffer.withUnsafeMutableBytes { try fd.read(into: $0) }
            if count == 0 { break }
            hasher.update(data: buffer[0..<count])
            size += UInt64(count)
        }
        return (size, Array(hasher.finalize()))
    }
}

/// Listing a directory without Foundation's file manager (bounded by the caller).
enum FileListing {
    static func regularFiles(in directory: FilePath) throws -> [String] {
        guard let dir = opendir(directory.string) else {
            throw GnutellaError.invalid(
                field: "share directory", offset: 0, reason: "cannot open \(directory)")
        }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard !name.hasPrefix(".") else { continue }
            var info = stat()
            guard stat(directory.appending(name).string, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
                continue
            }
            names.append(name)
            if names.count >= 100_000 { break }
        }
        return names
    }
}

/// What a running node reports.
public enum GnutellaEvent: Sendable {
    case listening(Endpoint)
    case connected(Endpoint, ConnectionKind)
    case disconnected(Endpoint, reason: String)
    case refused(Endpoint, code: Int, reason: String)
    case result(query: GUID, hit: QueryHit)
    case uploaded(name: String, bytes: Int64, to: Endpoint)
}

/// A servent on real sockets: a ``Servent`` run on one event loop, its connections (TCP,
/// the 0.6 handshake, deflate where agreed, descriptor framing, a priority queue per connection
/// for flow control, rate limits on incoming queries and pings) and HTTP uploads of its shared
/// files on the same port. Every method hops to the node's loop; nothing else touches the
/// servent, so it needs no lock.
public final class GnutellaNode: @unchecked Sendable {
    public let loop: any EventLoop
    let group: any EventLoopGroup
    private var servent: Servent
    private(set) var shares: [ShareEntry]
    let onEvent: @Sendable (GnutellaEvent) -> Void
    private var listener: TCPListener?
    private var handlers: [ConnectionID: ServentConnectionHandler] = [:]
    private var nextConnection = 1
    private var tickTask: RepeatedTask?
    private let origin = NIODeadline.now()
    /// Hosts named to keep a connection to (`--connect`), redialled while not connected.
    private var wanted: [Endpoint: NIODeadline] = [:]
    private var connectedTo: Set<Endpoint> = []
    /// Downloads waiting for a firewalled servent to connect to us with GIV, by its GUID and
    /// file index.
    private var pushWaits: [PushKey: EventLoopPromise<any Channel>] = [:]
    struct PushKey: Hashable {
        let servent: GUID
        let index: UInt32
    }
    /// Other servents known to have a file (the download mesh): from hits, and from the
    /// `X-Alt` headers of those who download from us; given out in our own `X-Alt`.
    var alternateLocations = AlternateLocations()
    /// Uploads running now, and the most at once (more get 503 Busy).
    var uploads = 0
    public var maxUploads = 4
    let limits: ConnectionLimits

    public var configuration: ServentConfiguration { servent.configuration }
    public var guid: GUID { servent.guid }

    var now: Duration {
        let nanos = (NIODeadline.now() - origin).nanoseconds
        return .nanoseconds(nanos)
    }

    init(
        configuration: ServentConfiguration, shares: [ShareEntry], group: any EventLoopGroup, seed: UInt64,
        onEvent: @escaping @Sendable (GnutellaEvent) -> Void
    ) {
        self.group = group
        loop = group.next()
        servent = Servent(configuration: configuration, seed: seed)
        servent.share(shares.map(\.file))
        self.shares = shares
        self.onEvent = onEvent
        limits = ConnectionLimits(
            handshakeTimeout: .seconds(15), idleTimeout: .seconds(300), writeBufferHighWater: 256 << 10,
            writeBufferLowWater: 64 << 10, maxQueuedBytes: 4 << 20)
    }

    /// Starts a node listening on `listen` (port 0: any), sharing `shares`.
    public static func start(
        configuration: ServentConfiguration, shares: [ShareEntry], listen: Endpoint,
        group: any EventLoopGroup,
        seed: UInt64 = UInt64.random(in: 1...UInt64.max), onEvent: @escaping @Sendable (GnutellaEvent) -> Void
    ) async throws -> GnutellaNode {
        let node = GnutellaNode(
            configuration: configuration, shares: shares, group: group, seed: seed, onEvent: onEvent)
        var listenerConfiguration = TCPListener.Configuration(limits: node.limits)
        listenerConfiguration.admission.maxConnections = 256
        let listener = try await TCPListener.bind(
            on: listen, group: node.loop, configuration: listenerConfiguration
        ) {
            [node] channel in
            try channel.pipeline.syncOperations.addHandler(
                ServentConnectionHandler(node: node, outgoing: nil))
        }
        try await node.loop.submit {
            node.listener = listener
            if let bound = listener.localAddress {
                var configuration = node.servent.configuration
                if configuration.listen == nil || configuration.listen?.port == 0 {
                    let host = configuration.listen?.ip ?? bound.ip
                    configuration.listen = Endpoint(ip: host, port: bound.port)
                }
                node.servent = Servent(configuration: configuration, seed: seed)
                node.servent.share(shares.map(\.file))
                node.onEvent(.listening(bound))
            }
            node.tickTask = node.loop.scheduleRepeatedTask(initialDelay: .seconds(1), delay: .seconds(1)) {
                _ in
                node.tick()
            }
        }.get()
        return node
    }

    public var localAddress: Endpoint? { listener?.localAddress }

    /// Keeps a connection to `endpoint`: dialled now and again whenever it is lost.
    public func connect(to endpoint: Endpoint) {
        loop.execute {
            self.wanted[endpoint] = .now()
            self.dialDue()
        }
    }

    /// Starts a search; hits arrive as `.result` events with the returned GUID.
    public func search(_ text: String, sha1: [UInt8]? = nil) async throws -> GUID {
        try await loop.submit {
            let (id, actions) = self.servent.search(text, sha1: sha1, now: self.now)
            self.perform(actions)
            return id
        }.get()
    }

    /// Connections open now.
    public func connectionCount() async throws -> Int {
        try await loop.submit { self.handlers.count }.get()
    }

    public func shutdown() async {
        try? await loop.submit {
            self.tickTask?.cancel()
            self.wanted = [:]
            for handler in self.handlers.values { handler.bye(code: 200, reason: "Shutting down") }
        }.get()
        await listener?.close()
    }

    // MARK: Loop-confined

    private func dialDue() {
        let deadline = NIODeadline.now()
        for (endpoint, due) in wanted where due <= deadline && !connectedTo.contains(endpoint) {
            wanted[endpoint] = deadline + .seconds(10)
            connectedTo.insert(endpoint)
            let node = self
            TCPDialer.connect(to: endpoint, on: loop, limits: limits, timeout: .seconds(5)) { channel in
                try channel.pipeline.syncOperations.addHandler(
                    ServentConnectionHandler(node: node, outgoing: endpoint))
            }.whenFailure { error in
                node.loop.execute {
                    node.connectedTo.remove(endpoint)
                    node.onEvent(.disconnected(endpoint, reason: "\(error)"))
                }
            }
        }
    }

    func handshake(role: Handshake.Role) -> Handshake {
        Handshake(role: role, configuration: servent.configuration, slots: servent.freeSlots)
    }

    func opened(_ handler: ServentConnectionHandler, kind: ConnectionKind, remote: Endpoint) -> ConnectionID {
        let id = ConnectionID(nextConnection)
        nextConnection += 1
        handlers[id] = handler
        onEvent(.connected(remote, kind))
        return id
    }

    /// The connection's handler is ready to send: the servent learns of it (a leaf sends its
    /// QRP table now).
    func activated(_ id: ConnectionID, kind: ConnectionKind) {
        perform(servent.connectionOpened(id, kind: kind, now: now))
    }

    func closed(_ id: ConnectionID?, remote: Endpoint?, outgoing: Endpoint?, reason: String) {
        if let outgoing { connectedTo.remove(outgoing) }
        if let id {
            handlers[id] = nil
            servent.connectionClosed(id)
        }
        if let remote { onEvent(.disconnected(remote, reason: reason)) }
    }

    func received(_ descriptor: Descriptor, from id: ConnectionID) {
        perform(servent.received(descriptor, from: id, now: now))
    }

    private func tick() {
        perform(servent.tick(now: now))
        dialDue()
    }

    private func perform(_ actions: [ServentAction]) {
        for action in actions {
            switch action {
            case .send(let id, let descriptor): handlers[id]?.send(descriptor)
            case .close(let id, let reason): handlers[id]?.close(reason: reason)
            case .result(let query, let hit):
                for result in hit.results {
                    if let sha1 = result.extensions.sha1 { alternateLocations.add(hit.endpoint, for: sha1) }
                }
                onEvent(.result(query: query, hit: hit))
            case .pushRequested(let push): answerPush(push)
            case .discovered: break
            }
        }
    }

    /// A Push names us: connect to the downloader and offer the file with GIV, then serve
    /// its GET on that connection (how a servent that cannot be reached uploads).
    private func answerPush(_ push: Push) {
        guard let entry = share(index: push.index) else { return }
        let line = "GIV \(push.index):\(servent.guid)/\(entry.file.name)\n\n"
        let node = self
        TCPDialer.connect(to: push.endpoint, on: loop, limits: limits, timeout: .seconds(10)) { channel in
            try channel.pipeline.syncOperations.addHandler(
                UploadHandler(node: node, greeting: Array(line.utf8)))
        }.whenFailure { error in
            node.onEvent(.disconnected(push.endpoint, reason: "push: \(error)"))
        }
    }

    /// A GIV arrived on `channel`: hands it to the download waiting for it, if any.
    func giv(servent: GUID, index: UInt32, channel: any Channel) -> Bool {
        guard let promise = pushWaits.removeValue(forKey: PushKey(servent: servent, index: index)) else {
            return false
        }
        promise.succeed(channel)
        return true
    }

    /// Where a firewalled servent can reach us: the listen address, or, when that is a wildcard,
    /// the local address of a connection we have, with the listening port.
    private func callbackEndpoint() -> Endpoint? {
        guard let listen = servent.configuration.listen else { return nil }
        if listen.ip != IPAddress(v4: 0) { return listen }
        for handler in handlers.values {
            if let local = handler.localAddress { return Endpoint(ip: local.ip, port: listen.port) }
        }
        return nil
    }

    /// Downloads file `index` (`sha1`) from the firewalled servent `target` (found in a hit):
    /// a Push goes to it along its hit's path, it connects to us with GIV, and the transfer runs
    /// on that connection. Fails if nothing routes to it or it does not call within `timeout`.
    public func pushDownload(
        servent target: GUID, index: UInt32, sha1: [UInt8], to path: FilePath,
        timeout: TimeAmount = .seconds(30),
        progress: @escaping @Sendable (Int64, Int64) -> Void = { _, _ in }
    ) async throws -> Int64 {
        let promise = loop.makePromise(of: (any Channel).self)
        try await loop.submit {
            guard let callback = self.callbackEndpoint() else {
                throw GnutellaError.handshake("no address of ours to give in a Push")
            }
            let actions = self.servent.push(to: target, index: index, endpoint: callback, now: self.now)
            guard !actions.isEmpty else {
                throw GnutellaError.handshake("no route to servent \(target) for a Push")
            }
            self.pushWaits[PushKey(servent: target, index: index)] = promise
            self.perform(actions)
            self.loop.scheduleTask(in: timeout) {
                if self.pushWaits.removeValue(forKey: PushKey(servent: target, index: index)) != nil {
                    promise.fail(
                        GnutellaError.handshake("servent \(target) did not answer the Push with GIV"))
                }
            }
        }.get()
        let channel = try await promise.futureResult.get()
        return try await GnutellaDownload.transfer(
            sha1: sha1, host: channel.remoteAddress.flatMap(Endpoint.init)?.description ?? "", to: path,
            userAgent: servent.configuration.userAgent
        ) { makeHandler in
            try await channel.eventLoop.submit {
                try channel.pipeline.syncOperations.addHandler(makeHandler())
            }.get()
        } progress: {
            progress($0, $1)
        }
    }

    /// The shared file a request names: by `urn:sha1`, or by index (and name).
    func share(sha1: [UInt8]) -> ShareEntry? { shares.first { $0.file.sha1 == sha1 } }
    func share(index: UInt32) -> ShareEntry? { shares.first { $0.file.index == index } }
}

/// Where else a file is, by its SHA-1 (HUGE's alternate locations, sent as `X-Alt: host:port,…`):
/// at most 20 per file and 1,000 files, newest kept.
struct AlternateLocations: Sendable {
    private var locations: [[UInt8]: [Endpoint]] = [:]
    private var order: [[UInt8]] = []
    static let perFile = 20
    static let files = 1_000

    mutating func add(_ endpoint: Endpoint, for sha1: [UInt8]) {
        if locations[sha1] == nil {
            order.append(sha1)
            if order.count > Self.files { locations[order.removeFirst()] = nil }
        }
        var list = locations[sha1, default: []].filter { $0 != endpoint }
        list.append(endpoint)
        locations[sha1] = Array(list.suffix(Self.perFile))
    }

    func get(_ sha1: [UInt8], except excluded: Set<Endpoint> = []) -> [Endpoint] {
        (locations[sha1] ?? []).filter { !excluded.contains($0) }
    }

    /// `host:port` items of an `X-Alt` header (at most 20; anything else skipped).
    static func parse(_ header: String?) -> [Endpoint] {
        Handshake.endpoints(header).prefix(perFile).map { $0 }
    }
}

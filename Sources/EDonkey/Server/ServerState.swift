import PeerNet

/// An index server's limits and what it says about itself.
public struct ED2KServerConfiguration: Sendable {
    public var name = "PeerStack server"
    public var description = "an eDonkey index server (PeerStack)"
    /// Sent to every client after login.
    public var message = "Welcome to a PeerStack eDonkey server."
    public var maxUsers = 5_000
    /// Files one client may have listed (more in its offers are ignored).
    public var maxFilesPerUser = 1_000
    /// Results per search (the "more" flag says when there were others).
    public var maxResults = 200
    /// Sources per answer (the protocol's count is one byte).
    public var maxSources = 255
    /// Searches and source requests one client may make per minute before it is ignored.
    public var requestsPerMinute = 120
    /// Datagrams one IP address may send per minute to the UDP port (more are dropped), and
    /// results per UDP search: a forged source address cannot turn the server into an
    /// amplifier of more than this.
    public var udpRequestsPerMinute = 60
    public var maxUDPResults = 20
    /// Whether the driver also listens on UDP, at the TCP port + 4 (as eMule expects).
    public var udp = true
    /// Where the driver keeps a snapshot (``ServerState/Snapshot``, JSON): read at start,
    /// written every `snapshotInterval` and at shutdown. nil: nothing on disk.
    public var snapshot: String?
    public var snapshotInterval: Duration = .seconds(60)

    public init() {}
}

/// A connection of the server, named by its driver.
public struct ServerConnection: Hashable, Sendable, Comparable {
    public let value: Int
    public init(_ value: Int) { self.value = value }
    public static func < (a: Self, b: Self) -> Bool { a.value < b.value }
}

/// What a ``ServerState`` asks its driver to do.
public enum ServerAction: Sendable, Equatable {
    case send(ServerConnection, ServerMessage)
    /// Try to connect to the client's port (the high-ID test) and report with `reachable`.
    case checkReachable(ServerConnection, Endpoint)
    case close(ServerConnection, reason: String)
}

/// An eDonkey index server as a state machine: logins with high or low IDs (high when the
/// client's port answers a connection from the server), the file index built from clients'
/// offers (removed with them), searches over boolean expression trees with type, extension,
/// size and availability constraints, sources, and callbacks for low-ID clients. Time comes with
/// each call; nothing here touches a socket.
public struct ServerState: Sendable {
    public let configuration: ED2KServerConfiguration
    public let hash: [UInt8]
    public let endpoint: Endpoint

    struct Client: Sendable {
        var address: [UInt8]  // IPv4, network order
        var userHash: [UInt8] = []
        var port: UInt16 = 0
        var id: UInt32?
        var name = ""
        var files: Set<[UInt8]> = []
        var requests: [Duration] = []
        /// A client known from a snapshot, not connected: its files stay listed until it logs
        /// in again or this time passes.
        var rememberedUntil: Duration?
    }

    struct IndexedFile: Sendable {
        var name: String
        var size: UInt64
        var type: String
        var sources: [ServerConnection: Bool] = [:]  // complete or not
    }

    private var clients: [ServerConnection: Client] = [:]
    private var pendingLogin: [ServerConnection: (hash: [UInt8], port: UInt16, tags: [Tag])] = [:]
    private var files: [[UInt8]: IndexedFile] = [:]
    private var lowIDs: [UInt32: ServerConnection] = [:]
    private var highIDs: [UInt32: ServerConnection] = [:]
    private var nextLowID: UInt32 = 1
    /// Clients restored from a snapshot (negative connection numbers) by user hash, the next
    /// number to use, and when the oldest of them expires: so neither a login nor a message
    /// scans every client.
    private var rememberedUsers: [[UInt8]: ServerConnection] = [:]
    private var nextRemembered = -1
    private var rememberedExpiry: Duration?
    private var remembered: Int { rememberedUsers.count }
    /// UDP requests per IP address in the current minute (at most 4,096 addresses tracked).
    private var udpRequests: [[UInt8]: (window: Duration, count: Int)] = [:]
    static let maxUDPAddresses = 4_096

    public init(
        configuration: ED2KServerConfiguration = ED2KServerConfiguration(), hash: [UInt8], endpoint: Endpoint
    ) {
        self.configuration = configuration
        self.hash = hash
        self.endpoint = endpoint
    }

    public var userCount: Int { clients.values.filter { $0.id != nil && $0.rememberedUntil == nil }.count }
    public var fileCount: Int { files.count }

    /// The ID a high-ID client gets: its IPv4 address's bytes read little-endian (eDonkey's rule;
    /// every high ID is ≥ 2^24).
    public static func highID(_ address: [UInt8]) -> UInt32 {
        guard address.count == 4 else { return 0 }
        return UInt32(address[0]) | UInt32(address[1]) << 8 | UInt32(address[2]) << 16 | UInt32(address[3])
            << 24
    }

    public static func address(ofHighID id: UInt32) -> [UInt8] {
        [
            UInt8(truncatingIfNeeded: id), UInt8(truncatingIfNeeded: id >> 8),
            UInt8(truncatingIfNeeded: id >> 16),
            UInt8(truncatingIfNeeded: id >> 24),
        ]
    }

    public mutating func connected(_ connection: ServerConnection, address: [UInt8]) -> [ServerAction] {
        guard clients.count - remembered < configuration.maxUsers else {
            return [
                .send(connection, .serverMessage("Server full")), .close(connection, reason: "server full"),
            ]
        }
        clients[connection] = Client(address: address)
        return []
    }

    public mutating func disconnected(_ connection: ServerConnection) {
        guard let client = clients.removeValue(forKey: connection) else { return }
        pendingLogin[connection] = nil
        if let id = client.id {
            if lowIDs[id] == connection { lowIDs[id] = nil }
            if highIDs[id] == connection { highIDs[id] = nil }
        }
        for hash in client.files { dropSource(connection, of: hash) }
    }

    private mutating func dropSource(_ connection: ServerConnection, of hash: [UInt8]) {
        files[hash]?.sources[connection] = nil
        if files[hash]?.sources.isEmpty == true { files[hash] = nil }
    }

    public mutating func received(_ message: ServerMessage, from connection: ServerConnection, now: Duration)
        -> [ServerAction]
    {
        if let expiry = rememberedExpiry, expiry <= now { expireRemembered(now: now) }
        guard let client = clients[connection] else { return [] }
        guard client.id != nil else {
            // Before the login is done, only a login.
            guard case .login(let userHash, _, let port, let tags) = message, pendingLogin[connection] == nil
            else {
                return [.close(connection, reason: "expected a login first")]
            }
            pendingLogin[connection] = (userHash, port, tags)
            guard let endpoint = Endpoint(ip: client.address, port: port), port != 0 else {
                return reachability(connection, reachable: false)
            }
            return [.checkReachable(connection, endpoint)]
        }
        switch message {
        case .offerFiles(let offered):
            return offer(offered, from: connection)
        case .search(let expression):
            guard allow(connection, now: now) else { return [] }
            return [.send(connection, search(expression))]
        case .getSources(let hash, _):
            guard allow(connection, now: now) else { return [] }
            return [
                .send(connection, .foundSources(hash: hash, sources: sources(of: hash, except: connection)))
            ]
        case .callbackRequest(let id):
            guard let target = lowIDs[id], let requester = clients[connection],
                let requesterID = requester.id,
                requesterID >= 1 << 24
            else { return [] }
            return [.send(target, .callbackRequested(ip: requesterID, port: requester.port))]
        case .getServerList:
            return [.send(connection, .serverList([]))]
        case .login:
            return [.close(connection, reason: "a second login")]
        default:
            return []
        }
    }

    // MARK: Snapshot

    /// What a snapshot keeps: the server's hash (its identity across restarts) and each
    /// high-ID client's address, port and offered files. Low-ID clients are not kept: nobody can
    /// reach them without the connection they had.
    public struct Snapshot: Codable, Sendable, Equatable {
        public struct File: Codable, Sendable, Equatable {
            public var hash: [UInt8]
            public var name: String
            public var size: UInt64
            public var type: String
            public var complete: Bool
        }

        public struct Client: Codable, Sendable, Equatable {
            public var userHash: [UInt8]
            public var id: UInt32
            public var port: UInt16
            public var files: [File]
        }

        public var serverHash: [UInt8]
        public var clients: [Client]
    }

    /// How long a restored client's files stay listed without it logging in again.
    public static let rememberFor: Duration = .seconds(3_600)

    public func snapshot() -> Snapshot {
        let kept = clients.keys.sorted().compactMap { connection -> Snapshot.Client? in
            guard let client = clients[connection], let id = client.id, id >= 1 << 24, !client.files.isEmpty
            else { return nil }
            let offered = client.files.sorted { $0.lexicographicallyPrecedes($1) }.compactMap {
                hash -> Snapshot.File? in
                guard let file = self.files[hash] else { return nil }
                return Snapshot.File(
                    hash: hash, name: file.name, size: file.size, type: file.type,
                    complete: file.sources[connection] ?? true)
            }
            return Snapshot.Client(userHash: client.userHash, id: id, port: client.port, files: offered)
        }
        return Snapshot(serverHash: hash, clients: kept)
    }

    /// Lists what `snapshot` remembers (within this server's limits) until each client logs in
    /// again or ``rememberFor`` passes. Entries that are not well formed are skipped.
    public mutating func restore(_ snapshot: Snapshot, now: Duration) {
        for client in snapshot.clients.prefix(configuration.maxUsers)
        where client.userHash.count == 16 && client.id >= 1 << 24 && client.port != 0 {
            let connection = ServerConnection(nextRemembered)
            nextRemembered -= 1
            var known = Client(address: Self.address(ofHighID: client.id))
            known.id = client.id
            known.userHash = client.userHash
            known.port = client.port
            known.rememberedUntil = now + Self.rememberFor
            for file in client.files.prefix(configuration.maxFilesPerUser)
            where file.hash.count == 16 && !file.name.isEmpty && file.size > 0 {
                var indexed =
                    files[file.hash] ?? IndexedFile(name: file.name, size: file.size, type: file.type)
                indexed.sources[connection] = file.complete
                files[file.hash] = indexed
                known.files.insert(file.hash)
            }
            if let earlier = rememberedUsers[client.userHash] { forget(earlier) }
            clients[connection] = known
            rememberedUsers[client.userHash] = connection
            rememberedExpiry = min(rememberedExpiry ?? known.rememberedUntil!, known.rememberedUntil!)
        }
    }

    private mutating func forget(_ connection: ServerConnection) {
        guard let client = clients.removeValue(forKey: connection) else { return }
        rememberedUsers[client.userHash] = nil
        for hash in client.files { dropSource(connection, of: hash) }
        if rememberedUsers.isEmpty { rememberedExpiry = nil }
    }

    /// Runs only once the oldest remembered client is due (restored clients share one time).
    private mutating func expireRemembered(now: Duration) {
        var next: Duration?
        for connection in Array(rememberedUsers.values) {
            guard let until = clients[connection]?.rememberedUntil else { continue }
            if until <= now { forget(connection) } else { next = min(next ?? until, until) }
        }
        rememberedExpiry = next
    }

    /// A datagram from `address` (IPv4, network order) on the UDP port: the answers to send back
    /// to it. Status and description requests get their challenge back; searches at most
    /// `maxUDPResults` results; source requests the high-ID sources of each file that has
    /// some. An address over `udpRequestsPerMinute` gets nothing.
    public mutating func receivedDatagram(_ message: ServerUDPMessage, from address: [UInt8], now: Duration)
        -> [ServerUDPMessage]
    {
        guard allowDatagram(from: address, now: now) else { return [] }
        switch message {
        case .statusRequest(let challenge):
            var status = ServerStatus(
                challenge: challenge, users: UInt32(userCount), files: UInt32(fileCount))
            status.maxUsers = UInt32(configuration.maxUsers)
            status.softFiles = UInt32(configuration.maxFilesPerUser)
            status.hardFiles = UInt32(configuration.maxFilesPerUser)
            // Sources (both forms), files, new tags, unicode, large files.
            status.udpFlags = 0x01 | 0x02 | 0x08 | 0x10 | 0x20 | 0x100
            status.lowIDUsers = UInt32(lowIDs.count)
            return [.status(status)]
        case .descriptionRequest(let challenge):
            return [
                .description(
                    challenge: challenge.flatMap {
                        $0 & 0xFFFF == ServerUDPMessage.taggedDescription ? $0 : nil
                    },
                    name: configuration.name, description: configuration.description)
            ]
        case .globalSearch(let expression):
            guard case .searchResults(let results, _) = search(expression) else { return [] }
            return results.prefix(configuration.maxUDPResults).map { .globalSearchResult($0) }
        case .globalGetSources(let hashes):
            return udpSources(hashes)
        case .globalGetSources2(let files):
            return udpSources(files.map(\.hash))
        default:
            return []
        }
    }

    private func udpSources(_ hashes: [[UInt8]]) -> [ServerUDPMessage] {
        var seen: Set<[UInt8]> = []
        return hashes.compactMap { hash in
            guard seen.insert(hash).inserted else { return nil }
            let found = sources(of: hash, except: nil).filter { $0.id >= 1 << 24 }
            return found.isEmpty ? nil : .globalFoundSources(hash: hash, sources: found)
        }
    }

    private mutating func allowDatagram(from address: [UInt8], now: Duration) -> Bool {
        if var entry = udpRequests[address] {
            if now - entry.window >= .seconds(60) { entry = (now, 0) }
            guard entry.count < configuration.udpRequestsPerMinute else { return false }
            entry.count += 1
            udpRequests[address] = entry
            return true
        }
        if udpRequests.count >= Self.maxUDPAddresses {
            udpRequests = udpRequests.filter { now - $0.value.window < .seconds(60) }
            guard udpRequests.count < Self.maxUDPAddresses else { return false }
        }
        udpRequests[address] = (now, 1)
        return true
    }

    /// The driver's answer to `.checkReachable`: the client gets its ID and the welcome.
    public mutating func reachability(_ connection: ServerConnection, reachable: Bool) -> [ServerAction] {
        guard var client = clients[connection], let login = pendingLogin.removeValue(forKey: connection)
        else {
            return []
        }
        var id = Self.highID(client.address)
        if reachable, id >= 1 << 24, highIDs[id] == nil {
            highIDs[id] = connection
        } else {
            repeat {
                id = nextLowID
                nextLowID = nextLowID % 0xFF_FFFF + 1
            } while lowIDs[id] != nil
            lowIDs[id] = connection
        }
        // Back after a restart: what the snapshot remembered of it gives way to its new offer.
        if let earlier = rememberedUsers[login.hash] { forget(earlier) }
        client.id = id
        client.userHash = login.hash
        client.port = login.port
        client.name = login.tags.string(Tag.fileName) ?? ""
        clients[connection] = client
        // TCP flags: compression, new tags, unicode, related search, integer type tags, large files.
        let flags: UInt32 = 0x01 | 0x08 | 0x10 | 0x40 | 0x80 | 0x100
        return [
            .send(connection, .serverMessage(configuration.message)),
            .send(connection, .idChange(clientID: id, flags: flags)),
            .send(connection, .status(users: UInt32(userCount), files: UInt32(fileCount))),
            .send(
                connection,
                .ident(
                    hash: hash, ip: Self.highID(endpoint.ip.bytes), port: endpoint.port,
                    tags: [
                        Tag(.id(0x01), .string(configuration.name)),
                        Tag(.id(0x0B), .string(configuration.description)),
                    ])),
        ]
    }

    /// A client's list replaces what it offered before (an empty list is a keep-alive).
    private mutating func offer(_ offered: [FileEntry], from connection: ServerConnection) -> [ServerAction] {
        guard offered.isEmpty == false else { return [] }
        let previous = clients[connection]?.files ?? []
        var now: Set<[UInt8]> = []
        for entry in offered.prefix(configuration.maxFilesPerUser) {
            guard entry.hash.count == 16, let name = entry.name, !name.isEmpty, let size = entry.size,
                size > 0
            else {
                continue
            }
            now.insert(entry.hash)
            // 0xFCFCFCFC:0xFCFC marks a file the client has only part of.
            let complete = !(entry.clientID == 0xFCFC_FCFC && entry.port == 0xFCFC)
            var file =
                files[entry.hash]
                ?? IndexedFile(name: name, size: size, type: entry.tags.string(Tag.fileType) ?? "")
            file.sources[connection] = complete
            files[entry.hash] = file
        }
        for hash in previous.subtracting(now) { dropSource(connection, of: hash) }
        clients[connection]?.files = now
        return []
    }

    private func sources(of hash: [UInt8], except requester: ServerConnection?) -> [(
        id: UInt32, port: UInt16
    )] {
        guard let file = files[hash] else { return [] }
        return file.sources.keys.sorted().filter { $0 != requester }.compactMap { connection in
            guard let client = clients[connection], let id = client.id else { return nil }
            return (id, client.port)
        }.prefix(configuration.maxSources).map { $0 }
    }

    private mutating func allow(_ connection: ServerConnection, now: Duration) -> Bool {
        guard var client = clients[connection] else { return false }
        client.requests = client.requests.filter { now - $0 < .seconds(60) }
        guard client.requests.count < configuration.requestsPerMinute else {
            clients[connection] = client
            return false
        }
        client.requests.append(now)
        clients[connection] = client
        return true
    }

    /// The files matching `expression`, as search results (at most `maxResults`).
    func search(_ expression: SearchExpression) -> ServerMessage {
        var results: [FileEntry] = []
        var more = false
        for (hash, file) in files.sorted(by: { $0.value.name < $1.value.name })
        where Self.matches(expression, file) {
            guard results.count < configuration.maxResults else {
                more = true
                break
            }
            guard let (connection, _) = file.sources.first(where: { clients[$0.key]?.id != nil }),
                let client = clients[connection], let id = client.id
            else { continue }
            var tags = [
                Tag(.id(Tag.fileName), .string(file.name)),
                Tag(.id(Tag.fileSize), .uint(file.size & 0xFFFF_FFFF)),
                Tag(.id(Tag.sources), .uint(UInt64(file.sources.count))),
                Tag(.id(Tag.completeSources), .uint(UInt64(file.sources.values.filter { $0 }.count))),
            ]
            if file.size > UInt64(UInt32.max) {
                tags.append(Tag(.id(Tag.fileSizeHigh), .uint(file.size >> 32)))
            }
            if !file.type.isEmpty { tags.append(Tag(.id(Tag.fileType), .string(file.type))) }
            results.append(FileEntry(hash: hash, clientID: id, port: client.port, tags: tags))
        }
        return .searchResults(results, more: more)
    }

    static func matches(_ expression: SearchExpression, _ file: IndexedFile) -> Bool {
        switch expression {
        case .and(let l, let r): return matches(l, file) && matches(r, file)
        case .or(let l, let r): return matches(l, file) || matches(r, file)
        case .not(let l, let r): return matches(l, file) && !matches(r, file)
        case .term(let word):
            let needle = word.lowercased()
            return !needle.isEmpty && file.name.lowercased().contains(needle)
        case .meta(let value, let tag):
            switch tag {
            case .id(Tag.fileType): return file.type.lowercased() == value.lowercased()
            case .id(Tag.fileFormat):
                return file.name.lowercased().hasSuffix("." + value.lowercased())
            default: return true
            }
        case .numeric(let value, let comparison, let tag):
            let actual: UInt64
            switch tag {
            case .id(Tag.fileSize): actual = file.size
            case .id(Tag.sources): actual = UInt64(file.sources.count)
            case .id(Tag.completeSources): actual = UInt64(file.sources.values.filter { $0 }.count)
            default: return true
            }
            switch comparison {
            case .equal: return actual == value
            case .greater: return actual > value
            case .less: return actual < value
            case .greaterOrEqual: return actual >= value
            case .lessOrEqual: return actual <= value
            case .notEqual: return actual != value
            }
        }
    }
}

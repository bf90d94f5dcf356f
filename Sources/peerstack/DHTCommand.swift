import ArgumentParser
import Bencode
import Crypto
import Foundation
import Kademlia
import MainlineDHT
import PeerNet

struct DHTCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dht",
        abstract: "Run or query a BitTorrent mainline DHT node (BEP 5, 42, 43, 44).",
        discussion: """
            Nodes bootstrap from --bootstrap host:port (repeatable) or the routing table saved by \
            an earlier run. Nothing is contacted unless named: '--bootstrap public' uses the \
            well-known public routers (\(PublicBootstrap.hosts.joined(separator: ", "))).
            """,
        subcommands: [DHTServe.self, DHTLookup.self, DHTPut.self, DHTGet.self]
    )
}

/// Options every `dht` verb shares.
struct DHTOptions: ParsableArguments {
    @Option(help: "UDP port to use (0: any free one).")
    var port: UInt16?

    @Option(help: "Address to bind (an IPv6 address runs an IPv6 node, BEP 32).")
    var listen = "0.0.0.0"

    @Option(help: "A node to bootstrap from, host:port (repeatable); 'public' for the public routers.")
    var bootstrap: [String] = []

    @Option(help: "Routing table file, kept across runs (default: ~/.peerstack/dht.table).")
    var table: String?

    @Flag(help: "Do not read or write the routing table file.")
    var noTable = false

    @Flag(help: "BEP 43 read-only node: ask, never answer (always so for lookup, put and get).")
    var readOnly = false

    @Flag(help: "Print JSON.")
    var json = false

    @Flag(help: "Log every datagram received (swift-log at trace level).")
    var verbose = false

    @OptionGroup var logging: LoggingOptions

    @Flag(help: "Keep nodes whose ID does not match their IP (BEP 42) out of the routing table.")
    var enforceSecureIDs = false

    /// What these options ask for, as a plain value (and logging set up as asked).
    var launcher: DHTLauncher {
        logging.bootstrap(floor: verbose ? .trace : nil)
        return DHTLauncher(
            port: port, listen: listen, bootstrap: bootstrap,
            table: noTable ? .none : table.map { .file($0) } ?? .standard, readOnly: readOnly,
            verbose: verbose,
            enforceSecureIDs: enforceSecureIDs)
    }

    /// Starts a node and joins the network (see ``DHTLauncher/startNode(defaultPort:shortLived:)``).
    func startNode(defaultPort: UInt16, shortLived: Bool = true) async throws -> DHTService {
        try await launcher.startNode(defaultPort: defaultPort, shortLived: shortLived)
    }

    static func parseTarget(_ text: String) throws -> NodeID {
        let lower = text.lowercased()
        let hex = lower.hasPrefix("magnet:") ? magnetHash(lower) ?? lower : lower
        guard hex.count == 40, let bytes = Hex.decode(hex), let id = NodeID(bytes: bytes) else {
            throw Terminal.badInput(text, "want 40 hex digits (an info-hash or a BEP 44 target)")
        }
        return id
    }

    private static func magnetHash(_ magnet: String) -> String? {
        guard let range = magnet.range(of: "urn:btih:") else { return nil }
        return String(magnet[range.upperBound...].prefix(40))
    }
}

/// How to start a DHT node for a command: shared by the `dht` verbs and `torrent get|seed`.
struct DHTLauncher {
    enum Table {
        case none
        case standard
        case file(String)
    }

    var port: UInt16?
    var listen = "0.0.0.0"
    var bootstrap: [String] = []
    var table = Table.standard
    var readOnly = false
    var verbose = false
    var enforceSecureIDs = false

    /// `~/.peerstack/dht.table` unless another file (or none) was asked for.
    var tablePath: String? {
        switch table {
        case .none: return nil
        case .file(let path): return path
        case .standard:
            let home = ProcessInfo.processInfo.environment["HOME"] ?? "."
            let directory = home + "/.peerstack"
            try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            return directory + "/dht.table"
        }
    }

    /// Starts a node and joins the network. A short-lived node (one `lookup`, `put` or `get`)
    /// is read-only (BEP 43: it would only leave a dead entry in others' tables) and fails,
    /// exit status 1, when nobody answered.
    func startNode(defaultPort: UInt16, shortLived: Bool) async throws -> DHTService {
        let requireContacts = shortLived
        var addresses: [Endpoint] = []
        for text in bootstrap {
            do {
                addresses += try await DHTService.resolve(text)
            } catch {
                throw Terminal.badInput("--bootstrap \(text)", "\(error)")
            }
        }
        var options = DHTServiceOptions()
        do {
            options.address = try IPAddress(parsing: listen)
        } catch {
            throw Terminal.badInput("--listen \(listen)", "\(error)")
        }
        options.port = port ?? defaultPort
        options.tableFile = tablePath
        // A node that lives for one command should not be put in others' tables (BEP 43).
        options.settings.readOnly = readOnly || shortLived
        options.settings.ipv6 = options.address.isIPv6

        options.settings.enforceSecureIDs = enforceSecureIDs
        let service: DHTService
        do {
            service = try await DHTService.start(options)
        } catch {
            Terminal.error("cannot listen on \(listen):\(options.port): \(error)")
            throw ExitCode(1)
        }
        let saved = await service.savedNodes
        if requireContacts && addresses.isEmpty && saved.isEmpty {
            await service.stop()
            throw Terminal.badInput("dht", "no --bootstrap node and no saved routing table")
        }
        guard shortLived else {
            // A long-lived node joins in the background: a download need not wait for it.
            service.startBootstrap(addresses + saved)
            return service
        }
        _ = await service.bootstrap(addresses + saved)
        if requireContacts, await service.routingTableSize == 0 {
            await service.stop()
            Terminal.error("no DHT node answered (\(addresses.count + saved.count) tried)")
            throw ExitCode(1)
        }
        return service
    }
}

enum Hex {
    static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        for index in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(
            decoding: bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }, as: UTF8.self)
    }

    private static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

struct DHTServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Run a DHT node until Ctrl-C, with a status line a minute.")

    @OptionGroup var dht: DHTOptions

    @Option(help: "Seconds between status lines.")
    var logInterval = 60

    func run() async throws {
        let service = try await dht.startNode(defaultPort: 6881, shortLived: false)
        await service.joined()
        Terminal.status(
            "DHT node \(await service.nodeID) on UDP port \(service.port); "
                + "\(await service.routingTableSize) contacts after bootstrap")
        let stop = AsyncStream<Void>.makeStream()
        let interrupts = Terminal.onInterrupt { stop.continuation.finish() }
        defer { interrupts.forEach { $0.cancel() } }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { for await _ in stop.stream {} }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(max(1, logInterval)))
                    if Task.isCancelled { break }
                    Terminal.status("\(await service.routingTableSize) contacts")
                }
            }
            await group.next()
            group.cancelAll()
        }
        Terminal.status("stopping")
        await service.stop()
    }
}

struct DHTLookup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lookup", abstract: "Find peers of a torrent (get_peers), and optionally announce.")

    @OptionGroup var dht: DHTOptions

    @Argument(help: "The info-hash (40 hex digits) or a magnet link.")
    var infoHash: String

    @Option(help: "Announce that we have the torrent on this TCP port (announce_peer).")
    var announce: Int?

    func run() async throws {
        let target = try DHTOptions.parseTarget(infoHash)
        let service = try await dht.startNode(defaultPort: 0)
        let port = announce.map { UInt16(clamping: $0) }
        let result = await service.run(.getPeers(target, announcePort: port, impliedPort: false))
        await service.stop()
        if dht.json {
            try printJSON(
                LookupJSON(
                    infoHash: target.hex, peers: result.peers.map(\.description), hops: result.hops,
                    queries: result.queries, failures: result.failures,
                    seconds: ProgressBar.seconds(result.elapsed),
                    announcedTo: result.stored, closest: result.closest.map(\.address.description)))
        } else {
            for peer in result.peers { print(peer) }
            Terminal.status(
                "\(result.peers.count) peers in \(String(format: "%.2f", ProgressBar.seconds(result.elapsed))) s, "
                    + "\(result.hops) hops, \(result.queries) queries (\(result.failures) unanswered)"
                    + (port != nil ? ", announced to \(result.stored) nodes" : ""))
        }
        if result.peers.isEmpty && port == nil { throw ExitCode(1) }
    }
}

/// Reads or creates the Ed25519 key of `--key FILE` (the 32-byte seed, hex).
func loadSigningKey(_ path: String) throws -> Curve25519.Signing.PrivateKey {
    if let data = FileManager.default.contents(atPath: path) {
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let seed = Hex.decode(text), seed.count == 32,
            let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        else { throw Terminal.badInput(path, "want an Ed25519 seed: 64 hex digits") }
        return key
    }
    let key = Curve25519.Signing.PrivateKey()
    guard
        FileManager.default.createFile(
            atPath: path, contents: Data((Hex.encode(Array(key.rawRepresentation)) + "\n").utf8),
            attributes: [.posixPermissions: 0o600])
    else { throw Terminal.badInput(path, "cannot write the new key") }
    return key
}

struct DHTPut: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "put",
        abstract: "Store a BEP 44 item: immutable, or mutable with --key (signed with Ed25519).",
        discussion: """
            The value is stored as a bencoded string unless --bencoded says it already is bencode. \
            With --key FILE (an Ed25519 seed in hex, created if missing) the item is mutable: its \
            target is SHA-1(public key + salt) and its sequence number is one more than the newest \
            found (or --seq).
            """)

    @OptionGroup var dht: DHTOptions

    @Argument(help: "The value.")
    var value: String

    @Flag(help: "The value is bencode already.")
    var bencoded = false

    @Option(help: "Ed25519 key file for a mutable item.")
    var key: String?

    @Option(help: "Salt of a mutable item.")
    var salt: String?

    @Option(help: "Sequence number of a mutable item (default: newest found + 1).")
    var seq: Int64?

    func run() async throws {
        let encoded = bencoded ? Array(value.utf8) : BencodeValue.string(value).encoded()
        if bencoded, (try? BencodeDecoder(mode: .lenient).decode(encoded)) == nil {
            throw Terminal.badInput(value, "not bencode")
        }
        guard encoded.count <= DHTItem.maxValueSize else {
            throw Terminal.badInput("value", "\(encoded.count) bytes bencoded; BEP 44 allows 1000")
        }
        let saltBytes = Array((salt ?? "").utf8)
        guard saltBytes.count <= DHTItem.maxSaltSize else {
            throw Terminal.badInput("--salt", "longer than 64 bytes")
        }
        let signer = try key.map(loadSigningKey)
        let service = try await dht.startNode(defaultPort: 0)
        let item: DHTItem
        if let signer {
            var next = seq
            if next == nil {
                let target = DHTItem.target(key: Array(signer.publicKey.rawRepresentation), salt: saltBytes)
                let current = await service.run(.get(target, salt: saltBytes))
                next = (current.item?.seq ?? 0) + 1
            }
            item = try DHTItem(mutable: encoded, seq: next ?? 1, salt: saltBytes, signer: signer)
        } else {
            item = DHTItem(immutable: encoded)
        }
        let result = await service.run(.put(item))
        await service.stop()
        if dht.json {
            try printJSON(
                ItemJSON(
                    target: item.target.hex, value: nil, bencoded: Hex.encode(item.value), seq: item.seq,
                    publicKey: item.key.map(Hex.encode), stored: result.stored))
        } else {
            print(item.target.hex)
            Terminal.status(
                "stored at \(result.stored) nodes" + (item.seq.map { ", seq \($0)" } ?? "")
                    + (item.key.map { ", public key \(Hex.encode($0))" } ?? ""))
        }
        if result.stored == 0 { throw ExitCode(1) }
    }
}

struct DHTGet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Read a BEP 44 item by its target (or a mutable one by --public-key).")

    @OptionGroup var dht: DHTOptions

    @Argument(help: "The target (40 hex digits); omit with --public-key.")
    var target: String?

    @Option(help: "Public key (64 hex digits) of a mutable item; the target is SHA-1(key + salt).")
    var publicKey: String?

    @Option(help: "Salt of a mutable item.")
    var salt: String?

    func run() async throws {
        let saltBytes = Array((salt ?? "").utf8)
        let id: NodeID
        if let publicKey {
            guard let key = Hex.decode(publicKey.lowercased()), key.count == 32 else {
                throw Terminal.badInput("--public-key", "want 64 hex digits")
            }
            id = DHTItem.target(key: key, salt: saltBytes)
        } else if let target {
            id = try DHTOptions.parseTarget(target)
        } else {
            throw Terminal.badInput("dht get", "give a target or --public-key")
        }
        let service = try await dht.startNode(defaultPort: 0)
        let result = await service.run(.get(id, salt: saltBytes))
        await service.stop()
        guard let item = result.item else {
            Terminal.error("no item under \(id.hex) (\(result.queries) queries)")
            throw ExitCode(1)
        }
        let decoded = try? BencodeDecoder(mode: .lenient).decode(item.value)
        let text = decoded?.string ?? String(decoding: item.value, as: UTF8.self)
        if dht.json {
            try printJSON(
                ItemJSON(
                    target: id.hex, value: text, bencoded: Hex.encode(item.value), seq: item.seq,
                    publicKey: item.key.map(Hex.encode), stored: nil))
        } else {
            print(text)
            if let seq = item.seq { Terminal.status("mutable item, seq \(seq)") }
        }
    }
}

struct LookupJSON: Codable {
    var infoHash: String
    var peers: [String]
    var hops: Int
    var queries: Int
    var failures: Int
    var seconds: Double
    var announcedTo: Int
    var closest: [String]
}

struct ItemJSON: Codable {
    var target: String
    var value: String?
    var bencoded: String
    var seq: Int64?
    var publicKey: String?
    var stored: Int?
}

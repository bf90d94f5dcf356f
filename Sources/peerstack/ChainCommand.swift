import ArgumentParser
import Blockchain
import Foundation
import PeerNet
import Synchronization
import SystemPackage

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

#if canImport(Glibc)
    import Glibc
#endif

struct ChainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chain",
        abstract: "A Bitcoin-format blockchain node (regtest): run one, mine, send, inspect.",
        discussion: """
            `chain node` runs a node; the other commands talk to it over its local JSON-RPC, as \
            bitcoin-cli does: the port and the cookie (<datadir>/.cookie) from --datadir, or --rpc \
            with --rpcuser/--rpcpassword. The RPC is Bitcoin Core's (JSON-RPC 1.0 and 2.0, Core's \
            methods and error codes), so tools written for bitcoind can drive it too; see \
            `peerstack chain node --help` for the methods and the rules on who may call them.
            """,
        subcommands: [ChainNode.self, ChainInfo.self, ChainMine.self, ChainWallet.self]
    )
}

/// Where a running node's RPC is and how to log in: `--rpc host:port` or the port the node
/// wrote into its data directory; the cookie it wrote there (`<datadir>/.cookie`), or
/// `--rpcuser`/`--rpcpassword` — as bitcoin-cli finds them.
struct RPCOptions: ParsableArguments {
    @Option(help: "The node's JSON-RPC address (default: read from the data directory).")
    var rpc: String?

    @Option(help: "The node's data directory (default: ~/.peerstack/chain-regtest).")
    var datadir: String?

    @Option(help: "JSON-RPC user name (default: the node's cookie).")
    var rpcuser: String?

    @Option(help: "JSON-RPC password (default: the node's cookie).")
    var rpcpassword: String?

    @Option(help: "The cookie file (default: <datadir>/.cookie).")
    var rpccookiefile: String?

    /// Calls `method` and returns its result; an error object from the node ends the command
    /// with its message.
    func call(_ method: String, _ params: [JSONValue] = []) async throws -> JSONValue {
        let directory = datadir ?? ChainNode.defaultDatadir
        let endpointText =
            rpc
            ?? (try? String(contentsOfFile: directory + "/rpc.port", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard let endpointText else {
            throw Terminal.badInput(
                "--rpc", "no node found (start one with `peerstack chain node`, or give --rpc)")
        }
        let target: Endpoint
        do {
            let parsed = try HostPort(parsing: endpointText)
            target = parsed.endpoint ?? Endpoint(ip: .loopbackV4, port: parsed.port)
        } catch {
            throw Terminal.badInput("--rpc", "\(error)")
        }
        guard target.ip.isLoopback else { throw Terminal.badInput("--rpc", "only a loopback address") }
        let user: String
        let password: String
        if let rpcuser, let rpcpassword {
            (user, password) = (rpcuser, rpcpassword)
        } else {
            let cookie = rpccookiefile ?? directory + "/.cookie"
            do {
                (user, password) = try RPCAccess.readCookie(cookie)
            } catch {
                throw Terminal.badInput(
                    cookie,
                    "cannot read the node's cookie (\(error)); is the node running? Or give --rpcuser and --rpcpassword"
                )
            }
        }
        let request = JSONRPCRequest(method: method, positional: params)
        do {
            return try await RPCClient.call(request, at: target, user: user, password: password)
        } catch let error as RPCError {
            throw Terminal.badInput(method, error.message)
        } catch {
            throw Terminal.badInput(endpointText, "\(error)")
        }
    }
}

/// A JSON-RPC client over Foundation's HTTP client (URLSession): POST with Basic credentials,
/// `Content-Type: application/json`, Core's reply envelope read back.
enum RPCClient {
    struct Failure: Error, CustomStringConvertible { let description: String }

    struct Reply: Decodable {
        let result: JSONValue?
        let error: RPCError?
    }

    static func call(_ request: JSONRPCRequest, at target: Endpoint, user: String, password: String)
        async throws -> JSONValue
    {
        guard let url = URL(string: "http://\(target)/") else {
            throw Failure(description: "bad address \(target)")
        }
        var http = URLRequest(url: url, timeoutInterval: 600)
        http.httpMethod = "POST"
        http.setValue("application/json", forHTTPHeaderField: "Content-Type")
        http.setValue(
            "Basic " + Data("\(user):\(password)".utf8).base64EncodedString(),
            forHTTPHeaderField: "Authorization")
        var body: [String: JSONValue] = [
            "jsonrpc": .string("1.0"), "id": .string("peerstack"), "method": .string(request.method),
            "params": .array(request.positional),
        ]
        if request.positional.isEmpty { body["params"] = .array([]) }
        http.httpBody = try JSONEncoder().encode(body)
        let data: Data
        let response: URLResponse
        do {
            (data, response) = try await URLSession.shared.data(for: http)
        } catch {
            throw Failure(
                description: "cannot reach the node (\(error.localizedDescription)); is it running?")
        }
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        if status == 401 { throw Failure(description: "the node refused the credentials (401)") }
        guard let reply = try? JSONDecoder().decode(Reply.self, from: data) else {
            throw Failure(
                description:
                    "HTTP \(status), not a JSON-RPC reply: \(String(decoding: data.prefix(200), as: UTF8.self))"
            )
        }
        if let error = reply.error { throw error }
        return reply.result ?? .null
    }
}

struct ChainNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a node: P2P on --port, JSON-RPC on --rpc, chain and wallet in --datadir.",
        discussion: """
            The JSON-RPC speaks Bitcoin Core's protocol (1.0 and 2.0, batches, Core's error \
            codes) to clients that log in: by default with the cookie the node writes to \
            <datadir>/.cookie at each start (mode 0600, removed at stop), or with --rpcuser and \
            --rpcpassword. Requests must be POSTs of application/json to a loopback Host, without \
            an Origin header, so web pages cannot call it. The node also writes \
            <datadir>/bitcoin.conf for clients such as python-bitcoinlib's \
            Proxy(btc_conf_file=...). Methods: \(RPCServer.methodNames.joined(separator: ", ")).
            """)

    static var defaultDatadir: String {
        (ProcessInfo.processInfo.environment["HOME"] ?? ".") + "/.peerstack/chain-regtest"
    }

    @Flag(help: "The regtest network (trivial difficulty); the only one this node runs.")
    var regtest = false

    @Option(help: "P2P port on 127.0.0.1 (0: any).")
    var port: UInt16 = 18444

    @Option(help: "A peer to keep connected to, host:port; repeat for more (as addnode).")
    var addnode: [String] = []

    @Option(help: "Same as --addnode.")
    var connect: [String] = []

    @Option(help: "Data directory (chain.sqlite, wallet.txt, peers.txt, .cookie, bitcoin.conf, rpc.port).")
    var datadir: String?

    @Option(help: "JSON-RPC address (loopback only; port 0: any).")
    var rpc = "127.0.0.1:18443"

    @Option(help: "JSON-RPC user name (with --rpcpassword, instead of the cookie).")
    var rpcuser: String?

    @Option(help: "JSON-RPC password (with --rpcuser).")
    var rpcpassword: String?

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        guard regtest else {
            throw Terminal.badInput(
                "network", "only --regtest is supported (this node never dials the public network)")
        }
        guard (rpcuser == nil) == (rpcpassword == nil) else {
            throw Terminal.badInput("--rpcuser", "give both --rpcuser and --rpcpassword, or neither")
        }
        let directory = datadir ?? Self.defaultDatadir
        try Self.makePrivateDirectory(directory)
        let rpcEndpoint: Endpoint
        do {
            let parsed = try HostPort(parsing: rpc)
            rpcEndpoint = parsed.endpoint ?? Endpoint(ip: .loopbackV4, port: parsed.port)
            guard parsed.host == "localhost" || parsed.endpoint?.ip.isLoopback == true else {
                throw Terminal.badInput("--rpc", "only a loopback address (127.0.0.1, ::1)")
            }
        } catch let error as AddressError {
            throw Terminal.badInput("--rpc", "\(error)")
        }
        let peers: [Endpoint]
        do {
            peers = try (addnode + connect).map {
                try Endpoint(
                    parsing: $0.hasPrefix("localhost:") ? "127.0.0.1" + $0.dropFirst(9) : $0,
                    defaultPort: ChainParameters.regtest.defaultPort)
            }
        } catch {
            throw Terminal.badInput("--addnode", "\(error)")
        }
        let node: BitcoinNode
        let wallet: Wallet
        do {
            let store = try SQLiteChainStore(path: directory + "/chain.sqlite")
            node = try BitcoinNode(
                parameters: .regtest, store: store, clock: { UInt32(Date().timeIntervalSince1970) },
                addressBookFile: directory + "/peers.txt")
            wallet = try Wallet(path: directory + "/wallet.txt", network: .regtest)
        } catch {
            throw Terminal.badInput(directory, "\(error)")
        }
        let access: RPCAccess
        if let rpcuser, let rpcpassword {
            access = RPCAccess(user: rpcuser, password: rpcpassword)
        } else {
            do {
                access = try RPCAccess.writeCookie(in: directory)
            } catch {
                throw Terminal.badInput(directory + "/.cookie", "cannot write the cookie: \(error)")
            }
        }
        let p2p = try await node.listen(on: Endpoint(ip: .loopbackV4, port: port))
        let server = RPCServer(node: node, wallet: wallet, access: access)
        let stop = AsyncStream<Void>.makeStream()
        server.onStop = { stop.continuation.yield() }
        // A store that fails (a full disk, an I/O error) stops the node: one line, exit status 1.
        let fatal = Mutex<String?>(nil)
        node.onFatal = { reason in
            fatal.withLock { $0 = reason }
            stop.continuation.yield()
        }
        let boundRPC = try await server.start(on: rpcEndpoint)
        let rpcHost = rpcEndpoint.ip.isIPv6 ? "[::1]" : "127.0.0.1"
        try SmallFile.writeAtomically(
            Array("\(rpcHost):\(boundRPC)\n".utf8), to: FilePath(directory + "/rpc.port"))
        try Self.writeClientConfiguration(
            directory: directory, host: rpcEndpoint.ip.description, port: boundRPC,
            credentials: rpcuser == nil ? try RPCAccess.readCookie(directory + "/.cookie") : nil)
        let height = await node.read { $0.chain.height }
        Terminal.status(
            "chain node (regtest): P2P 127.0.0.1:\(p2p), RPC \(rpcHost):\(boundRPC), height \(height), data \(directory)"
        )
        FileHandle.standardOutput.write(Data("p2p 127.0.0.1:\(p2p) rpc \(rpcHost):\(boundRPC)\n".utf8))
        for peer in peers { _ = await node.addNode(peer) }
        let signals = Terminal.onInterrupt { stop.continuation.yield() }
        let status = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(10))
                let line = await node.read { core in
                    "height \(core.chain.height), peers \(core.peers.values.filter(\.handshakeDone).count), mempool \(core.mempool.count)"
                }
                Terminal.status(line)
            }
        }
        for await _ in stop.stream { break }
        _ = signals
        status.cancel()
        await server.stop()
        await node.shutdown()
        access.removeCookie()
        if let reason = fatal.withLock({ $0 }) {
            Terminal.error("the chain store in \(directory) failed, stopping: \(reason)")
            throw ExitCode(1)
        }
        Terminal.status("chain node stopped")
    }

    /// Creates the data directory readable by its owner only (0700), as Core does; an existing
    /// one that others can read gets a warning (it is the user's to change).
    static func makePrivateDirectory(_ path: String) throws {
        let manager = FileManager.default
        if !manager.fileExists(atPath: path) {
            do {
                try manager.createDirectory(
                    atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw Terminal.badInput(path, "cannot create the data directory: \(error)")
            }
        } else if let mode = try? manager.attributesOfItem(atPath: path)[.posixPermissions] as? Int,
            mode & 0o077 != 0
        {
            Terminal.status(
                "warning: \(path) is readable by other users (mode \(String(mode, radix: 8))); chmod 700 it to keep the wallet private"
            )
        }
    }

    /// `<datadir>/bitcoin.conf` for JSON-RPC clients (python-bitcoinlib, bitcoin-cli -conf):
    /// where the RPC is and, with cookie authentication, this run's cookie (mode 0600, like the
    /// cookie itself).
    static func writeClientConfiguration(
        directory: String, host: String, port: Int, credentials: (user: String, password: String)?
    ) throws {
        var lines = [
            "# Written by `peerstack chain node` at each start for JSON-RPC clients; not read by the node.",
            "regtest=1", "[regtest]", "rpcconnect=\(host)", "rpcport=\(port)",
        ]
        if let credentials {
            lines += ["rpcuser=\(credentials.user)", "rpcpassword=\(credentials.password)"]
        }
        try SmallFile.writeAtomically(
            Array((lines.joined(separator: "\n") + "\n").utf8), to: FilePath(directory + "/bitcoin.conf"),
            permissions: .ownerReadWrite)
    }
}

struct ChainInfo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Network, height, best hash, peers, mempool size.")

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var options: RPCOptions

    struct Summary: Codable {
        let network: String
        let height: Int
        let headers: Int
        let best: String
        let peers: Int
        let mempool: Int
    }

    func run() async throws {
        let chain = try await options.call("getblockchaininfo")
        let peers = try await options.call("getconnectioncount")
        let mempool = try await options.call("getmempoolinfo")
        let summary = Summary(
            network: chain["chain"]?.stringValue ?? "?", height: chain["blocks"]?.intValue ?? 0,
            headers: chain["headers"]?.intValue ?? 0, best: chain["bestblockhash"]?.stringValue ?? "?",
            peers: peers.intValue ?? 0, mempool: mempool["size"]?.intValue ?? 0)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(summary), as: UTF8.self))
        } else {
            let rows: [(String, String)] = [
                ("network", summary.network), ("height", "\(summary.height)"),
                ("headers", "\(summary.headers)"),
                ("best", summary.best), ("peers", "\(summary.peers)"), ("mempool", "\(summary.mempool)"),
            ]
            for (key, value) in rows {
                print("\(key.padding(toLength: 8, withPad: " ", startingAt: 0)) \(value)")
            }
        }
    }
}

struct ChainMine: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mine",
        abstract: "Mine blocks on the node, paying its wallet (as bitcoin-cli -generate).")

    @Option(help: "How many blocks.")
    var blocks = 1

    @OptionGroup var options: RPCOptions

    func run() async throws {
        guard blocks >= 1, blocks <= 10_000 else { throw Terminal.badInput("--blocks", "1…10000") }
        let address = try await options.call("getnewaddress")
        let hashes = try await options.call("generatetoaddress", [.integer(Int64(blocks)), address])
        for hash in hashes.arrayValue ?? [] { print(hash.stringValue ?? "") }
    }
}

struct ChainWallet: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wallet",
        abstract: "The node's wallet: new, balance, unspent, send <address> <amount in BTC>.")

    @Argument(help: "new | balance | unspent | send")
    var action: String

    @Argument(help: "For send: the address and the amount in BTC.")
    var arguments: [String] = []

    @OptionGroup var options: RPCOptions

    func run() async throws {
        switch action {
        case "new", "address": print(try await options.call("getnewaddress").stringValue ?? "")
        case "balance":
            let balance = try await options.call("getbalance")
            let satoshis = (try? Amount.satoshis(balance.numberText ?? "0")) ?? 0
            print(Amount.text(satoshis) + " BTC")
        case "unspent":
            for coin in try await options.call("listunspent").arrayValue ?? [] {
                let amount = (try? Amount.satoshis(coin["amount"]?.numberText ?? "0")) ?? 0
                print(
                    "\(coin["txid"]?.stringValue ?? "?"):\(coin["vout"]?.intValue ?? 0) \(Amount.text(amount)) BTC, \(coin["confirmations"]?.intValue ?? 0) confirmations"
                )
            }
        case "send":
            guard arguments.count == 2 else {
                throw Terminal.badInput("send", "want <address> <amount in BTC>")
            }
            do {
                _ = try Amount.satoshis(arguments[1])
            } catch {
                throw Terminal.badInput("amount", "\(error)")
            }
            print(
                try await options.call("sendtoaddress", [.string(arguments[0]), .string(arguments[1])])
                    .stringValue ?? "")
        default:
            throw Terminal.badInput(action, "want new, balance, unspent or send")
        }
    }
}

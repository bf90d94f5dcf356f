import ArgumentParser
import Blockchain
import Foundation
import PeerNet

#if canImport(Glibc)
    import Glibc
#endif

struct ChainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chain",
        abstract: "A Bitcoin-format blockchain node (regtest): run one, mine, send, inspect.",
        discussion: """
            `chain node` runs a node; the other commands talk to it over its local JSON-RPC port \
            (--rpc, or the one the node wrote into --datadir), as bitcoin-cli does.
            """,
        subcommands: [ChainNode.self, ChainInfo.self, ChainMine.self, ChainWallet.self]
    )
}

/// Where a running node's RPC is: `--rpc host:port`, or `<datadir>/rpc.port`.
struct RPCOptions: ParsableArguments {
    @Option(help: "The node's JSON-RPC address (default: read from the data directory).")
    var rpc: String?

    @Option(help: "The node's data directory (default: ~/.peerstack/chain-regtest).")
    var datadir: String?

    func call(_ method: String, _ params: [Any] = []) throws -> Any {
        let directory = datadir ?? ChainNode.defaultDatadir
        let endpoint =
            rpc
            ?? (try? String(contentsOfFile: directory + "/rpc.port", encoding: .utf8))?
            .trimmingCharacters(in: .whitespacesAndNewlines)
        guard let endpoint else {
            throw Terminal.badInput(
                "--rpc", "no node found (start one with `peerstack chain node`, or give --rpc)")
        }
        let target: Endpoint
        do {
            target =
                try HostPort(parsing: endpoint).endpoint
                ?? Endpoint(ip: .loopbackV4, port: try HostPort(parsing: endpoint).port)
        } catch {
            throw Terminal.badInput("--rpc", "\(error)")
        }
        guard target.ip.isLoopback else { throw Terminal.badInput("--rpc", "only 127.0.0.1") }
        let body = try JSONSerialization.data(withJSONObject: ["method": method, "params": params, "id": 1])
        let response: Data
        do {
            response = try RPCClient.post(to: target, body: body)
        } catch {
            throw Terminal.badInput(endpoint, "\(error)")
        }
        guard let object = try? JSONSerialization.jsonObject(with: response) as? [String: Any] else {
            throw Terminal.badInput(endpoint, "not a JSON-RPC answer")
        }
        if let error = object["error"] as? [String: Any] {
            throw Terminal.badInput(method, error["message"] as? String ?? "error")
        }
        return object["result"] ?? NSNull()
    }
}

/// A blocking HTTP/1.1 POST over a loopback TCP socket (the node closes after answering).
enum RPCClient {
    struct Failure: Error, CustomStringConvertible { let description: String }

    static func post(to target: Endpoint, body: Data) throws -> Data {
        guard let ip = target.ip.v4 else { throw Failure(description: "not an IPv4 address: \(target)") }
        let host = target.ip.description
        let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard socket >= 0 else { throw Failure(description: "socket: \(errno)") }
        defer { close(socket) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = target.port.bigEndian
        address.sin_addr.s_addr = ip.bigEndian
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else { throw Failure(description: "cannot connect (is the node running?)") }
        let request =
            Data(
                "POST / HTTP/1.1\r\nHost: \(host)\r\nContent-Type: application/json\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n"
                    .utf8)
            + body
        _ = request.withUnsafeBytes { send(socket, $0.baseAddress, $0.count, 0) }
        var response = Data()
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let count = recv(socket, &chunk, chunk.count, 0)
            if count <= 0 { break }
            response.append(contentsOf: chunk[0..<count])
            if response.count > 64 << 20 { throw Failure(description: "answer too large") }
        }
        guard let split = response.range(of: Data("\r\n\r\n".utf8)) else {
            throw Failure(description: "no HTTP answer")
        }
        return response[split.upperBound...]
    }
}

struct ChainNode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run a node: P2P on --port, JSON-RPC on --rpc, chain and wallet in --datadir.")

    static var defaultDatadir: String {
        (ProcessInfo.processInfo.environment["HOME"] ?? ".") + "/.peerstack/chain-regtest"
    }

    @Flag(help: "The regtest network (trivial difficulty); the only one this node runs.")
    var regtest = false

    @Option(help: "P2P port on 127.0.0.1 (0: any).")
    var port = 18444

    @Option(help: "A peer to keep connected to, host:port; repeat for more.")
    var connect: [String] = []

    @Option(help: "Data directory (chain.sqlite, wallet.txt, rpc.port).")
    var datadir: String?

    @Option(help: "JSON-RPC address (127.0.0.1 only; port 0: any).")
    var rpc = "127.0.0.1:18443"

    @OptionGroup var logging: LoggingOptions

    func run() async throws {
        logging.bootstrap()
        guard regtest else {
            throw Terminal.badInput(
                "network", "only --regtest is supported (this node never dials the public network)")
        }
        let directory = datadir ?? Self.defaultDatadir
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let rpcEndpoint: Endpoint
        do {
            let parsed = try HostPort(parsing: rpc)
            rpcEndpoint = parsed.endpoint ?? Endpoint(ip: .loopbackV4, port: parsed.port)
            guard parsed.host == "localhost" || parsed.endpoint?.ip.isLoopback == true else {
                throw Terminal.badInput("--rpc", "only 127.0.0.1")
            }
        } catch let error as AddressError {
            throw Terminal.badInput("--rpc", "\(error)")
        }
        let peers: [Endpoint]
        do {
            peers = try connect.map {
                try Endpoint(parsing: $0.hasPrefix("localhost:") ? "127.0.0.1" + $0.dropFirst(9) : $0)
            }
        } catch {
            throw Terminal.badInput("--connect", "\(error)")
        }
        let node: BitcoinNode
        let wallet: Wallet
        do {
            let store = try SQLiteChainStore(path: directory + "/chain.sqlite")
            node = try BitcoinNode(
                parameters: .regtest, store: store, clock: { UInt32(Date().timeIntervalSince1970) })
            wallet = try Wallet(path: directory + "/wallet.txt", network: .regtest)
        } catch {
            throw Terminal.badInput(directory, "\(error)")
        }
        let p2p = try await node.listen(on: Endpoint(ip: .loopbackV4, port: UInt16(clamping: port)))
        let server = RPCServer(node: node, wallet: wallet)
        let boundRPC = try await server.start(on: rpcEndpoint)
        try Data("127.0.0.1:\(boundRPC)\n".utf8).write(
            to: URL(fileURLWithPath: directory + "/rpc.port"), options: .atomic)
        let height = await node.read { $0.chain.height }
        Terminal.status(
            "chain node (regtest): P2P 127.0.0.1:\(p2p), RPC 127.0.0.1:\(boundRPC), height \(height), data \(directory)"
        )
        FileHandle.standardOutput.write(Data("p2p 127.0.0.1:\(p2p) rpc 127.0.0.1:\(boundRPC)\n".utf8))
        for peer in peers {
            Task {
                while !Task.isCancelled {
                    let linked = await node.read { core in
                        core.peers.values.contains { $0.address == peer && !$0.inbound }
                    }
                    if !linked { try? await node.connect(to: peer) }
                    try? await Task.sleep(for: .seconds(2))
                }
            }
        }
        let stop = AsyncStream<Void>.makeStream()
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
        Terminal.status("chain node stopped")
    }
}

struct ChainInfo: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "info", abstract: "Height, best hash, peers, mempool size.")

    @Flag(help: "Print JSON.")
    var json = false

    @OptionGroup var options: RPCOptions

    func run() throws {
        let info = try options.call("getinfo") as? [String: String] ?? [:]
        if json {
            let data = try JSONSerialization.data(withJSONObject: info, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for key in ["network", "height", "best", "peers", "mempool"] {
                print("\(key.padding(toLength: 8, withPad: " ", startingAt: 0)) \(info[key] ?? "?")")
            }
        }
    }
}

struct ChainMine: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mine", abstract: "Mine blocks on the node, paying its wallet.")

    @Option(help: "How many blocks.")
    var blocks = 1

    @OptionGroup var options: RPCOptions

    func run() throws {
        let hashes = try options.call("generate", [blocks]) as? [String] ?? []
        for hash in hashes { print(hash) }
    }
}

struct ChainWallet: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wallet",
        abstract: "The node's wallet: new, address, balance, send <address> <amount in BTC>.")

    @Argument(help: "new | address | balance | send")
    var action: String

    @Argument(help: "For send: the address and the amount in BTC.")
    var arguments: [String] = []

    @OptionGroup var options: RPCOptions

    func run() throws {
        switch action {
        case "new": print(try options.call("getnewaddress") as? String ?? "")
        case "address": print(try options.call("getaddress") as? String ?? "")
        case "balance":
            let satoshis = (try options.call("getbalance") as? NSNumber)?.int64Value ?? 0
            print(String(format: "%lld.%08lld BTC", satoshis / 100_000_000, satoshis % 100_000_000))
        case "send":
            guard arguments.count == 2 else {
                throw Terminal.badInput("send", "want <address> <amount in BTC>")
            }
            print(try options.call("sendtoaddress", [arguments[0], arguments[1]]) as? String ?? "")
        default:
            throw Terminal.badInput(action, "want new, address, balance or send")
        }
    }
}

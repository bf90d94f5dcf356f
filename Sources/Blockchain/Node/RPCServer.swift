import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PeerNet

/// The node's local JSON-RPC over HTTP (as bitcoind's, on 127.0.0.1): `getinfo`,
/// `getnewaddress`, `getaddress`, `getbalance`, `sendtoaddress <address> <btc>`, `generate <n>`.
/// Requests are JSON objects `{"method", "params", "id"}`; answers `{"result", "error", "id"}`.
public final class RPCServer: @unchecked Sendable {
    let node: BitcoinNode
    let wallet: Wallet
    var channel: (any Channel)?

    public init(node: BitcoinNode, wallet: Wallet) {
        self.node = node
        self.wallet = wallet
    }

    /// Connection limits: at most 64 clients at once (the oldest closed for a new one), each
    /// request whole within 10 s with a body of at most 1 MiB, replies dropped past 4 MiB unread.
    public static let connections = TCPListener.Configuration(
        limits: ConnectionLimits(handshakeTimeout: nil, idleTimeout: .seconds(30), maxQueuedBytes: 4 << 20),
        admission: ConnectionLimiter.Configuration(maxConnections: 64, maxPerIP: nil, maxHandshaking: 64))
    public static let requests = HTTPRequestLimits(requestTimeout: .seconds(10), maxBodyBytes: 1 << 20)

    /// Listens on `endpoint` (on the node's event loop); returns the port.
    public func start(on endpoint: Endpoint) async throws -> Int {
        let listener = try await TCPListener.bind(
            on: endpoint, group: node.loop, configuration: Self.connections
        ) {
            [self] channel in
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(HTTPRequestGuard(limits: Self.requests))
            try channel.pipeline.syncOperations.addHandler(RPCHandler(server: self))
        }
        channel = listener.channel
        return Int(listener.localAddress?.port ?? endpoint.port)
    }

    public func stop() async { try? await channel?.close() }

    /// Runs one call; errors become the `error` member.
    public func call(_ method: String, _ params: [Any]) async -> (Any?, String?) {
        let wallet = self.wallet
        nonisolated(unsafe) let params = params
        switch method {
        case "getinfo":
            let info: [String: String] = await node.read { core in
                [
                    "height": "\(core.chain.height)", "best": core.chain.tip.hash.description,
                    "peers": "\(core.peers.values.filter(\.handshakeDone).count)",
                    "mempool": "\(core.mempool.count)",
                    "network": core.chain.parameters.name,
                ]
            }
            return (info, nil)
        case "getnewaddress", "getaddress":
            let result: Result<String, any Error> = await node.read { _ in
                Result { method == "getnewaddress" ? try wallet.newAddress() : try wallet.address() }
            }.mapError { $0 }
            return Self.unwrap(result)
        case "getbalance":
            let satoshis = await node.read { core in wallet.balance(chain: core.chain, mempool: core.mempool)
            }
            return (satoshis, nil)
        case "sendtoaddress":
            guard params.count >= 2, let address = params[0] as? String,
                let amount = Self.satoshis(params[1])
            else { return (nil, "sendtoaddress <address> <amount in BTC>") }
            let result: Result<String, any Error> = await node.perform { core in
                do {
                    let transaction = try wallet.pay(
                        address, amount: amount, chain: core.chain, mempool: core.mempool)
                    try core.mempool.accept(transaction, chain: core.chain)
                    let relay = core.announce(
                        Inventory(type: Inventory.tx, hash: transaction.txid), except: nil)
                    return (.success(transaction.txid.description), relay)
                } catch {
                    return (.failure(error), [])
                }
            }
            return Self.unwrap(result)
        case "generate":
            let count = (params.first as? Int) ?? Int(params.first as? String ?? "") ?? 1
            guard count >= 1, count <= 10_000 else { return (nil, "generate <1…10000>") }
            let result: Result<[String], any Error> = await node.perform { core in
                do {
                    let script = try Address(try wallet.address(), network: wallet.network).scriptPubKey
                    var hashes: [String] = []
                    var actions: [NodeAction] = []
                    for _ in 0..<count {
                        let (transactions, fees) = core.mempool.select()
                        let time = max(core.clock(), core.chain.medianTimePast(core.chain.tip) + 1)
                        let block = Miner.mine(
                            chain: core.chain, transactions: transactions, fees: fees, payTo: script,
                            time: time,
                            threads: ProcessInfo.processInfo.activeProcessorCount)
                        actions += core.receive(block, from: nil)
                        hashes.append(block.hash.description)
                    }
                    return (.success(hashes), actions)
                } catch {
                    return (.failure(error), [])
                }
            }
            return Self.unwrap(result)
        default:
            return (nil, "unknown method '\(method)'")
        }
    }

    static func unwrap<T>(_ result: Result<T, any Error>) -> (Any?, String?) {
        switch result {
        case .success(let value): return (value, nil)
        case .failure(let error): return (nil, "\(error)")
        }
    }

    /// BTC as a number or a decimal string, to satoshis (more than zero).
    static func satoshis(_ value: Any) -> Int64? {
        let text = (value as? String) ?? (value as? NSNumber).map { "\($0)" } ?? ""
        guard let amount = try? Amount.satoshis(text), amount > 0 else { return nil }
        return amount
    }
}

final class RPCHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let server: RPCServer
    var body: [UInt8] = []

    init(server: RPCServer) { self.server = server }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: body = []
        case .body(var buffer):
            // Bounded by the HTTPRequestGuard before this handler.
            body += buffer.readBytes(length: buffer.readableBytes) ?? []
        case .end:
            let request = body
            let channel = context.channel
            let server = self.server
            Task {
                var id: Any = NSNull()
                var answer: [String: Any] = ["result": NSNull(), "error": NSNull()]
                if let object = try? JSONSerialization.jsonObject(with: Data(request)) as? [String: Any],
                    let method = object["method"] as? String
                {
                    id = object["id"] ?? NSNull()
                    let (result, error) = await server.call(method, object["params"] as? [Any] ?? [])
                    answer["result"] = result ?? NSNull()
                    answer["error"] = error.map { ["message": $0] } ?? NSNull()
                } else {
                    answer["error"] = ["message": "not a JSON-RPC request"]
                }
                answer["id"] = id
                let data = (try? JSONSerialization.data(withJSONObject: answer)) ?? Data()
                var head = HTTPResponseHead(version: .http1_1, status: .ok)
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: "\(data.count)")
                head.headers.add(name: "Connection", value: "close")
                channel.write(HTTPServerResponsePart.head(head), promise: nil)
                channel.write(
                    HTTPServerResponsePart.body(.byteBuffer(channel.allocator.buffer(bytes: data))),
                    promise: nil)
                channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
                    channel.close(promise: nil)
                }
            }
        }
    }
}

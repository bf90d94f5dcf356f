import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import PeerNet

/// The node's JSON-RPC over HTTP, as Bitcoin Core serves it on 127.0.0.1, so that existing
/// tools work unchanged: JSON-RPC 1.0 and 2.0, batches, Core's error objects and HTTP statuses,
/// HTTP Basic authentication by cookie or user and password (``RPCAccess``), keep-alive.
/// Methods: `getblockchaininfo`, `getblockcount`, `getbestblockhash`, `getblockhash`,
/// `getblock`, `getblockheader`, `getrawtransaction`, `sendrawtransaction`,
/// `decoderawtransaction`, `getmempoolinfo`, `getrawmempool`, `getpeerinfo`, `getnetworkinfo`,
/// `addnode`, `getnewaddress`, `getbalance`, `listunspent`, `sendtoaddress`,
/// `generatetoaddress`, `stop`; `help` lists them.
public final class RPCServer: @unchecked Sendable {
    let node: BitcoinNode
    let wallet: Wallet
    public let access: RPCAccess
    var channel: (any Channel)?
    /// Called once when a client calls `stop` (the command then shuts the node down).
    public var onStop: (@Sendable () -> Void)?

    public init(node: BitcoinNode, wallet: Wallet, access: RPCAccess) {
        self.node = node
        self.wallet = wallet
        self.access = access
    }

    /// Connection limits: at most 64 clients at once (the oldest closed for a new one), each
    /// request whole within 10 s with a body of at most 1 MiB, replies dropped past 64 MiB unread
    /// (a verbose `getblock` of a full block is a few MiB).
    public static let connections = TCPListener.Configuration(
        limits: ConnectionLimits(handshakeTimeout: nil, idleTimeout: .seconds(60), maxQueuedBytes: 64 << 20),
        admission: ConnectionLimiter.Configuration(maxConnections: 64, maxPerIP: nil, maxHandshaking: 64))
    public static let requests = HTTPRequestLimits(requestTimeout: .seconds(10), maxBodyBytes: 1 << 20)

    /// Listens on `endpoint` (on the node's event loop); returns the port.
    public func start(on endpoint: Endpoint) async throws -> Int {
        let listener = try await TCPListener.bind(
            on: endpoint, group: node.loop, configuration: Self.connections
        ) {
            [self] channel in
            try channel.pipeline.syncOperations.addHandler(HTTPLingeringClose())
            try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
            try channel.pipeline.syncOperations.addHandler(HTTPRequestGuard(limits: Self.requests))
            try channel.pipeline.syncOperations.addHandler(RPCHandler(server: self))
        }
        channel = listener.channel
        return Int(listener.localAddress?.port ?? endpoint.port)
    }

    public func stop() async { try? await channel?.close() }

    /// Answers a whole body: the reply bytes and the HTTP status (nil body: 204).
    func answer(_ body: [UInt8]) async -> (status: Int, body: Data?) {
        let parsed: JSONRPC.Body
        do {
            parsed = try JSONRPC.parse(body)
        } catch {
            let outcome: Result<Data, RPCError> = .failure(error)
            return (
                JSONRPC.status(for: outcome, version: .v1), JSONRPC.reply(outcome, id: .null, version: .v1)
            )
        }
        switch parsed {
        case .single(let request):
            let outcome = await call(request)
            guard request.version == .v1 || request.id != nil else { return (204, nil) }
            return (
                JSONRPC.status(for: outcome, version: request.version),
                JSONRPC.reply(outcome, id: request.id, version: request.version)
            )
        case .batch(let items):
            var replies: [Data] = []
            for item in items {
                switch item {
                case .success(let request):
                    let outcome = await call(request)
                    if request.version == .v2 && request.id == nil { continue }
                    replies.append(JSONRPC.reply(outcome, id: request.id, version: request.version))
                case .failure(let error):
                    replies.append(JSONRPC.reply(.failure(error), id: .null, version: .v1))
                }
            }
            return (200, Data("[".utf8) + Data(replies.joined(separator: Data(",".utf8))) + Data("]".utf8))
        }
    }

    /// One call: the method's result as JSON, or Core's error object.
    public func call(_ request: JSONRPCRequest) async -> Result<Data, RPCError> {
        do {
            let result = try await dispatch(request)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.withoutEscapingSlashes]
            do {
                return .success(try encoder.encode(result))
            } catch {
                return .failure(RPCError(RPCError.internalError, "cannot encode the result: \(error)"))
            }
        } catch let error as RPCError {
            return .failure(error)
        } catch {
            return .failure(RPCError(RPCError.miscError, "\(error)"))
        }
    }

    static let methods: [String: [String]] = [
        "getblockchaininfo": [], "getblockcount": [], "getbestblockhash": [], "getblockhash": ["height"],
        "getblock": ["blockhash", "verbosity"], "getblockheader": ["blockhash", "verbose"],
        "getrawtransaction": ["txid", "verbose", "blockhash"],
        "sendrawtransaction": ["hexstring", "maxfeerate"],
        "decoderawtransaction": ["hexstring", "iswitness"], "getmempoolinfo": [],
        "getrawmempool": ["verbose"],
        "getpeerinfo": [], "getnetworkinfo": [], "addnode": ["node", "command"],
        "getnewaddress": ["label", "address_type"],
        "getbalance": ["dummy", "minconf", "include_watchonly", "avoid_reuse"],
        "listunspent": ["minconf", "maxconf"],
        "sendtoaddress": [
            "address", "amount", "comment", "comment_to", "subtractfeefromamount", "replaceable",
            "conf_target",
            "estimate_mode", "avoid_reuse", "fee_rate", "verbose",
        ],
        "generatetoaddress": ["nblocks", "address", "maxtries"], "stop": [], "help": ["command"],
        "getconnectioncount": [], "getbalances": [], "submitblock": ["hexdata", "dummy"],
    ]

    /// The methods served, sorted.
    public static var methodNames: [String] { methods.keys.sorted() }

    func dispatch(_ request: JSONRPCRequest) async throws -> any Encodable & Sendable {
        guard let names = Self.methods[request.method] else {
            throw RPCError(RPCError.methodNotFound, "Method not found")
        }
        let params = try RPCParameters(request, names: names)
        let network = node.parameters.prefixes
        switch request.method {
        case "help":
            return Self.methods.keys.sorted().joined(separator: "\n")
        case "getblockcount":
            return await node.read { $0.chain.height }
        case "getbestblockhash":
            return await node.read { $0.chain.tip.hash.description }
        case "getconnectioncount":
            return await node.read { core in core.peers.values.filter(\.handshakeDone).count }
        case "getblockchaininfo":
            return await node.read { core in Self.blockchainInfo(core) }
        case "getblockhash":
            let height = try params.requiredInt(0)
            let hash = await node.read { core in
                height >= 0 && height <= core.chain.height ? core.chain.active[height].hash.description : nil
            }
            guard let hash else { throw RPCError(RPCError.invalidParameter, "Block height out of range") }
            return hash
        case "getblockheader":
            let hash = try params.requiredHash(0)
            let verbose = try params.bool(1) ?? true
            let result: Result<RPCFormats.HeaderInfo, RPCError> = await node.read { core in
                guard let entry = core.chain.entry(hash) else {
                    return .failure(RPCError(RPCError.invalidAddressOrKey, "Block not found"))
                }
                return .success(Self.headerInfo(entry, core: core, transactions: nil))
            }
            let info = try result.get()
            if verbose { return info }
            return await node.read { core in Hex.encode(core.chain.entry(hash)?.header.serialized() ?? []) }
        case "getblock":
            let hash = try params.requiredHash(0)
            let verbosity: Int
            switch params.value(1) {
            case .bool(let flag)?: verbosity = flag ? 1 : 0
            case nil: verbosity = 1
            default: verbosity = try params.requiredInt(1)
            }
            let found: (Block, RPCFormats.HeaderInfo)? = await node.read { core in
                guard let entry = core.chain.entry(hash), entry.hasData, let block = core.chain.block(hash)
                else {
                    return nil
                }
                return (block, Self.headerInfo(entry, core: core, transactions: block.transactions.count))
            }
            guard let (block, header) = found else {
                throw RPCError(RPCError.invalidAddressOrKey, "Block not found")
            }
            if verbosity <= 0 { return Hex.encode(block.serialized()) }
            let stripped = block.transactions.reduce(80 + 9) { $0 + $1.serialized(witness: false).count }
            let size = block.serialized().count
            return RPCFormats.BlockInfo(
                header: header, size: size, strippedsize: stripped,
                weight: block.transactions.reduce(320) { $0 + $1.weight },
                tx: verbosity == 1
                    ? .ids(block.transactions.map(\.txid.description))
                    : .decoded(
                        block.transactions.map { RPCFormats.transaction($0, network: network, hex: true) }))
        case "getrawtransaction":
            let txid = try params.requiredHash(0)
            let verbose = try params.bool(1) ?? false
            let inBlock = try params.hash(2)
            let found: (Transaction, BlockIndexEntry?)? = await node.read { core in
                Self.findTransaction(txid, in: inBlock, core: core)
            }
            guard let (transaction, entry) = found else {
                throw RPCError(
                    RPCError.invalidAddressOrKey,
                    inBlock == nil
                        ? "No such mempool or blockchain transaction"
                        : "No such transaction found in the provided block")
            }
            if !verbose { return Hex.encode(transaction.serialized()) }
            var info = RPCFormats.transaction(transaction, network: network, hex: true)
            if let entry {
                let tipHeight = await node.read { $0.chain.height }
                info.blockhash = entry.hash.description
                info.confirmations = tipHeight - entry.height + 1
                info.time = entry.header.time
                info.blocktime = entry.header.time
            }
            return info
        case "decoderawtransaction":
            return RPCFormats.transaction(
                try Self.decodeTransaction(try params.requiredString(0)), network: network, hex: false)
        case "sendrawtransaction":
            let transaction = try Self.decodeTransaction(try params.requiredString(0))
            let now = node.clock()
            let result: Result<String, RPCError> = await node.perform { core in
                Self.submit(transaction, core: core, now: now)
            }
            return try result.get()
        case "getmempoolinfo":
            return await node.read { core in
                MempoolInfo(
                    loaded: true, size: core.mempool.count, bytes: core.mempool.bytes,
                    usage: core.mempool.bytes,
                    totalFee: RPCFormats.btc(core.mempool.totalFees),
                    maxmempool: core.mempool.policy.maxBytes,
                    mempoolminfee: RPCFormats.btc(core.mempool.minimumFeeRate),
                    minrelaytxfee: RPCFormats.btc(core.mempool.minimumFeeRate), unbroadcastcount: 0)
            }
        case "getrawmempool":
            let verbose = try params.bool(0) ?? false
            if !verbose {
                return await node.read { core in core.mempool.entries.keys.sorted().map(\.description) }
            }
            return await node.read { core in
                Dictionary(
                    uniqueKeysWithValues: core.mempool.entries.values.map { entry in
                        (entry.txid.description, Self.mempoolEntryInfo(entry, core: core))
                    })
            }
        case "getpeerinfo":
            return await node.read { core in
                core.peers.values.sorted { $0.id < $1.id }.map { peer in
                    PeerDetails(
                        id: peer.id, addr: peer.address.description,
                        network: peer.address.isIPv6 ? "ipv6" : "ipv4",
                        services: String(format: "%016llx", peer.version?.services ?? 0),
                        version: Int(peer.version?.version ?? 0), subver: peer.version?.userAgent ?? "",
                        inbound: peer.inbound, startingheight: Int(peer.version?.startHeight ?? -1),
                        connectionType: peer.inbound ? "inbound" : "manual",
                        handshakeDone: peer.handshakeDone)
                }
            }
        case "getnetworkinfo":
            return await node.read { core in
                let live = core.peers.values.filter(\.handshakeDone)
                return NetworkInfo(
                    version: 100, subversion: core.userAgent, protocolversion: 70016,
                    localservices: String(format: "%016llx", NodeCore.services),
                    localservicesnames: ["NETWORK", "WITNESS"], localrelay: true, timeoffset: 0,
                    networkactive: true, connections: live.count,
                    connectionsIn: live.filter(\.inbound).count,
                    connectionsOut: live.filter { !$0.inbound }.count,
                    relayfee: RPCFormats.btc(core.mempool.minimumFeeRate),
                    incrementalfee: RPCFormats.btc(1_000), warnings: "")
            }
        case "addnode":
            let text = try params.requiredString(0)
            let command = try params.requiredString(1)
            let endpoint: Endpoint
            do {
                endpoint = try Endpoint(parsing: text, defaultPort: UInt16(node.parameters.defaultPort))
            } catch {
                throw RPCError(RPCError.invalidParameter, "node: \(error)")
            }
            switch command {
            case "add":
                guard await node.addNode(endpoint) else {
                    throw RPCError(-23, "Error: Node already added")
                }
            case "remove":
                guard await node.removeNode(endpoint) else {
                    throw RPCError(-24, "Error: Node could not be removed. It has not been added previously.")
                }
            case "onetry":
                node.connectOnce(endpoint)
            default:
                throw RPCError(RPCError.invalidParameter, "command must be 'add', 'remove' or 'onetry'")
            }
            return JSONValue.null
        case "getnewaddress":
            let wallet = self.wallet
            let result: Result<String, WalletError> = await node.read { _ in
                Result { () throws(WalletError) -> String in try wallet.newAddress() }
            }
            return try result.mapError { RPCError(RPCError.walletError, "\($0)") }.get()
        case "getbalance":
            let wallet = self.wallet
            return await node.read { core in
                RPCFormats.btc(wallet.balance(chain: core.chain, mempool: core.mempool))
            }
        case "getbalances":
            let wallet = self.wallet
            return await node.read { core in
                let balances = wallet.balances(chain: core.chain, mempool: core.mempool)
                return [
                    "mine": [
                        "trusted": RPCFormats.btc(balances.trusted),
                        "untrusted_pending": RPCFormats.btc(balances.untrustedPending),
                        "immature": RPCFormats.btc(balances.immature),
                    ]
                ]
            }
        case "listunspent":
            let minimum = try params.int(0) ?? 1
            let maximum = try params.int(1) ?? 9_999_999
            let wallet = self.wallet
            return await node.read { core in
                wallet.coins(chain: core.chain, mempool: core.mempool).compactMap {
                    outpoint, coin -> Unspent? in
                    let confirmations = core.chain.height - coin.height + 1
                    guard confirmations >= minimum, confirmations <= maximum else { return nil }
                    return Unspent(
                        txid: outpoint.txid.description, vout: outpoint.index,
                        address: RPCFormats.classify(coin.output.scriptPubKey, network: network).address
                            ?? "",
                        scriptPubKey: Hex.encode(coin.output.scriptPubKey),
                        amount: RPCFormats.btc(coin.output.value),
                        confirmations: confirmations, spendable: true, solvable: true, safe: true)
                }
            }
        case "sendtoaddress":
            let address = try params.requiredString(0)
            guard let amount = try params.amount(1) else { throw params.missing(1) }
            guard amount > 0 else { throw RPCError(RPCError.typeError, "Invalid amount for send") }
            if try params.bool(4) == true {
                throw RPCError(
                    RPCError.invalidParameter, "subtractfeefromamount is not supported by this wallet")
            }
            do {
                _ = try Address(address, network: network)
            } catch {
                throw RPCError(RPCError.invalidAddressOrKey, "Invalid address: \(error)")
            }
            // Core's fee_rate argument: satoshis per virtual byte (whole ones here).
            let feeRate = try params.int(9).map(Int64.init) ?? Wallet.defaultFeeRate
            guard (1...10_000).contains(feeRate) else {
                throw RPCError(RPCError.invalidParameter, "fee_rate must be 1 to 10000 sat/vB")
            }
            let wallet = self.wallet
            let now = node.clock()
            let result: Result<String, RPCError> = await node.perform { core in
                let transaction: Transaction
                do {
                    transaction = try wallet.pay(
                        address, amount: amount, feeRate: feeRate, chain: core.chain, mempool: core.mempool)
                } catch {
                    return (.failure(RPCError(RPCError.insufficientFunds, "\(error)")), [])
                }
                return Self.submit(transaction, core: core, now: now)
            }
            return try result.get()
        case "generatetoaddress":
            let count = try params.requiredInt(0)
            let address = try params.requiredString(1)
            guard count >= 0, count <= 10_000 else {
                throw RPCError(RPCError.invalidParameter, "nblocks must be between 0 and 10000")
            }
            let script: [UInt8]
            do {
                script = try Address(address, network: network).scriptPubKey
            } catch {
                throw RPCError(RPCError.invalidAddressOrKey, "Error: Invalid address")
            }
            return try await node.generate(count, to: script).map(\.description)
        case "submitblock":
            let hex = try params.requiredString(0)
            guard hex.utf8.count <= 2 * P2PCodec.maxPayload, let bytes = Hex.decode(hex),
                let block = try? Block(bytes: bytes)
            else { throw RPCError(RPCError.deserializationError, "Block decode failed") }
            let now = node.clock()
            let outcome: BlockOutcome = await node.perform { core in core.submit(block, now: now) }
            // BIP 22: null when accepted, else a reason.
            switch outcome {
            case .tipChanged: return JSONValue.null
            case .duplicate: return "duplicate"
            case .sideBranch: return "inconclusive"
            case .orphan: return "prev-blk-not-found"
            case .invalid(let error):
                if case .block(let reason) = error { return reason }
                return "\(error)"
            case .storeFailed(let reason):
                throw RPCError(RPCError.miscError, "the chain store failed: \(reason)")
            }
        case "stop":
            let onStop = self.onStop
            node.loop.scheduleTask(in: .milliseconds(100)) { onStop?() }
            return "PeerStack server stopping"
        default:
            throw RPCError(RPCError.methodNotFound, "Method not found")
        }
    }

    // MARK: Helpers (on the node's loop)

    static func decodeTransaction(_ hex: String) throws(RPCError) -> Transaction {
        guard hex.utf8.count <= 2 * Transaction.maxSize, let bytes = Hex.decode(hex),
            let transaction = try? Transaction(bytes: bytes)
        else { throw RPCError(RPCError.deserializationError, "TX decode failed") }
        return transaction
    }

    /// Our own transaction into the pool and out to every peer, with Core's error codes.
    static func submit(_ transaction: Transaction, core: NodeCore, now: UInt32) -> (
        Result<String, RPCError>, [NodeAction]
    ) {
        let txid = transaction.txid
        if core.mempool.contains(txid) { return (.success(txid.description), []) }
        for index in transaction.outputs.indices
        where core.chain.coin(OutPoint(txid: txid, index: UInt32(index))) != nil {
            return (
                .failure(RPCError(RPCError.verifyAlreadyInChain, "Transaction already in block chain")), []
            )
        }
        do {
            try core.mempool.accept(transaction, chain: core.chain, now: now)
        } catch {
            let code =
                "\(error)".contains("bad-txns-inputs-missingorspent")
                ? RPCError.verifyError : RPCError.verifyRejected
            return (.failure(RPCError(code, "\(error)")), [])
        }
        return (
            .success(txid.description), core.announce(Inventory(type: Inventory.tx, hash: txid), except: nil)
        )
    }

    static func findTransaction(_ txid: Hash256, in blockHash: Hash256?, core: NodeCore) -> (
        Transaction, BlockIndexEntry?
    )? {
        if blockHash == nil, let transaction = core.mempool.transaction(txid) { return (transaction, nil) }
        // No transaction index: the given block, else the best chain from the tip down.
        let candidates: [BlockIndexEntry] =
            blockHash.map { hash in core.chain.entry(hash).map { [$0] } ?? [] }
            ?? core.chain.active.reversed()
        for entry in candidates {
            guard let block = core.chain.block(entry.hash) else { continue }
            if let transaction = block.transactions.first(where: { $0.txid == txid }) {
                return (transaction, entry)
            }
        }
        return nil
    }

    static func headerInfo(_ entry: BlockIndexEntry, core: NodeCore, transactions: Int?)
        -> RPCFormats.HeaderInfo
    {
        let chain = core.chain
        let active = chain.isActive(entry)
        let next =
            active && entry.height < chain.height ? chain.active[entry.height + 1].hash.description : nil
        return RPCFormats.HeaderInfo(
            hash: entry.hash.description, confirmations: active ? chain.height - entry.height + 1 : -1,
            height: entry.height, version: entry.header.version,
            versionHex: String(format: "%08x", UInt32(bitPattern: entry.header.version)),
            merkleroot: entry.header.merkleRoot.description, time: entry.header.time,
            mediantime: chain.medianTimePast(entry), nonce: entry.header.nonce,
            bits: String(format: "%08x", entry.header.bits),
            difficulty: RPCFormats.difficulty(bits: entry.header.bits),
            chainwork: entry.chainWork.description, nTx: transactions,
            previousblockhash: entry.parent?.hash.description, nextblockhash: next)
    }

    static func blockchainInfo(_ core: NodeCore) -> BlockchainInfo {
        let chain = core.chain
        let tip = chain.tip
        let best = chain.bestHeaderHeight
        return BlockchainInfo(
            chain: chain.parameters.name, blocks: chain.height, headers: best,
            bestblockhash: tip.hash.description, difficulty: RPCFormats.difficulty(bits: tip.header.bits),
            time: tip.header.time, mediantime: chain.medianTimePast(tip),
            verificationprogress: best > 0 ? Double(chain.height) / Double(best) : 1,
            initialblockdownload: chain.height < best, chainwork: tip.chainWork.description, sizeOnDisk: 0,
            pruned: false, warnings: "")
    }

    static func mempoolEntryInfo(_ entry: MempoolEntry, core: NodeCore) -> MempoolEntryInfo {
        let ancestors = core.mempool.ancestors(ofParents: entry.parents, limit: Int.max) ?? []
        let ancestorSize = ancestors.reduce(entry.virtualSize) {
            $0 + (core.mempool.entries[$1]?.virtualSize ?? 0)
        }
        let ancestorFees = ancestors.reduce(entry.fee) { $0 + (core.mempool.entries[$1]?.fee ?? 0) }
        return MempoolEntryInfo(
            vsize: entry.virtualSize, weight: entry.transaction.weight, time: entry.time,
            height: core.chain.height,
            descendantcount: entry.descendantCount, descendantsize: entry.descendantSize,
            ancestorcount: ancestors.count + 1, ancestorsize: ancestorSize,
            wtxid: entry.transaction.wtxid.description,
            fees: .init(
                base: RPCFormats.btc(entry.fee), modified: RPCFormats.btc(entry.fee),
                ancestor: RPCFormats.btc(ancestorFees), descendant: RPCFormats.btc(entry.descendantFees)),
            depends: entry.parents.sorted().map(\.description),
            spentby: entry.children.sorted().map(\.description),
            bip125Replaceable: false, unbroadcast: false)
    }

    // MARK: Result types (Core's field names)

    struct BlockchainInfo: Codable, Sendable {
        let chain: String
        let blocks: Int
        let headers: Int
        let bestblockhash: String
        let difficulty: Double
        let time: UInt32
        let mediantime: UInt32
        let verificationprogress: Double
        let initialblockdownload: Bool
        let chainwork: String
        let sizeOnDisk: Int
        let pruned: Bool
        let warnings: String

        enum CodingKeys: String, CodingKey {
            case chain
            case blocks
            case headers
            case bestblockhash
            case difficulty
            case time
            case mediantime
            case verificationprogress
            case initialblockdownload
            case chainwork
            case sizeOnDisk = "size_on_disk"
            case pruned
            case warnings
        }
    }

    struct MempoolInfo: Codable, Sendable {
        let loaded: Bool
        let size: Int
        let bytes: Int
        let usage: Int
        let totalFee: Decimal
        let maxmempool: Int
        let mempoolminfee: Decimal
        let minrelaytxfee: Decimal
        let unbroadcastcount: Int

        enum CodingKeys: String, CodingKey {
            case loaded
            case size
            case bytes
            case usage
            case totalFee = "total_fee"
            case maxmempool
            case mempoolminfee
            case minrelaytxfee
            case unbroadcastcount
        }
    }

    struct MempoolEntryInfo: Codable, Sendable {
        struct Fees: Codable, Sendable {
            let base: Decimal
            let modified: Decimal
            let ancestor: Decimal
            let descendant: Decimal
        }
        let vsize: Int
        let weight: Int
        let time: UInt32
        let height: Int
        let descendantcount: Int
        let descendantsize: Int
        let ancestorcount: Int
        let ancestorsize: Int
        let wtxid: String
        let fees: Fees
        let depends: [String]
        let spentby: [String]
        let bip125Replaceable: Bool
        let unbroadcast: Bool

        enum CodingKeys: String, CodingKey {
            case vsize
            case weight
            case time
            case height
            case descendantcount
            case descendantsize
            case ancestorcount
            case ancestorsize
            case wtxid
            case fees
            case depends
            case spentby
            case bip125Replaceable = "bip125_replaceable"
            case unbroadcast
        }
    }

    struct PeerDetails: Codable, Sendable {
        let id: Int
        let addr: String
        let network: String
        let services: String
        let version: Int
        let subver: String
        let inbound: Bool
        let startingheight: Int
        let connectionType: String
        let handshakeDone: Bool

        enum CodingKeys: String, CodingKey {
            case id
            case addr
            case network
            case services
            case version
            case subver
            case inbound
            case startingheight
            case connectionType = "connection_type"
            case handshakeDone = "handshake_done"
        }
    }

    struct NetworkInfo: Codable, Sendable {
        let version: Int
        let subversion: String
        let protocolversion: Int
        let localservices: String
        let localservicesnames: [String]
        let localrelay: Bool
        let timeoffset: Int
        let networkactive: Bool
        let connections: Int
        let connectionsIn: Int
        let connectionsOut: Int
        let relayfee: Decimal
        let incrementalfee: Decimal
        let warnings: String

        enum CodingKeys: String, CodingKey {
            case version
            case subversion
            case protocolversion
            case localservices
            case localservicesnames
            case localrelay
            case timeoffset
            case networkactive
            case connections
            case connectionsIn = "connections_in"
            case connectionsOut = "connections_out"
            case relayfee
            case incrementalfee
            case warnings
        }
    }

    struct Unspent: Codable, Sendable {
        let txid: String
        let vout: UInt32
        let address: String
        let scriptPubKey: String
        let amount: Decimal
        let confirmations: Int
        let spendable: Bool
        let solvable: Bool
        let safe: Bool
    }
}

/// One HTTP connection: checks each request's head (``RPCAccess``), collects the body (bounded
/// by the ``HTTPRequestGuard`` before it), answers in order; keep-alive as HTTP/1.1 asks.
final class RPCHandler: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let server: RPCServer
    var body: [UInt8] = []
    var head: HTTPRequestHead?
    var refusal: RPCAccess.Refusal?

    init(server: RPCServer) { self.server = server }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let requestHead):
            head = requestHead
            body = []
            refusal = server.access.refusal(for: requestHead)
        case .body(var buffer):
            if refusal == nil { body += buffer.readBytes(length: buffer.readableBytes) ?? [] }
        case .end:
            guard let head else { return }
            let keepAlive = head.isKeepAlive
            let channel = context.channel
            if let refusal {
                // As Core: a wrong password is answered after 250 ms, to slow down guessing.
                let delay: TimeAmount =
                    refusal == .unauthorized && head.headers.contains(name: "Authorization")
                    ? .milliseconds(250) : .zero
                let message: String
                if case .forbidden(let why) = refusal { message = why } else { message = "" }
                context.eventLoop.scheduleTask(in: delay) {
                    Self.respond(
                        on: channel, status: refusal.status, body: message.isEmpty ? nil : Data(message.utf8),
                        keepAlive: keepAlive && refusal == .unauthorized, json: false)
                }
                return
            }
            let request = body
            let server = self.server
            Task {
                let (status, reply) = await server.answer(request)
                Self.respond(
                    on: channel, status: HTTPResponseStatus(statusCode: status), body: reply,
                    keepAlive: keepAlive,
                    json: true)
            }
        }
    }

    static func respond(
        on channel: any Channel, status: HTTPResponseStatus, body: Data?, keepAlive: Bool, json: Bool
    ) {
        var head = HTTPResponseHead(version: .http1_1, status: status)
        if status == .unauthorized {
            head.headers.add(name: "WWW-Authenticate", value: "Basic realm=\"jsonrpc\"")
        }
        if let body {
            head.headers.add(name: "Content-Type", value: json ? "application/json" : "text/plain")
            head.headers.add(name: "Content-Length", value: "\(body.count + (json ? 1 : 0))")
        } else {
            head.headers.add(name: "Content-Length", value: "0")
        }
        head.headers.add(name: "Connection", value: keepAlive ? "keep-alive" : "close")
        channel.write(HTTPServerResponsePart.head(head), promise: nil)
        if let body {
            var buffer = channel.allocator.buffer(capacity: body.count + 1)
            buffer.writeBytes(body)
            if json { buffer.writeString("\n") }  // Core ends each reply with a newline
            channel.write(HTTPServerResponsePart.body(.byteBuffer(buffer)), promise: nil)
        }
        channel.writeAndFlush(HTTPServerResponsePart.end(nil)).whenComplete { _ in
            if !keepAlive { channel.close(promise: nil) }
        }
    }
}

import Foundation
import PeerNet
import PeerSim

/// What the relay measurement runs: Bitcoin nodes (``NodeCore``, unchanged) on a random overlay
/// in PeerSim, a transaction and then a block announced from random nodes.
public struct RelaySimulationConfiguration: Sendable {
    public var nodes = 1_000
    /// Outbound connections each node opens (Core: 8 full-relay).
    public var outbound = 8
    /// The block is transmitted as if it were this large (its one transaction is small), so the
    /// time to send it over each link is that of a block of the era measured.
    public var blockBytes = 200_000
    /// Each node's upload rate: its sends queue behind one another (a block to 8 peers takes
    /// 8 transmission times).
    public var uploadBytesPerSecond = 125_000.0
    /// Nodes differ: each one's upload rate is the median times a factor log-uniform between
    /// 1/spread and spread (1: all alike).
    public var uploadSpread = 4.0
    public var links = LinkModel()
    public var seed: UInt64 = 1

    public init() {}
}

/// The spread of one transaction and one block.
public struct RelayReport: Sendable, Hashable, Codable {
    public struct Spread: Sendable, Hashable, Codable {
        public var name: String
        public var reach: Double
        public var timeTo50: Double?
        public var timeTo90: Double?
        public var timeTo100: Double?
        /// Percentiles as Decker and Wattenhofer report them, for the side-by-side table.
        public var timeTo95: Double?
        public var median: Double?
    }

    public var nodes: Int
    public var outbound: Int
    public var transaction: Spread
    public var block: Spread
    public var messagesPerNode: Double
}

/// ``NodeCore`` in PeerSim: handshakes, `inv`/`getdata` relay, validation and all, with
/// messages passed as values and their transmission time from their size and the sender's
/// upload rate.
public enum RelaySimulation {
    /// A Bitcoin node in the simulator.
    public struct Node: SimulatedNode, @unchecked Sendable {
        // NodeCore is a class confined to the simulation's one thread.
        public let core: NodeCore
        let uploadBytesPerSecond: Double
        let blockBytes: Int
        let start: UInt32
        var uploadFreeAt: Duration = .zero
        public var sent = 0
        /// When this node first held each watched hash (mempool or chain).
        public var arrivals: [Hash256: Duration] = [:]
        var watched: [Hash256] = []

        init(core: NodeCore, uploadBytesPerSecond: Double, blockBytes: Int, start: UInt32) {
            self.core = core
            self.uploadBytesPerSecond = uploadBytesPerSecond
            self.blockBytes = blockBytes
            self.start = start
        }

        func clock(_ now: Duration) -> UInt32 { start &+ UInt32(max(0, Int(now.components.seconds))) }

        public mutating func receive(
            _ message: P2PMessage, from: Int, context: inout SimulationContext<P2PMessage>
        ) {
            let now = clock(context.now)
            perform(core.handle(message, from: from, now: now), &context)
            // The driver serves what the peer asked for while it reads: here, at once.
            for _ in 0..<64 {
                let served = core.serveQueued(from)
                if served.isEmpty { break }
                perform(served, &context)
            }
            check(context.now)
        }

        public mutating func wake(context: inout SimulationContext<P2PMessage>) {}

        mutating func check(_ now: Duration) {
            for hash in watched where arrivals[hash] == nil {
                if core.mempool.contains(hash) || core.chain.contains(hash) { arrivals[hash] = now }
            }
        }

        mutating func watch(_ hash: Hash256) { watched.append(hash) }

        /// Bytes on the wire: the 24-byte header and the payload (the block padded to the size
        /// simulated).
        func size(_ message: P2PMessage) -> Int {
            switch message {
            case .block(let block): max(blockBytes, block.serialized().count) + 24
            case .tx(let transaction): transaction.serialized().count + 24
            case .inv(let items), .getdata(let items), .notfound(let items): 24 + 3 + 36 * items.count
            case .headers(let headers): 24 + 3 + 81 * headers.count
            default: 24 + 100
            }
        }

        public mutating func perform(_ actions: [NodeAction], _ context: inout SimulationContext<P2PMessage>)
        {
            for action in actions {
                guard case .send(let peer, let message) = action else { continue }
                let start = max(context.now, uploadFreeAt)
                let done = start + .seconds(Double(size(message)) / uploadBytesPerSecond)
                uploadFreeAt = done
                sent += 1
                context.send(message, to: peer, after: done - context.now)
            }
        }
    }

    /// Quantiles of arrival times (seconds after `start`) over `count` nodes.
    static func spread(_ name: String, _ arrivals: [Duration], count: Int, start: Duration)
        -> RelayReport.Spread
    {
        let sorted = arrivals.map { ($0 - start) }.sorted()
        func at(_ fraction: Double) -> Double? {
            let needed = Int((Double(count) * fraction).rounded(.up))
            guard needed >= 1, sorted.count >= needed else { return nil }
            let value = sorted[needed - 1]
            return Double(value.components.seconds) + Double(value.components.attoseconds) / 1e18
        }
        return RelayReport.Spread(
            name: name, reach: Double(sorted.count) / Double(count), timeTo50: at(0.5), timeTo90: at(0.9),
            timeTo100: at(1), timeTo95: at(0.95), median: at(0.5))
    }

    public static func run(
        _ configuration: RelaySimulationConfiguration, progress: (String) -> Void = { _ in }
    )
        throws -> RelayReport
    {
        let count = configuration.nodes
        let start: UInt32 = 1_900_000_000
        var random = SplitMix64(seed: configuration.seed ^ 0xB17C)
        // A regtest chain of 101 blocks (the first coinbase mature), mined once, given to all.
        progress("mining 101 regtest blocks")
        let key = PrivateKey.generate()
        let script = Address.p2wpkh(key.publicKey()).scriptPubKey
        let miner = try ChainState(parameters: .regtest, store: MemoryChainStore())
        var blocks: [Block] = []
        var time = start
        for _ in 0..<101 {
            time += 600
            let block = Miner.mine(chain: miner, payTo: script, time: time)
            _ = miner.process(block, now: time)
            blocks.append(block)
        }
        progress("loading the chain into \(count) nodes")
        var simulation = Simulation<Node>(links: configuration.links, seed: configuration.seed)
        for index in 0..<count {
            let chain = try ChainState(parameters: .regtest, store: MemoryChainStore())
            for block in blocks { _ = chain.process(block, now: time) }
            let core = NodeCore(chain: chain, nonce: random.next() | 1)
            core.targetOutbound = 0
            let exponent = (Double(random.next() % 1_000_001) / 1_000_000) * 2 - 1
            let upload =
                configuration.uploadBytesPerSecond * pow(max(1, configuration.uploadSpread), exponent)
            simulation.add(
                Node(
                    core: core, uploadBytesPerSecond: upload,
                    blockBytes: configuration.blockBytes, start: time + 60))
            _ = index
        }
        // The overlay: each node dials `outbound` distinct random others.
        progress("connecting \(count) nodes, \(configuration.outbound) outbound each")
        var connected = Set<[Int]>()
        for node in 0..<count {
            var dialled = 0
            var attempts = 0
            while dialled < min(configuration.outbound, count - 1), attempts < configuration.outbound * 20 {
                attempts += 1
                let other = Int(random.next() % UInt64(count))
                guard other != node, connected.insert([min(node, other), max(node, other)]).inserted else {
                    continue
                }
                dialled += 1
                let address = Endpoint(ip: IPAddress(v4: 0x0A00_0000 | UInt32(other)), port: 18444)
                let back = Endpoint(ip: IPAddress(v4: 0x0A00_0000 | UInt32(node)), port: 18444)
                simulation.act(on: other) { peer, context in
                    peer.perform(
                        peer.core.connected(
                            peer: node, address: back, inbound: true, now: peer.clock(context.now)), &context)
                }
                simulation.act(on: node) { peer, context in
                    peer.perform(
                        peer.core.connected(
                            peer: other, address: address, inbound: false, now: peer.clock(context.now)),
                        &context)
                }
            }
        }
        simulation.advance(to: .seconds(10))
        let sentBefore = simulation.nodes.map(\.sent).reduce(0, +)

        // A transaction spending the first coinbase, from a random node.
        let coinbase = blocks[0].transactions[0]
        let outpoint = OutPoint(txid: coinbase.txid, index: 0)
        let value = coinbase.outputs[0].value
        var transaction = Transaction(
            inputs: [TxIn(previous: outpoint)], outputs: [TxOut(value: value - 10_000, scriptPubKey: script)])
        let code =
            [Opcode.dup, Opcode.hash160, 0x14] + key.publicKey().hash160 + [
                Opcode.equalVerify, Opcode.checkSig,
            ]
        let hash = SigHash.witnessV0(transaction, input: 0, scriptCode: code, amount: value, type: 1)
        transaction.inputs[0].witness = [key.sign(hash: hash) + [1], key.publicKey().bytes]
        let txid = transaction.txid
        for index in 0..<count { simulation.nodes[index].watch(txid) }
        progress("relaying a transaction")
        let txSource = Int(random.next() % UInt64(count))
        let txStart = simulation.now
        simulation.act(on: txSource) { node, context in
            node.perform(node.core.receive(transaction, from: nil, now: node.clock(context.now)), &context)
            node.check(context.now)
        }
        simulation.advance(to: txStart + .seconds(60))
        let txArrivals = simulation.nodes.compactMap { $0.arrivals[txid] }

        // A block with that transaction, mined on another node's chain, announced from there.
        progress("relaying a block")
        let blockSource = Int(random.next() % UInt64(count))
        let sourceChain = simulation.nodes[blockSource].core.chain
        let block = Miner.mine(
            chain: sourceChain, transactions: [transaction], fees: 10_000, payTo: script, time: time + 600)
        for index in 0..<count { simulation.nodes[index].watch(block.hash) }
        let blockStart = simulation.now
        simulation.act(on: blockSource) { node, context in
            node.perform(node.core.receive(block, from: nil, now: node.clock(context.now)), &context)
            node.check(context.now)
        }
        simulation.advance(to: blockStart + .seconds(600))
        let blockArrivals = simulation.nodes.compactMap { $0.arrivals[block.hash] }
        let sent = simulation.nodes.map(\.sent).reduce(0, +) - sentBefore
        return RelayReport(
            nodes: count, outbound: configuration.outbound,
            transaction: spread("transaction", txArrivals, count: count, start: txStart),
            block: spread("block", blockArrivals, count: count, start: blockStart),
            messagesPerNode: Double(sent) / Double(count))
    }
}

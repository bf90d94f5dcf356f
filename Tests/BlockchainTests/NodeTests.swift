import Blockchain
import Foundation
import PeerNet
import Testing

/// Polls `condition` every 50 ms until it holds or `timeout` seconds pass.
func waitUntil(_ timeout: Double, _ condition: () async -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return await condition()
}

@Suite("Bitcoin nodes on 127.0.0.1", .serialized)
struct NodeNetworkTests {
    static let now: UInt32 = 1_900_000_000

    func start(_ count: Int) async throws -> ([BitcoinNode], [Int]) {
        var nodes: [BitcoinNode] = []
        var ports: [Int] = []
        for _ in 0..<count {
            // No outbound dials of their own: the test places every connection (partitions).
            let node = try BitcoinNode(
                parameters: .regtest, store: MemoryChainStore(), clock: { Self.now }, targetOutbound: 0)
            ports.append(try await node.listen(on: Endpoint(ip: .loopbackV4, port: 0)))
            nodes.append(node)
        }
        return (nodes, ports)
    }

    func mine(on node: BitcoinNode, to script: [UInt8], time: UInt32) async -> Hash256 {
        await node.perform { core in
            let (transactions, fees) = core.mempool.select()
            let block = Miner.mine(
                chain: core.chain, transactions: transactions, fees: fees, payTo: script, time: time)
            return (block.hash, core.receive(block, from: nil, now: Self.now))
        }
    }

    func tip(_ node: BitcoinNode) async -> Hash256 { await node.read { $0.chain.tip.hash } }

    @Test(
        "five nodes in a line: blocks and a transaction reach all; partitions reorganise to the most work; invalid data gets its sender banned"
    )
    func network() async throws {
        let (nodes, ports) = try await start(5)
        defer { Task { for node in nodes { await node.shutdown() } } }
        let wallet = TestWallet()
        var time: UInt32 = 1_700_000_000
        // A line 0-1-2-3-4.
        for index in 1..<5 {
            try await nodes[index].connect(to: Endpoint(ip: .loopbackV4, port: UInt16(ports[index - 1])))
        }
        #expect(await waitUntil(10) { await nodes[0].read { $0.peers.values.contains { $0.handshakeDone } } })

        var first = Hash256.zero
        for height in 0..<101 {
            time += 600
            let hash = await mine(
                on: nodes[0], to: height == 0 ? wallet.script : TestWallet().script, time: time)
            if height == 0 { first = hash }
        }
        let top = await tip(nodes[0])
        #expect(
            await waitUntil(30) {
                for node in nodes where await tip(node) != top { return false }
                return true
            })

        // A transaction sent on node 4 reaches every mempool.
        let firstHash = first
        let firstBlock = await nodes[0].read { $0.chain.block(firstHash) }
        let coinbase = try #require(firstBlock).transactions[0]
        let outpoint = OutPoint(txid: coinbase.txid, index: 0)
        let coin = try #require(await nodes[4].read { $0.chain.coin(outpoint) })
        let payment = wallet.spend(
            outpoint, coin, to: TestWallet().script, amount: Consensus.coin, fee: 10_000)
        _ = await nodes[4].perform { core in ((), core.receive(payment, from: nil, now: Self.now)) }
        #expect(
            await waitUntil(10) {
                for node in nodes where !(await node.read { $0.mempool.contains(payment.txid) }) {
                    return false
                }
                return true
            })

        // Mined on node 2, the block confirms it everywhere.
        time += 600
        let confirming = await mine(on: nodes[2], to: wallet.script, time: time)
        #expect(
            await waitUntil(10) {
                for node in nodes where await tip(node) != confirming { return false }
                return true
            })
        #expect(await nodes[0].read { $0.mempool.count } == 0)

        // Partition: {0, 1} and {2, 3, 4} mine apart (node 2 drops its link to node 1), then rejoin.
        await nodes[2].perform { core in
            (
                (),
                core.peers.values.filter { !$0.inbound }.map {
                    NodeAction.disconnect(peer: $0.id, reason: "partition")
                }
            )
        }
        #expect(await waitUntil(10) { await nodes[2].read { $0.peers.count == 1 } })
        var left = time
        var right = time + 1
        for _ in 0..<2 {
            left += 600
            _ = await mine(on: nodes[0], to: TestWallet().script, time: left)
        }
        for _ in 0..<4 {
            right += 600
            _ = await mine(on: nodes[3], to: TestWallet().script, time: right)
        }
        let heavy = await tip(nodes[3])
        let rightJoined = await waitUntil(10) {
            let two = await tip(nodes[2])
            let four = await tip(nodes[4])
            return two == heavy && four == heavy
        }
        #expect(rightJoined)
        #expect(await tip(nodes[0]) != heavy)
        try await nodes[2].connect(to: Endpoint(ip: .loopbackV4, port: UInt16(ports[1])))
        #expect(
            await waitUntil(20) {
                for node in nodes where await tip(node) != heavy { return false }
                return true
            })
        let sets = await withTaskGroup(of: [OutPoint: Coin].self) { group in
            for node in nodes { group.addTask { await node.read { $0.chain.unspent } } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        #expect(Set(sets.map { $0.count }).count == 1)
        #expect(sets.allSatisfy { $0 == sets[0] })

        // An invalid transaction (a forged signature) from a raw peer gets it banned, not relayed.
        let change = OutPoint(txid: payment.txid, index: 1)
        let changeCoin = try #require(await nodes[4].read { $0.chain.coin(change) })
        var forging = wallet.spend(
            change, changeCoin, to: wallet.script, amount: 2 * Consensus.coin, fee: 1_000)
        forging.outputs[0].value += 1
        let forged = forging
        let actions = await nodes[4].perform { core -> ([NodeAction], [NodeAction]) in
            let peer = 9_999
            _ = core.connected(peer: peer, address: Endpoint("10.9.9.9:1")!, inbound: true, now: Self.now)
            _ = core.handle(
                .version(
                    VersionMessage(
                        services: 0, timestamp: 0,
                        receiver: NetworkAddress(services: 0, ip: [0, 0, 0, 0], port: 0),
                        sender: NetworkAddress(services: 0, ip: [0, 0, 0, 0], port: 0), nonce: 1,
                        userAgent: "", startHeight: 0)), from: peer, now: Self.now)
            _ = core.handle(.verack, from: peer, now: Self.now)
            let result = core.handle(.tx(forged), from: peer, now: Self.now)
            return (result, [])
        }
        #expect(
            actions.contains {
                if case .ban = $0 { return true }
                return false
            })
        #expect(await nodes[4].read { $0.banned.contains(IPAddress("10.9.9.9")!) })
        let forgedKept = await nodes[4].read { $0.mempool.contains(forged.txid) }
        #expect(!forgedKept)

        // A double spend of a mempool transaction's coin is refused but not punished (as Core:
        // with replacement, conflicts are normal); a block whose coinbase pays too much gets its
        // sender banned. Neither is kept.
        let honest = wallet.spend(
            change, changeCoin, to: TestWallet().script, amount: Consensus.coin, fee: 2_000)
        let conflicting = wallet.spend(
            change, changeCoin, to: wallet.script, amount: 3 * Consensus.coin, fee: 2_000)
        let verdicts = await nodes[4].perform { core -> ([Bool], [NodeAction]) in
            _ = core.receive(honest, from: nil, now: Self.now)
            func rawPeer(_ id: Int, _ address: String) {
                _ = core.connected(peer: id, address: Endpoint(address)!, inbound: true, now: Self.now)
                let none = NetworkAddress(services: 0, ip: [0, 0, 0, 0], port: 0)
                _ = core.handle(
                    .version(
                        VersionMessage(
                            services: 0, timestamp: 0, receiver: none, sender: none, nonce: UInt64(id),
                            userAgent: "",
                            startHeight: 0)), from: id, now: Self.now)
                _ = core.handle(.verack, from: id, now: Self.now)
            }
            rawPeer(10_000, "10.9.9.10:1")
            let doubleSpend = core.handle(.tx(conflicting), from: 10_000, now: Self.now)
            rawPeer(10_001, "10.9.9.11:1")
            var greedy = Miner.template(
                chain: core.chain, transactions: [], fees: 1, payTo: wallet.script,
                time: core.chain.medianTimePast(core.chain.tip) + 1)
            _ = Miner.solve(&greedy.header, threads: 1)
            let badBlock = core.handle(.block(greedy), from: 10_001, now: Self.now)
            let banned = { (actions: [NodeAction]) in
                actions.contains {
                    if case .ban = $0 { return true }
                    return false
                }
            }
            return (
                [
                    banned(doubleSpend), banned(badBlock), core.mempool.contains(honest.txid),
                    !core.mempool.contains(conflicting.txid), !core.chain.contains(greedy.hash),
                ], []
            )
        }
        #expect(verdicts == [false, true, true, true, true])
    }
}

@Suite("Address gossip on 127.0.0.1", .serialized)
struct AddressGossipTests {
    @Test(
        "six nodes that each know only the one before learn every address and dial beyond what they were given"
    )
    func sixNodes() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "gossip-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var nodes: [BitcoinNode] = []
        var addresses: [Endpoint] = []
        for index in 0..<6 {
            let node = try BitcoinNode(
                parameters: .regtest, store: MemoryChainStore(),
                clock: { UInt32(Date().timeIntervalSince1970) },
                addressBookFile: directory.appendingPathComponent("peers-\(index).txt").path,
                addressInterval: 1,
                targetOutbound: 3)
            let port = try await node.listen(on: Endpoint(ip: .loopbackV4, port: 0))
            addresses.append(Endpoint(ip: .loopbackV4, port: UInt16(port)))
            nodes.append(node)
        }
        let everyone = nodes
        defer { Task { [everyone] in for node in everyone { await node.shutdown() } } }
        // A line: node k is told only of node k-1.
        for index in 1..<6 { _ = await nodes[index].addNode(addresses[index - 1]) }

        func books() async -> [Set<Endpoint>] {
            var out: [Set<Endpoint>] = []
            for node in nodes { out.append(await node.read { Set($0.addressBook.records.keys) }) }
            return out
        }
        let learned = await waitUntil(40) {
            let all = await books()
            return all.indices.allSatisfy { index in
                all[index].isSuperset(of: Set(addresses).subtracting([addresses[index]]))
            }
        }
        let sizes = await books().map(\.count)
        #expect(learned, "address books: \(sizes)")
        // Nodes dialled addresses they were never given: node 0 (told of nobody) has outbound
        // peers, and node 5 is connected to more than node 4.
        let dialledBeyond = await waitUntil(20) {
            let outbound0 = await nodes[0].read { core in
                core.peers.values.filter { !$0.inbound && $0.handshakeDone }.count
            }
            let peers5 = await nodes[5].read { core in
                Set(core.peers.values.filter(\.handshakeDone).map(\.address))
            }
            return outbound0 >= 1 && peers5.count >= 2
        }
        #expect(dialledBeyond)
        // The book survives a restart.
        await nodes[0].shutdown()
        let saved = try String(contentsOf: directory.appendingPathComponent("peers-0.txt"), encoding: .utf8)
        #expect(addresses.dropFirst().allSatisfy { saved.contains($0.description) }, "\(saved)")
        let reopened = try BitcoinNode(
            parameters: .regtest, store: MemoryChainStore(), clock: { UInt32(Date().timeIntervalSince1970) },
            addressBookFile: directory.appendingPathComponent("peers-0.txt").path, targetOutbound: 0)
        let reopenedCount = await reopened.read { $0.addressBook.count }
        #expect(reopenedCount >= 5)
    }

    @Test(
        "addrv2 and addr round-trip; a hostile addrv2 is refused with the reason; only usable addresses enter the book"
    )
    func codecAndBook() throws {
        let entries = [
            AddressV2(time: 1, services: 9, endpoint: Endpoint(ip: .loopbackV4, port: 18444)),
            AddressV2(
                time: 2, services: 1 << 40, endpoint: Endpoint(ip: IPAddress("2001:4860::1")!, port: 8333)),
            AddressV2(
                time: 3, services: 0, networkID: 4, address: [UInt8](repeating: 7, count: 32), port: 9050),
        ]
        let bytes = P2PCodec.encode(.addrv2(entries), magic: ChainParameters.regtest.magic)
        let decoded = try #require(
            try P2PCodec.decode(ArraySlice(bytes), magic: ChainParameters.regtest.magic))
        #expect(decoded.0 == .addrv2(entries) && decoded.1 == bytes.count)
        #expect(entries[2].endpoint == nil && entries[1].endpoint?.isIPv6 == true)
        // An IPv4 entry with 5 bytes, a TORv2 entry, an address of 513 bytes: refused.
        for bad in [
            [1, 1, 0, 0, 0, 0, 1, 5, 1, 2, 3, 4, 5, 0, 1],
            [1, 1, 0, 0, 0, 0, 3, 10] + [UInt8](repeating: 1, count: 10) + [0, 1],
            [1, 1, 0, 0, 0, 0, 9, 0xfd, 0x01, 0x02] + [UInt8](repeating: 1, count: 513) + [0, 1],
        ] as [[UInt8]] {
            #expect(throws: BlockchainError.self) { try P2PCodec.decodePayload(command: "addrv2", bad) }
        }
        var regtest = AddressBook(capacity: 3, allowLoopback: true)
        var mainnet = AddressBook(allowLoopback: false)
        let heard: [(Endpoint, UInt32, UInt64)] = [
            (Endpoint(ip: .loopbackV4, port: 1), 1_000_000_000, 1),
            (Endpoint(ip: IPAddress("10.1.2.3")!, port: 8333), 1_000_000_000, 1),
            (Endpoint(ip: IPAddress("192.168.1.1")!, port: 8333), 1_000_000_000, 1),
            (Endpoint(ip: IPAddress("8.8.8.8")!, port: 8333), 1_000_000_000, 1),
            (Endpoint(ip: IPAddress("8.8.4.4")!, port: 0), 1_000_000_000, 1),
        ]
        regtest.add(heard, now: 1_000_000_100)
        mainnet.add(heard, now: 1_000_000_100)
        #expect(
            Set(regtest.records.keys) == [
                Endpoint(ip: .loopbackV4, port: 1), Endpoint(ip: IPAddress("8.8.8.8")!, port: 8333),
            ])
        #expect(Set(mainnet.records.keys) == [Endpoint(ip: IPAddress("8.8.8.8")!, port: 8333)])
        // Bounded: a flood keeps the newest `capacity`.
        regtest.add(
            (1...50).map {
                (Endpoint(ip: IPAddress(v4: 0x0808_0000 + $0), port: 8333), 1_000_000_000 + $0, 1)
            }, now: 1_000_000_100)
        #expect(regtest.count == 3)
    }
}

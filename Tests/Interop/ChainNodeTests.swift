import Foundation
import TestSupport
import Testing

/// `peerstack chain node` processes on 127.0.0.1, driven through the CLI as a user would.
@Suite("peerstack chain node", .serialized)
struct ChainNodeTests {
    /// `chain info --json`: numbers as JSON numbers, hashes as strings.
    struct Info: Decodable, Equatable {
        let network: String
        let height: Int
        let best: String
        let peers: Int
        let mempool: Int
    }

    func json(_ arguments: [String]) throws -> Info {
        let output = try Interop.check(
            try peerstackExecutable().path, ["chain", "info", "--json"] + arguments)
        return try JSONDecoder().decode(Info.self, from: Data(output.utf8))
    }

    func cli(_ arguments: [String]) throws -> String {
        try Interop.check(try peerstackExecutable().path, ["chain"] + arguments).trimmingCharacters(
            in: .whitespacesAndNewlines)
    }

    func start(_ datadir: URL, connect: [Int] = []) async throws -> (BackgroundProgram, Int) {
        let program = try BackgroundProgram(
            try peerstackExecutable().path,
            ["chain", "node", "--regtest", "--port", "0", "--rpc", "127.0.0.1:0", "--datadir", datadir.path]
                + connect.flatMap { ["--connect", "127.0.0.1:\($0)"] })
        let line = try await program.waitForLine(timeout: 30, "listening line") {
            $0.hasPrefix("p2p 127.0.0.1:")
        }
        let port = Int(line.split(separator: " ")[1].split(separator: ":")[1]) ?? 0
        return (program, port)
    }

    @Test(
        "mine, send, relay through the CLI; a node killed with kill -9 restarts with its chain and catches up"
    )
    func killNineAndCatchUp() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-chain-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a")
        let b = root.appendingPathComponent("b")
        var (nodeA, portA) = try await start(a)
        let (nodeB, portB) = try await start(b, connect: [portA])
        defer {
            nodeA.stop()
            nodeB.stop()
        }
        _ = try cli(["mine", "--blocks", "110", "--datadir", a.path])
        #expect(try await eventually(timeout: 30) { try json(["--datadir", b.path]).height == 110 })
        let address = try cli(["wallet", "address", "--datadir", b.path])
        let txid = try cli(["wallet", "send", address, "2.5", "--datadir", a.path])
        #expect(txid.count == 64)
        #expect(try await eventually(timeout: 30) { try json(["--datadir", b.path]).mempool == 1 })

        // kill -9 A mid-flight, let B confirm and go on, then restart A against B.
        nodeA.signal(SIGKILL)
        _ = try await nodeA.waitForExit(timeout: 10)
        _ = try cli(["mine", "--blocks", "3", "--datadir", b.path])
        #expect(try cli(["wallet", "balance", "--datadir", b.path]) == "2.50000000 BTC")
        (nodeA, portA) = try await start(a, connect: [portB])
        _ = portA
        #expect(
            try await eventually(timeout: 30) {
                let (infoA, infoB) = (try json(["--datadir", a.path]), try json(["--datadir", b.path]))
                return infoA.height == 113 && infoA.best == infoB.best
            })
        #expect(try json(["--datadir", a.path]).mempool == 0)
    }

    static func script(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Scripts/\(name)")
            .path
    }

    @Test(
        "libbitcoinkernel accepts every block the node mines (with segwit payments), and refuses, as the node does, blocks with a bad merkle root, an overspending coinbase, a bad signature, a double spend, the wrong difficulty, an old timestamp"
    )
    func kernelJudges() async throws {
        try #require(
            Interop.enabled("bitcoin-core-python"), "py-bitcoinkernel and verystable are not installed")
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-chain-kernel-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let kernel = root.appendingPathComponent("kernel")
        try FileManager.default.createDirectory(at: kernel, withIntermediateDirectories: true)
        let (node, _) = try await start(root.appendingPathComponent("node"))
        defer { node.stop() }
        let seen = try pythonJSON(
            "kernel_judge.py", [root.appendingPathComponent("node").path, kernel.path], timeout: 300)
        #expect((seen["blocks_accepted_by_kernel"] as? Int ?? 0) >= 114, "\(seen)")
        let refused = seen["refused"] as? [String: [String: String]] ?? [:]
        #expect(refused.count == 6, "\(seen)")
        #expect(refused["bad merkle root"]?["node"] == "bad-txnmrklroot")
        #expect(refused["overspending coinbase"]?["node"] == "bad-cb-amount")
        #expect(refused["wrong difficulty"]?["node"] == "bad-diffbits")
        #expect(refused["timestamp too old"]?["node"] == "time-too-old")
        #expect(seen["final_height"] as? Int == (seen["blocks_accepted_by_kernel"] as? Int ?? 0) + 1)
    }

    @Test(
        "Bitcoin Core's test P2PInterface completes the handshake, syncs headers, fetches blocks, and has a transaction it signed relayed to a second node"
    )
    func coreP2PInterface() async throws {
        try #require(
            Interop.enabled("bitcoin-core-python"), "py-bitcoinkernel and verystable are not installed")
        try await withTwoNodes("p2p") { a, portA, b in
            let seen = try pythonJSON("core_p2p.py", [a.path, "\(portA)", b.path], timeout: 180)
            #expect(seen["headers"] as? Int ?? 0 >= 20 && seen["blocks"] as? Int == 20, "\(seen)")
            #expect((seen["relayed_to_b"] as? String)?.count == 64, "\(seen)")
        }
    }

    /// Two nodes in a fresh directory, B told of A; both stopped and the directory removed after.
    func withTwoNodes(_ label: String, _ body: (_ a: URL, _ portA: Int, _ b: URL) async throws -> Void)
        async throws
    {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-chain-\(label)-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a")
        let b = root.appendingPathComponent("b")
        let (nodeA, portA) = try await start(a)
        let (nodeB, _) = try await start(b, connect: [portA])
        defer {
            nodeA.stop()
            nodeB.stop()
        }
        try await body(a, portA, b)
    }

    /// Runs one of the Python scripts beside this file and reads the JSON line it prints.
    func pythonJSON(_ script: String, _ arguments: [String], timeout: Double) throws -> [String: Any] {
        let output = try Interop.check(Interop.pipPython, [Self.script(script)] + arguments, timeout: timeout)
        return try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any] ?? [:]
    }

    @Test(
        "python-bitcoinlib's RPC proxy, pointed at the node's bitcoin.conf, mines, pays, and sends a transaction it signed itself, which a second node sees confirmed"
    )
    func bitcoinlibProxy() async throws {
        try #require(Interop.enabled("python-bitcoinlib"), "python-bitcoinlib is not installed")
        try await withTwoNodes("rpc") { a, _, b in try checkBitcoinlibProxy(a, b) }
    }

    func checkBitcoinlibProxy(_ a: URL, _ b: URL) throws {
        let seen = try pythonJSON("bitcoinlib_rpc.py", [a.path, b.path], timeout: 120)
        #expect(seen["height"] as? Int == 101, "\(seen)")
        #expect(seen["balance"] as? Int == 50 * 100_000_000, "a coinbase is spendable at depth 101: \(seen)")
        #expect((seen["confirmations_on_b"] as? Int ?? 0) >= 1, "\(seen)")
        #expect(seen["b_height"] as? Int == 103, "\(seen)")
        #expect((seen["unknown_block"] as? String ?? "").contains("-5"), "\(seen)")
        // A web page's request and one without credentials are refused.
        let port = try String(contentsOfFile: a.appendingPathComponent("rpc.port").path, encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let cookie = try String(contentsOfFile: a.appendingPathComponent(".cookie").path, encoding: .utf8)
        func status(_ arguments: [String]) throws -> String {
            try Interop.check(
                "/usr/bin/curl",
                [
                    "-s", "-o", "/dev/null", "-w", "%{http_code}", "-m", "5", "--data",
                    #"{"method":"getblockcount"}"#,
                ]
                    + arguments + ["http://\(port)/"])
        }
        #expect(try status(["-H", "Content-Type: application/json"]) == "401")
        #expect(try status(["-u", cookie, "-H", "Content-Type: text/plain"]) == "415")
        #expect(
            try status([
                "-u", cookie, "-H", "Content-Type: application/json", "-H", "Origin: http://example.com",
            ])
                == "403")
        #expect(
            try status(["-u", cookie, "-H", "Content-Type: application/json", "-H", "Host: evil.example"])
                == "403")
        #expect(try status(["-u", cookie, "-H", "Content-Type: application/json"]) == "200")
    }
}

/// A `peerstack chain node` under hostile P2P peers (python-bitcoinlib framing) while a second
/// node syncs from it: bounded memory, and the honest node catches up.
@Suite("peerstack chain node contains hostile peers", .serialized)
struct HostileChainTests {
    static let attack = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Scripts/btc_attack.py").path

    @Test(
        "getdata naming the tip block 1,000 times, getheaders floods, headers forking at every height: +64 MiB at most, and a new node syncs",
        arguments: ["getdata", "getheaders", "forks"])
    func hostile(mode: String) async throws {
        try #require(Interop.enabled("python-bitcoinlib"), "python-bitcoinlib is not installed")
        let chain = ChainNodeTests()
        let root = FileManager.default.temporaryDirectory.appendingPathComponent(
            "peerstack-chain-hostile-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        let a = root.appendingPathComponent("a")
        let b = root.appendingPathComponent("b")
        let (nodeA, portA) = try await chain.start(a)
        defer { nodeA.stop() }
        // Blocks with room in them: 120 blocks, a few carrying transactions.
        _ = try chain.cli(["mine", "--blocks", "110", "--datadir", a.path])
        let address = try chain.cli(["wallet", "address", "--datadir", a.path])
        for _ in 0..<5 { _ = try chain.cli(["wallet", "send", address, "1", "--datadir", a.path]) }
        _ = try chain.cli(["mine", "--blocks", "10", "--datadir", a.path])
        let baseline = nodeA.residentBytes ?? 0
        let attackers = try BackgroundProgram(
            Interop.pipPython, [Self.attack, "127.0.0.1:\(portA)", mode, "20"])
        defer { attackers.stop() }
        var peak = baseline
        try await Task.sleep(for: .seconds(3))
        let (nodeB, _) = try await chain.start(b, connect: [portA])
        defer { nodeB.stop() }
        let synced = try await eventually(timeout: 40) {
            peak = max(peak, nodeA.residentBytes ?? 0)
            return try chain.json(["--datadir", b.path]).height == 120
        }
        #expect(synced, "the honest node did not sync beside the \(mode) attack")
        let stats = try await attackers.waitForJSON("sent", timeout: 40)
        peak = max(peak, nodeA.residentBytes ?? 0)
        #expect((stats["sent"] as? Int ?? 0) > 100_000, "the attack sent too little: \(stats)")
        #expect(peak - baseline <= 64 << 20, "node A grew by \((peak - baseline) >> 20) MiB under \(mode)")
        #expect(nodeA.isRunning)
    }
}

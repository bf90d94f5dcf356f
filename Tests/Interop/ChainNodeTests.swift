import Foundation
import TestSupport
import Testing

/// `peerstack chain node` processes on 127.0.0.1, driven through the CLI as a user would.
@Suite("peerstack chain node", .serialized)
struct ChainNodeTests {
    func json(_ arguments: [String]) throws -> [String: String] {
        let output = try Interop.check(
            try peerstackExecutable().path, ["chain", "info", "--json"] + arguments)
        return try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: String] ?? [:]
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
        #expect(try await eventually(timeout: 30) { try json(["--datadir", b.path])["height"] == "110" })
        let address = try cli(["wallet", "address", "--datadir", b.path])
        let txid = try cli(["wallet", "send", address, "2.5", "--datadir", a.path])
        #expect(txid.count == 64)
        #expect(try await eventually(timeout: 30) { try json(["--datadir", b.path])["mempool"] == "1" })

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
                return infoA["height"] == "113" && infoA["best"] == infoB["best"]
            })
        #expect(try json(["--datadir", a.path])["mempool"] == "0")
    }
}

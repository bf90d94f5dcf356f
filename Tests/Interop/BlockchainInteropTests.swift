import Blockchain
import Foundation
import Testing

/// PeerStack's Bitcoin P2P messages against python-bitcoinlib's, byte for byte.
@Suite("Bitcoin wire messages against python-bitcoinlib")
struct BlockchainInteropTests {
    static var vectors: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Vectors/bitcoin").standardized
    }

    func load(_ name: String) throws -> [[Any]] {
        let data = try Data(contentsOf: Self.vectors.appendingPathComponent(name))
        return (try JSONSerialization.jsonObject(with: data) as? [[Any]] ?? []).filter { $0.count > 1 }
    }

    /// The same contents as btc_messages.py builds.
    func ours() throws -> [String: P2PMessage] {
        let blocks = try load("checkblock_valid.json")
        let genesis = try Block(bytes: Hex.decode(try #require(blocks[0][4] as? String)) ?? [])
        let block = try Block(bytes: Hex.decode(try #require(blocks[2][4] as? String)) ?? [])
        let tx = try Transaction(
            bytes: Hex.decode(try #require(try load("tx_valid.json")[0][1] as? String)) ?? [])
        let localhost = [UInt8](repeating: 0, count: 15) + [1]
        let version = VersionMessage(
            version: 70016, services: 1, timestamp: 1_700_000_000,
            receiver: NetworkAddress(services: 1, ip: [127, 0, 0, 1], port: 18444),
            sender: NetworkAddress(services: 1, ip: localhost, port: 18445), nonce: 0x1122_3344_5566_7788,
            userAgent: "/PeerStack:0.1.0/", startHeight: 42, relay: true)
        let items = [
            Inventory(type: Inventory.tx, hash: genesis.transactions[0].txid),
            Inventory(type: Inventory.block, hash: genesis.hash),
        ]
        let documentation = [UInt8](Hex.decode("20010db8000000000000000000000001") ?? [])
        return [
            "version": .version(version), "verack": .verack, "ping": .ping(0x0102_0304_0506_0708),
            "pong": .pong(0x0102_0304_0506_0708),
            "addr": .addr([
                NetworkAddress(time: 1_700_000_000, services: 1, ip: [10, 0, 0, 1], port: 8333),
                NetworkAddress(time: 1_700_000_001, services: 1, ip: documentation, port: 18444),
            ]),
            "inv": .inv(items), "getdata": .getdata(items), "notfound": .notfound(items), "tx": .tx(tx),
            "block": .block(block),
            "getheaders": .getheaders(
                version: 60002, locator: [genesis.hash, genesis.transactions[0].txid], stop: .zero),
            "headers": .headers([genesis.header, block.header]),
        ]
    }

    @Test("every message encodes to python-bitcoinlib's bytes and decodes from them")
    func byteIdentical() throws {
        try #require(Interop.enabled("python-bitcoinlib"), "python-bitcoinlib is not installed")
        let output = try Interop.check(Interop.pipPython, [Interop.bitcoinMessagesScript, Self.vectors.path])
        let theirs = try JSONDecoder().decode([String: String].self, from: Data(output.utf8))
        let magic = ChainParameters.regtest.magic
        let mine = try ours()
        #expect(Set(theirs.keys) == Set(mine.keys))
        for (name, message) in mine {
            let bytes = P2PCodec.encode(message, magic: magic)
            #expect(Hex.encode(bytes) == theirs[name], "\(name)")
            let decoded = try P2PCodec.decode(ArraySlice(Hex.decode(theirs[name] ?? "") ?? []), magic: magic)
            #expect(decoded?.0 == message, "\(name)")
            #expect(decoded?.1 == bytes.count)
        }
        // python-bitcoinlib parses what PeerStack sends.
        let ping = Hex.encode(P2PCodec.encode(.ping(99), magic: magic))
        let parsed = try Interop.check(Interop.pipPython, [Interop.bitcoinMessagesScript, "parse", ping])
        #expect(parsed.contains("\"command\": \"ping\"") && parsed.contains("0x63"))
    }
}

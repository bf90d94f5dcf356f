import Blockchain
import Testing

@Suite struct FormatTests {
    @Test("real mainnet blocks round-trip byte for byte; merkle roots and proof of work check out")
    func realBlocks() throws {
        let cases = try Vectors.load("checkblock_valid.json")
        #expect(cases.count == 4)
        for entry in cases {
            let bytes = Vectors.hex(try #require(entry[4] as? String))
            let block = try Block(bytes: bytes)
            #expect(block.serialized() == bytes)
            #expect(block.merkleRoot.root == block.header.merkleRoot)
            #expect(!block.merkleRoot.mutated)
            #expect(
                Target.isMet(
                    by: block.hash, bits: block.header.bits, limit: try #require(Target.expand(0x1d00_ffff))))
            for transaction in block.transactions {
                #expect(try Transaction(bytes: transaction.serialized()) == transaction)
            }
        }
        let genesis = try Block(bytes: Vectors.hex(try #require(cases[0][4] as? String)))
        #expect(
            genesis.hash.description == "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f")
        #expect(
            genesis.transactions[0].txid.description
                == "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b")
        #expect(genesis.transactions[0].isCoinbase)
    }

    @Test("every transaction of tx_valid/tx_invalid parses and re-serializes to the same bytes")
    func realTransactions() throws {
        var count = 0
        for name in ["tx_valid.json", "tx_invalid.json"] {
            for entry in try Vectors.load(name) {
                let bytes = Vectors.hex(try #require(entry[1] as? String))
                guard let transaction = try? Transaction(bytes: bytes) else { continue }
                #expect(transaction.serialized() == bytes)
                count += 1
            }
        }
        #expect(count >= 45)
        // The first case's comment names its txid.
        let first = try Vectors.load("tx_valid.json")[0]
        let transaction = try Transaction(bytes: Vectors.hex(try #require(first[1] as? String)))
        #expect(
            transaction.txid.description == "c99c49da4c38af669dea436d3e73780dfdb6c1ecf9958baa52960e8baee30e73"
        )
    }

    @Test("a segwit transaction (BIP 143's P2WPKH example) gives its txid and wtxid")
    func segwit() throws {
        // The signed transaction of BIP 143's native P2WPKH example.
        let hex =
            "01000000000102fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f00000000494830450221008b9d1dc26ba6a9cb62127b02742fa9d754cd3bebf337f7a55d114c8e5cdd30be022040529b194ba3f9281a99f2b1c0a19c0489bc22ede944ccf4ecbab4cc618ef3ed01eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac000247304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a0220573a954c4518331561406f90300e8f3358f51928d43c212a8caed02de67eebee0121025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee635711000000"
        let bytes = Vectors.hex(hex)
        let transaction = try Transaction(bytes: bytes)
        #expect(transaction.hasWitness)
        #expect(transaction.serialized() == bytes)
        #expect(transaction.inputs[1].witness.count == 2)
        #expect(transaction.txid != transaction.wtxid)
        #expect(transaction.weight == transaction.serialized(witness: false).count * 3 + bytes.count)
    }

    @Test(
        "hostile bytes give typed errors",
        arguments: [
            "",  // nothing
            "01000000",  // version only
            "0100000000",  // marker then nothing
            "010000000000",  // marker, flag 0
            "01000000fdffff",  // non-canonical... and huge input count
            "01000000ff0000000000000001",  // 2^56 inputs claimed
            "0100000001" + String(repeating: "00", count: 36) + "fd0100",  // script length past end
        ])
    func hostile(hex: String) {
        #expect(throws: BlockchainError.self) { try Transaction(bytes: Vectors.hex(hex)) }
    }

    @Test func compactSizeIsCanonical() throws {
        var reader = ByteReader([0xfd, 0x10, 0x00])
        #expect(throws: BlockchainError.self) { try reader.compactSize("n") }
        var writer = ByteWriter()
        for value: UInt64 in [0, 0xfc, 0xfd, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000] {
            writer.compactSize(value)
        }
        var back = ByteReader(writer.bytes)
        for value: UInt64 in [0, 0xfc, 0xfd, 0xffff, 0x1_0000, 0xffff_ffff, 0x1_0000_0000] {
            let read = try back.compactSize("n", limit: .max)
            #expect(read == value)
        }
    }

    @Test func targetsAndWork() throws {
        let limit = try #require(Target.expand(0x1d00_ffff))
        #expect(limit.description == "00000000ffff0000000000000000000000000000000000000000000000000000")
        #expect(Target.compact(limit) == 0x1d00_ffff)
        // Core's arith_uint256 tests: SetCompact of these values.
        #expect(Target.expand(0x0112_3456)?.description == String(repeating: "0", count: 62) + "12")
        #expect(Target.expand(0x0212_3456)?.description == String(repeating: "0", count: 60) + "1234")
        #expect(Target.expand(0x0512_3456)?.description == String(repeating: "0", count: 54) + "1234560000")
        #expect(Target.expand(0x0492_3456) == nil)  // negative
        #expect(Target.expand(0xff12_3456) == nil)  // overflow
        #expect(Target.compact(try #require(Target.expand(0x0512_3456))) == 0x0512_3456)
        // Work of the genesis target: 0x100010001 (4295032833).
        #expect(Target.work(limit) == UInt256(0x1_0001_0001))
    }
}

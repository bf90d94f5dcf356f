import Blockchain
import Testing

@Suite struct WitnessTests {
    /// BIP 143's native P2WPKH example, signed.
    static let signed =
        "01000000000102fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f00000000494830450221008b9d1dc26ba6a9cb62127b02742fa9d754cd3bebf337f7a55d114c8e5cdd30be022040529b194ba3f9281a99f2b1c0a19c0489bc22ede944ccf4ecbab4cc618ef3ed01eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac000247304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a0220573a954c4518331561406f90300e8f3358f51928d43c212a8caed02de67eebee0121025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee635711000000"

    @Test("BIP 143's example: its sighash, and its P2WPKH witness verifies (and fails for another amount)")
    func bip143Example() throws {
        let transaction = try Transaction(bytes: Vectors.hex(Self.signed))
        let scriptCode = Vectors.hex("76a9141d0f172a0ecb48aee1be1f2687d2963ae33f71a188ac")
        let hash = SigHash.witnessV0(
            transaction, input: 1, scriptCode: scriptCode, amount: 600_000_000, type: 1)
        #expect(Hex.encode(hash) == "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670")
        let scriptPubKey = Vectors.hex("00141d0f172a0ecb48aee1be1f2687d2963ae33f71a1")
        let input = transaction.inputs[1]
        try Interpreter.verify(
            scriptSig: input.scriptSig, scriptPubKey: scriptPubKey, witness: input.witness, flags: .standard,
            checker: TransactionSignatureChecker(transaction: transaction, input: 1, amount: 600_000_000))
        #expect(throws: ScriptError.self) {
            try Interpreter.verify(
                scriptSig: input.scriptSig, scriptPubKey: scriptPubKey, witness: input.witness,
                flags: .standard,
                checker: TransactionSignatureChecker(transaction: transaction, input: 1, amount: 600_000_001))
        }
        // Input 0 is a legacy P2PK spend of the same transaction.
        let p2pk = Vectors.hex("2103c9f4836b9a4f77fc0d81f7bcb01b7f1b35916864b9476c241ce9fc198bd25432ac")
        try Interpreter.verify(
            scriptSig: transaction.inputs[0].scriptSig, scriptPubKey: p2pk, flags: .standard,
            checker: TransactionSignatureChecker(transaction: transaction, input: 0, amount: 625_000_000))
    }

    /// A 2-of-3 multisig behind P2WSH, and the same behind P2SH, signed here.
    @Test func p2wshAndP2SHMultisig() throws {
        let keys = (0..<3).map { _ in PrivateKey.generate() }
        var redeem: [UInt8] = [0x52]
        for key in keys { redeem.appendPush(key.publicKey().bytes) }
        redeem += [0x53, Opcode.checkMultiSig]
        let p2wsh = [0x00, 0x20] + BitcoinHash.sha256(redeem)
        let p2sh = [Opcode.hash160, 0x14] + BitcoinHash.hash160(redeem) + [Opcode.equal]
        let previous = OutPoint(txid: Hash256.doubleSHA256([1, 2, 3]), index: 0)
        var spend = Transaction(
            inputs: [TxIn(previous: previous)], outputs: [TxOut(value: 90_000, scriptPubKey: [Opcode.op1])])

        let witnessHash = SigHash.witnessV0(spend, input: 0, scriptCode: redeem, amount: 100_000, type: 1)
        let witnessSigs = [keys[0], keys[2]].map { $0.sign(hash: witnessHash) + [1] }
        spend.inputs[0].witness = [[]] + witnessSigs + [redeem]
        let checker = TransactionSignatureChecker(transaction: spend, input: 0, amount: 100_000)
        try Interpreter.verify(
            scriptSig: [], scriptPubKey: p2wsh, witness: spend.inputs[0].witness, flags: .standard,
            checker: checker)
        // Signatures out of key order fail.
        let swapped = [[]] + witnessSigs.reversed() + [redeem]
        #expect(throws: ScriptError.self) {
            try Interpreter.verify(
                scriptSig: [], scriptPubKey: p2wsh, witness: swapped, flags: .standard, checker: checker)
        }

        spend.inputs[0].witness = []
        let legacyHash = SigHash.legacy(spend, input: 0, scriptCode: redeem, type: 1)
        var scriptSig: [UInt8] = [0]
        for key in [keys[1], keys[2]] { scriptSig.appendPush(key.sign(hash: legacyHash) + [1]) }
        scriptSig.appendPush(redeem)
        spend.inputs[0].scriptSig = scriptSig
        try Interpreter.verify(
            scriptSig: scriptSig, scriptPubKey: p2sh, flags: .standard,
            checker: TransactionSignatureChecker(transaction: spend, input: 0, amount: 100_000))
        // A non-empty dummy breaks NULLDUMMY.
        var badDummy = scriptSig
        badDummy[0] = Opcode.op1
        #expect(throws: ScriptError.sigNullDummy) {
            try Interpreter.verify(
                scriptSig: badDummy, scriptPubKey: p2sh, flags: .standard,
                checker: TransactionSignatureChecker(transaction: spend, input: 0, amount: 100_000))
        }
    }

    @Test func checkBlockVectors() throws {
        let limit = try #require(Target.expand(0x1d00_ffff))
        for (name, valid) in [("checkblock_valid.json", true), ("checkblock_invalid.json", false)] {
            for entry in try Vectors.load(name) {
                let comment = entry[0] as? String ?? ""
                let checkPoW = entry[2] as? Bool ?? true
                let now = UInt32(entry[3] as? Int ?? 0)
                let bytes = Vectors.hex(entry[4] as? String ?? "")
                var ok = true
                do {
                    let block = try Block(bytes: bytes)
                    try Consensus.checkBlock(block, powLimit: limit, now: now, checkProofOfWork: checkPoW)
                } catch {
                    ok = false
                }
                #expect(ok == valid, "\(comment)")
            }
        }
    }
}

import Blockchain
import Foundation
import Testing

/// Core's test-script syntax (`ParseScript`): numbers, `0x…` raw bytes, 'text' pushes, opcode
/// names with or without `OP_`.
enum ScriptText {
    struct Unknown: Error { let token: String }

    static func parse(_ text: String) throws -> [UInt8] {
        var script: [UInt8] = []
        for token in text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).map(String.init) {
            let digits = token.hasPrefix("-") ? String(token.dropFirst()) : token
            if !digits.isEmpty, digits.allSatisfy(\.isNumber), let n = Int64(token) {
                if n == 0 {
                    script.append(0)
                } else if n == -1 || (1...16).contains(n) {
                    script.append(UInt8(n + 0x50))
                } else {
                    script.appendPush(ScriptNum.encode(n))
                }
            } else if token.hasPrefix("0x"), token.count > 2,
                let bytes = Hex.decode(String(token.dropFirst(2)))
            {
                script += bytes
            } else if token.count >= 2, token.hasPrefix("'"), token.hasSuffix("'") {
                script.appendPush(Array(token.dropFirst().dropLast().utf8))
            } else if let opcode = Opcode.byName[token] {
                script.append(opcode)
            } else {
                throw Unknown(token: token)
            }
        }
        return script
    }

    static func flags(_ text: String) -> ScriptFlags? {
        var flags: ScriptFlags = []
        for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) })
        where !name.isEmpty {
            switch name {
            case "NONE": break
            case "P2SH": flags.insert(.p2sh)
            case "STRICTENC": flags.insert(.strictEncoding)
            case "DERSIG": flags.insert(.derSignatures)
            case "LOW_S": flags.insert(.lowS)
            case "NULLDUMMY": flags.insert(.nullDummy)
            case "SIGPUSHONLY": flags.insert(.sigPushOnly)
            case "MINIMALDATA": flags.insert(.minimalData)
            case "DISCOURAGE_UPGRADABLE_NOPS": flags.insert(.discourageUpgradableNops)
            case "CLEANSTACK": flags.insert(.cleanStack)
            case "WITNESS": flags.insert(.witness)
            case "NULLFAIL": flags.insert(.nullFail)
            case "MINIMALIF": flags.insert(.minimalIf)
            default: return nil
            }
        }
        return flags
    }
}

@Suite struct ScriptVectorTests {
    /// Core's harness: a crediting transaction paying scriptPubKey, spent by a transaction whose
    /// only input carries scriptSig.
    func run(_ scriptSig: [UInt8], _ scriptPubKey: [UInt8], flags: ScriptFlags) throws(ScriptError) {
        let credit = Transaction(
            version: 1, inputs: [TxIn(previous: .null, scriptSig: [0, 0])],
            outputs: [TxOut(value: 0, scriptPubKey: scriptPubKey)])
        let spend = Transaction(
            version: 1, inputs: [TxIn(previous: OutPoint(txid: credit.txid, index: 0), scriptSig: scriptSig)],
            outputs: [TxOut(value: 0, scriptPubKey: [])])
        try Interpreter.verify(
            scriptSig: scriptSig, scriptPubKey: scriptPubKey, flags: flags,
            checker: TransactionSignatureChecker(transaction: spend, input: 0, amount: 0))
    }

    @Test("script_valid.json and script_invalid.json: every case with supported flags")
    func scriptVectors() throws {
        var ran = 0
        var skipped = 0
        for (name, valid) in [("script_valid.json", true), ("script_invalid.json", false)] {
            for entry in try Vectors.load(name) {
                guard entry.count >= 3, let sigText = entry[0] as? String, let pubText = entry[1] as? String,
                    let flagText = entry[2] as? String, let flags = ScriptText.flags(flagText),
                    let scriptSig = try? ScriptText.parse(sigText),
                    let scriptPubKey = try? ScriptText.parse(pubText)
                else {
                    skipped += 1
                    continue
                }
                ran += 1
                let comment = entry.count > 3 ? "\(entry[3])" : ""
                do {
                    try run(scriptSig, scriptPubKey, flags: flags)
                    #expect(valid, "should fail: [\(sigText)] [\(pubText)] \(flagText) \(comment)")
                } catch {
                    #expect(!valid, "should pass: [\(sigText)] [\(pubText)] \(flagText) \(comment): \(error)")
                }
            }
        }
        print("script vectors: \(ran) run, \(skipped) skipped")
        #expect(ran >= 900)
    }

    @Test("tx_valid.json and tx_invalid.json: real signed transactions")
    func transactionVectors() throws {
        var ran = 0
        var skipped = 0
        for (name, valid) in [("tx_valid.json", true), ("tx_invalid.json", false)] {
            for entry in try Vectors.load(name) {
                guard entry.count == 3, let prevouts = entry[0] as? [[Any]], let hex = entry[1] as? String,
                    let enforceP2SH = entry[2] as? Bool
                else {
                    skipped += 1
                    continue
                }
                var scripts: [OutPoint: [UInt8]] = [:]
                var parsed = true
                for prevout in prevouts {
                    guard prevout.count >= 3, let hash = (prevout[0] as? String).flatMap(Hash256.init(hex:)),
                        let index = prevout[1] as? Int, let text = prevout[2] as? String,
                        let script = try? ScriptText.parse(text)
                    else {
                        parsed = false
                        break
                    }
                    scripts[OutPoint(txid: hash, index: UInt32(truncatingIfNeeded: index))] = script
                }
                guard parsed else {
                    skipped += 1
                    continue
                }
                ran += 1
                let flags: ScriptFlags = enforceP2SH ? [.p2sh] : []
                var ok = true
                var why = ""
                if let transaction = try? Transaction(bytes: Vectors.hex(hex)) {
                    do {
                        try Consensus.checkTransaction(transaction)
                        for (index, input) in transaction.inputs.enumerated() {
                            guard let script = scripts[input.previous] else {
                                ok = false
                                why = "no prevout for input \(index)"
                                break
                            }
                            try Interpreter.verify(
                                scriptSig: input.scriptSig, scriptPubKey: script, flags: flags,
                                checker: TransactionSignatureChecker(
                                    transaction: transaction, input: index, amount: 0))
                        }
                    } catch {
                        ok = false
                        why = "\(error)"
                    }
                } else {
                    ok = false
                    why = "does not parse"
                }
                #expect(ok == valid, "\(name): \(hex.prefix(60))… \(why)")
            }
        }
        print("transaction vectors: \(ran) run, \(skipped) skipped")
        #expect(ran >= 45)
    }
}

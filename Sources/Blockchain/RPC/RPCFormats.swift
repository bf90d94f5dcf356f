import Foundation

/// The JSON shapes of Bitcoin Core's RPC results (`src/core_write.cpp`, `src/rpc/blockchain.cpp`),
/// as Codable values: what existing tools (bitcoin-cli, python-bitcoinlib) read.
public enum RPCFormats {
    /// Satoshis as an exact decimal number of BTC (Core prints amounts as JSON numbers).
    public static func btc(_ satoshis: Int64) -> Decimal {
        Decimal(satoshis) / Decimal(Consensus.coin)
    }

    /// Core's `GetDifficulty`: how much harder than the easiest mainnet target.
    public static func difficulty(bits: UInt32) -> Double {
        var shift = Int((bits >> 24) & 0xff)
        let mantissa = Double(bits & 0x00ff_ffff)
        guard mantissa > 0 else { return 0 }
        var difficulty = Double(0x0000_ffff) / mantissa
        while shift < 29 {
            difficulty *= 256
            shift += 1
        }
        while shift > 29 {
            difficulty /= 256
            shift -= 1
        }
        return difficulty
    }

    /// Core's `ScriptToAsmStr`: pushes of up to 4 bytes as numbers, longer ones as hex, other
    /// opcodes by name; `[error]` where the script stops parsing.
    public static func asm(_ script: [UInt8]) -> String {
        var parts: [String] = []
        var parser = ScriptParser(script)
        while let element = parser.next() {
            if let data = element.data {
                if data.count <= 4, let number = try? ScriptNum.decode(data, requireMinimal: false) {
                    parts.append(String(number))
                } else {
                    parts.append(Hex.encode(data))
                }
            } else if element.opcode >= Opcode.op1 && element.opcode <= Opcode.op16 {
                parts.append(String(Int(element.opcode) - 0x50))
            } else if element.opcode == Opcode.op1Negate {
                parts.append("-1")
            } else if let name = Opcode.names[element.opcode] {
                parts.append("OP_" + name)
            } else {
                parts.append("OP_UNKNOWN")
            }
        }
        if parser.failed { parts.append("[error]") }
        return parts.joined(separator: " ")
    }

    /// Core's output types (`GetTxnOutputType`) and the address an output pays, if any.
    public static func classify(_ script: [UInt8], network: NetworkPrefixes) -> (
        type: String, address: String?
    ) {
        let count = script.count
        if count == 25, script[0] == 0x76, script[1] == 0xa9, script[2] == 0x14, script[23] == 0x88,
            script[24] == 0xac
        {
            return ("pubkeyhash", Address.p2pkh(Array(script[3..<23])).string(network: network))
        }
        if count == 23, script[0] == 0xa9, script[1] == 0x14, script[22] == 0x87 {
            return ("scripthash", Address.p2sh(Array(script[2..<22])).string(network: network))
        }
        if count >= 4, count <= 42, script[0] == 0 || (script[0] >= 0x51 && script[0] <= 0x60),
            Int(script[1]) == count - 2, (2...40).contains(count - 2)
        {
            let version: UInt8 = script[0] == 0 ? 0 : script[0] - 0x50
            let program = Array(script[2...])
            let address = Address.witness(version: version, program: program).string(network: network)
            switch (version, program.count) {
            case (0, 20): return ("witness_v0_keyhash", address)
            case (0, 32): return ("witness_v0_scripthash", address)
            case (0, _): return ("nonstandard", nil)
            case (1, 32): return ("witness_v1_taproot", address)
            default: return ("witness_unknown", address)
            }
        }
        if script.first == Opcode.opReturn { return ("nulldata", nil) }
        if count == 35 && script[0] == 33 || count == 67 && script[0] == 65, script.last == Opcode.checkSig {
            return ("pubkey", nil)
        }
        return ("nonstandard", nil)
    }

    public struct ScriptSig: Codable, Sendable {
        public let asm: String
        public let hex: String
    }

    public struct ScriptPubKey: Codable, Sendable {
        public let asm: String
        public let hex: String
        public let address: String?
        public let type: String
    }

    public struct Input: Codable, Sendable {
        public let coinbase: String?
        public let txid: String?
        public let vout: UInt32?
        public let scriptSig: ScriptSig?
        public let txinwitness: [String]?
        public let sequence: UInt32
    }

    public struct Output: Codable, Sendable {
        public let value: Decimal
        public let n: Int
        public let scriptPubKey: ScriptPubKey
    }

    /// A decoded transaction (`decoderawtransaction`; with the block fields for
    /// `getrawtransaction … true`).
    public struct TransactionInfo: Codable, Sendable {
        public let txid: String
        public let hash: String
        public let version: Int32
        public let size: Int
        public let vsize: Int
        public let weight: Int
        public let locktime: UInt32
        public let vin: [Input]
        public let vout: [Output]
        public var hex: String?
        public var blockhash: String?
        public var confirmations: Int?
        public var time: UInt32?
        public var blocktime: UInt32?
    }

    public static func transaction(_ transaction: Transaction, network: NetworkPrefixes, hex: Bool)
        -> TransactionInfo
    {
        let inputs = transaction.inputs.map { input -> Input in
            let witness = input.witness.isEmpty ? nil : input.witness.map { Hex.encode($0) }
            if transaction.isCoinbase {
                return Input(
                    coinbase: Hex.encode(input.scriptSig), txid: nil, vout: nil, scriptSig: nil,
                    txinwitness: witness, sequence: input.sequence)
            }
            return Input(
                coinbase: nil, txid: input.previous.txid.description, vout: input.previous.index,
                scriptSig: ScriptSig(asm: asm(input.scriptSig), hex: Hex.encode(input.scriptSig)),
                txinwitness: witness, sequence: input.sequence)
        }
        let outputs = transaction.outputs.enumerated().map { index, output -> Output in
            let (type, address) = classify(output.scriptPubKey, network: network)
            return Output(
                value: btc(output.value), n: index,
                scriptPubKey: ScriptPubKey(
                    asm: asm(output.scriptPubKey), hex: Hex.encode(output.scriptPubKey), address: address,
                    type: type))
        }
        let bytes = transaction.serialized()
        return TransactionInfo(
            txid: transaction.txid.description, hash: transaction.wtxid.description,
            version: transaction.version,
            size: bytes.count, vsize: transaction.virtualSize, weight: transaction.weight,
            locktime: transaction.lockTime, vin: inputs, vout: outputs, hex: hex ? Hex.encode(bytes) : nil)
    }

    /// `getblockheader … true`, and the fields `getblock` shares with it.
    public struct HeaderInfo: Codable, Sendable {
        public let hash: String
        public let confirmations: Int
        public let height: Int
        public let version: Int32
        public let versionHex: String
        public let merkleroot: String
        public let time: UInt32
        public let mediantime: UInt32
        public let nonce: UInt32
        public let bits: String
        public let difficulty: Double
        public let chainwork: String
        public let nTx: Int?
        public let previousblockhash: String?
        public let nextblockhash: String?
    }

    /// `getblock … 1` (transaction ids) or `… 2` (decoded transactions).
    public struct BlockInfo: Encodable, Sendable {
        public let header: HeaderInfo
        public let size: Int
        public let strippedsize: Int
        public let weight: Int
        public let tx: TransactionList

        public enum TransactionList: Encodable, Sendable {
            case ids([String])
            case decoded([TransactionInfo])
            public func encode(to encoder: any Encoder) throws {
                switch self {
                case .ids(let ids): try ids.encode(to: encoder)
                case .decoded(let transactions): try transactions.encode(to: encoder)
                }
            }
        }

        enum Keys: String, CodingKey { case size, strippedsize, weight, tx }

        public func encode(to encoder: any Encoder) throws {
            try header.encode(to: encoder)
            var container = encoder.container(keyedBy: Keys.self)
            try container.encode(size, forKey: .size)
            try container.encode(strippedsize, forKey: .strippedsize)
            try container.encode(weight, forKey: .weight)
            try container.encode(tx, forKey: .tx)
        }
    }
}

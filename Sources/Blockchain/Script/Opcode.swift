/// Script opcodes (Bitcoin Core's `opcodetype`), with their names as Core writes them.
public enum Opcode {
    public static let op0: UInt8 = 0x00
    public static let pushData1: UInt8 = 0x4c
    public static let pushData2: UInt8 = 0x4d
    public static let pushData4: UInt8 = 0x4e
    public static let op1Negate: UInt8 = 0x4f
    public static let reserved: UInt8 = 0x50
    public static let op1: UInt8 = 0x51
    public static let op16: UInt8 = 0x60
    public static let nop: UInt8 = 0x61
    public static let ver: UInt8 = 0x62
    public static let opIf: UInt8 = 0x63
    public static let notIf: UInt8 = 0x64
    public static let verIf: UInt8 = 0x65
    public static let verNotIf: UInt8 = 0x66
    public static let opElse: UInt8 = 0x67
    public static let endIf: UInt8 = 0x68
    public static let verify: UInt8 = 0x69
    public static let opReturn: UInt8 = 0x6a
    public static let dup: UInt8 = 0x76
    public static let equal: UInt8 = 0x87
    public static let equalVerify: UInt8 = 0x88
    public static let hash160: UInt8 = 0xa9
    public static let codeSeparator: UInt8 = 0xab
    public static let checkSig: UInt8 = 0xac
    public static let checkSigVerify: UInt8 = 0xad
    public static let checkMultiSig: UInt8 = 0xae
    public static let checkMultiSigVerify: UInt8 = 0xaf
    public static let nop1: UInt8 = 0xb0
    public static let nop10: UInt8 = 0xb9

    /// Names without the `OP_` prefix, by opcode.
    public static let names: [UInt8: String] = {
        var table: [UInt8: String] = [
            0x00: "0", 0x4c: "PUSHDATA1", 0x4d: "PUSHDATA2", 0x4e: "PUSHDATA4", 0x4f: "1NEGATE",
            0x50: "RESERVED",
            0x61: "NOP", 0x62: "VER", 0x63: "IF", 0x64: "NOTIF", 0x65: "VERIF", 0x66: "VERNOTIF",
            0x67: "ELSE",
            0x68: "ENDIF", 0x69: "VERIFY", 0x6a: "RETURN", 0x6b: "TOALTSTACK", 0x6c: "FROMALTSTACK",
            0x6d: "2DROP",
            0x6e: "2DUP", 0x6f: "3DUP", 0x70: "2OVER", 0x71: "2ROT", 0x72: "2SWAP", 0x73: "IFDUP",
            0x74: "DEPTH",
            0x75: "DROP", 0x76: "DUP", 0x77: "NIP", 0x78: "OVER", 0x79: "PICK", 0x7a: "ROLL", 0x7b: "ROT",
            0x7c: "SWAP", 0x7d: "TUCK", 0x7e: "CAT", 0x7f: "SUBSTR", 0x80: "LEFT", 0x81: "RIGHT",
            0x82: "SIZE",
            0x83: "INVERT", 0x84: "AND", 0x85: "OR", 0x86: "XOR", 0x87: "EQUAL", 0x88: "EQUALVERIFY",
            0x89: "RESERVED1", 0x8a: "RESERVED2", 0x8b: "1ADD", 0x8c: "1SUB", 0x8d: "2MUL", 0x8e: "2DIV",
            0x8f: "NEGATE", 0x90: "ABS", 0x91: "NOT", 0x92: "0NOTEQUAL", 0x93: "ADD", 0x94: "SUB",
            0x95: "MUL",
            0x96: "DIV", 0x97: "MOD", 0x98: "LSHIFT", 0x99: "RSHIFT", 0x9a: "BOOLAND", 0x9b: "BOOLOR",
            0x9c: "NUMEQUAL", 0x9d: "NUMEQUALVERIFY", 0x9e: "NUMNOTEQUAL", 0x9f: "LESSTHAN",
            0xa0: "GREATERTHAN",
            0xa1: "LESSTHANOREQUAL", 0xa2: "GREATERTHANOREQUAL", 0xa3: "MIN", 0xa4: "MAX", 0xa5: "WITHIN",
            0xa6: "RIPEMD160", 0xa7: "SHA1", 0xa8: "SHA256", 0xa9: "HASH160", 0xaa: "HASH256",
            0xab: "CODESEPARATOR", 0xac: "CHECKSIG", 0xad: "CHECKSIGVERIFY", 0xae: "CHECKMULTISIG",
            0xaf: "CHECKMULTISIGVERIFY", 0xb0: "NOP1", 0xb1: "NOP2", 0xb2: "NOP3", 0xb3: "NOP4", 0xb4: "NOP5",
            0xb5: "NOP6", 0xb6: "NOP7", 0xb7: "NOP8", 0xb8: "NOP9", 0xb9: "NOP10",
        ]
        for n in 1...16 { table[UInt8(0x50 + n)] = "\(n)" }
        return table
    }()

    /// Opcodes by name (`DUP` and `OP_DUP` alike; also CHECKLOCKTIMEVERIFY for NOP2).
    public static let byName: [String: UInt8] = {
        var table: [String: UInt8] = [:]
        for (code, name) in names {
            table["OP_" + name] = code
            if Int(name) == nil { table[name] = code }
        }
        table["OP_FALSE"] = 0x00
        table["FALSE"] = 0x00
        table["OP_TRUE"] = 0x51
        table["TRUE"] = 0x51
        table["NOP2"] = 0xb1
        table["CHECKLOCKTIMEVERIFY"] = 0xb1
        table["OP_CHECKLOCKTIMEVERIFY"] = 0xb1
        table["NOP3"] = 0xb2
        table["CHECKSEQUENCEVERIFY"] = 0xb2
        return table
    }()
}

/// One parsed element of a script: an opcode and, for pushes, its data.
public struct ScriptElement: Hashable, Sendable {
    public let opcode: UInt8
    public let data: [UInt8]?
    /// Where the element starts in the script.
    public let offset: Int
}

/// Walks a script element by element (Core's `GetScriptOp`).
public struct ScriptParser: Sequence, IteratorProtocol {
    let script: [UInt8]
    public internal(set) var position = 0
    /// Set when a push ran past the end (the rest cannot be parsed).
    public private(set) var failed = false

    public init(_ script: [UInt8]) { self.script = script }

    public mutating func next() -> ScriptElement? {
        guard !failed, position < script.count else { return nil }
        let start = position
        let opcode = script[position]
        position += 1
        guard opcode <= Opcode.pushData4 else {
            return ScriptElement(opcode: opcode, data: nil, offset: start)
        }
        var length = Int(opcode)
        let width =
            opcode == Opcode.pushData1
            ? 1 : opcode == Opcode.pushData2 ? 2 : opcode == Opcode.pushData4 ? 4 : 0
        if width > 0 {
            guard script.count - position >= width else {
                failed = true
                return nil
            }
            length = (0..<width).reduce(0) { $0 | Int(script[position + $1]) << (8 * $1) }
            position += width
        }
        guard length <= script.count - position else {
            failed = true
            return nil
        }
        defer { position += length }
        return ScriptElement(opcode: opcode, data: Array(script[position..<position + length]), offset: start)
    }
}

extension Array where Element == UInt8 {
    /// Appends a push of `data` in its minimal form (Core's `CScript << vector`).
    public mutating func appendPush(_ data: [UInt8]) {
        switch data.count {
        case 0..<Int(Opcode.pushData1): append(UInt8(data.count))
        case 0..<0x100: append(contentsOf: [Opcode.pushData1, UInt8(data.count)])
        case 0..<0x10000:
            append(contentsOf: [Opcode.pushData2, UInt8(data.count & 0xff), UInt8(data.count >> 8)])
        default:
            append(Opcode.pushData4)
            for shift in stride(from: 0, to: 32, by: 8) {
                append(UInt8(truncatingIfNeeded: data.count >> shift))
            }
        }
        append(contentsOf: data)
    }
}

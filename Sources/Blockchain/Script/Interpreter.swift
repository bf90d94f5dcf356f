/// Script verification flags (Bitcoin Core's `SCRIPT_VERIFY_*`).
public struct ScriptFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let p2sh = ScriptFlags(rawValue: 1 << 0)
    public static let strictEncoding = ScriptFlags(rawValue: 1 << 1)
    public static let derSignatures = ScriptFlags(rawValue: 1 << 2)
    public static let lowS = ScriptFlags(rawValue: 1 << 3)
    public static let nullDummy = ScriptFlags(rawValue: 1 << 4)
    public static let sigPushOnly = ScriptFlags(rawValue: 1 << 5)
    public static let minimalData = ScriptFlags(rawValue: 1 << 6)
    public static let discourageUpgradableNops = ScriptFlags(rawValue: 1 << 7)
    public static let cleanStack = ScriptFlags(rawValue: 1 << 8)
    public static let witness = ScriptFlags(rawValue: 1 << 11)
    public static let discourageUpgradableWitnessProgram = ScriptFlags(rawValue: 1 << 12)
    public static let minimalIf = ScriptFlags(rawValue: 1 << 13)
    public static let nullFail = ScriptFlags(rawValue: 1 << 14)
    public static let witnessPubkeyType = ScriptFlags(rawValue: 1 << 15)

    /// What this node enforces for blocks and relay: P2SH, strict DER, segwit, and the
    /// standardness rules on top for the mempool.
    public static let consensus: ScriptFlags = [.p2sh, .derSignatures, .nullDummy, .witness]
    public static let standard: ScriptFlags = [
        .p2sh, .strictEncoding, .derSignatures, .lowS, .nullDummy, .minimalData, .discourageUpgradableNops,
        .cleanStack, .witness, .discourageUpgradableWitnessProgram, .minimalIf, .nullFail, .witnessPubkeyType,
    ]
}

/// Which signature hashing a script is run under.
public enum SigVersion: Sendable { case base, witnessV0 }

/// Checks signatures for the interpreter (a transaction input in practice).
public protocol SignatureChecker {
    func checkSignature(_ signature: [UInt8], publicKey: [UInt8], scriptCode: [UInt8], version: SigVersion)
        -> Bool
}

/// A checker that accepts nothing (for scripts without a transaction).
public struct NoSignatureChecker: SignatureChecker {
    public init() {}
    public func checkSignature(_: [UInt8], publicKey _: [UInt8], scriptCode _: [UInt8], version _: SigVersion)
        -> Bool
    {
        false
    }
}

/// Bitcoin's script interpreter (Core's `EvalScript`/`VerifyScript`): P2PK, P2PKH, P2SH,
/// multisig, P2WPKH and P2WSH, with the limits of the consensus rules (10,000-byte scripts,
/// 520-byte pushes, 201 operations, 1,000 stack items, 4-byte numbers).
public enum Interpreter {
    public static let maxScriptSize = 10_000
    public static let maxPushSize = 520
    public static let maxOps = 201
    public static let maxStackSize = 1_000
    public static let maxPubkeysPerMultisig = 20

    static let disabled: Set<UInt8> = [
        0x7e, 0x7f, 0x80, 0x81, 0x83, 0x84, 0x85, 0x86, 0x8d, 0x8e, 0x95, 0x96, 0x97, 0x98, 0x99,
    ]

    /// Runs `script` on `stack`.
    public static func evaluate(
        _ script: [UInt8], stack: inout [[UInt8]], flags: ScriptFlags, checker: some SignatureChecker,
        version: SigVersion = .base
    ) throws(ScriptError) {
        guard script.count <= maxScriptSize else { throw .scriptSize }
        var altstack: [[UInt8]] = []
        var execution: [Bool] = []
        var operations = 0
        var codeStart = 0
        let minimal = flags.contains(.minimalData)
        var parser = ScriptParser(script)

        func pop() throws(ScriptError) -> [UInt8] {
            guard let top = stack.popLast() else { throw .invalidStackOperation }
            return top
        }
        func top(_ depth: Int) throws(ScriptError) -> [UInt8] {
            guard depth >= 1, stack.count >= depth else { throw .invalidStackOperation }
            return stack[stack.count - depth]
        }
        func number(_ depth: Int = 1, maxSize: Int = 4) throws(ScriptError) -> Int64 {
            try ScriptNum.decode(try top(depth), requireMinimal: minimal, maxSize: maxSize)
        }
        func need(_ count: Int) throws(ScriptError) {
            guard stack.count >= count else { throw .invalidStackOperation }
        }

        while let element = parser.next() {
            let executing = !execution.contains(false)
            let opcode = element.opcode
            if let data = element.data, data.count > maxPushSize { throw .pushSize }
            if opcode > Opcode.op16 {
                operations += 1
                guard operations <= maxOps else { throw .opCount }
            }
            if disabled.contains(opcode) { throw .disabledOpcode }
            if executing, let data = element.data {
                if minimal, !isMinimalPush(data, opcode: opcode) { throw .minimalData }
                stack.append(data)
            } else if executing || (opcode >= Opcode.opIf && opcode <= Opcode.endIf) {
                switch opcode {
                case Opcode.op1Negate, Opcode.op1...Opcode.op16:
                    stack.append(ScriptNum.encode(opcode == Opcode.op1Negate ? -1 : Int64(opcode) - 0x50))
                case Opcode.nop: break
                case Opcode.nop1...Opcode.nop10:
                    if flags.contains(.discourageUpgradableNops) { throw .discourageUpgradableNops }
                case Opcode.opIf, Opcode.notIf:
                    var value = false
                    if executing {
                        let condition = try pop()
                        if version == .witnessV0, flags.contains(.minimalIf) {
                            guard condition.count <= 1, condition.isEmpty || condition[0] == 1 else {
                                throw .minimalIf
                            }
                        }
                        value = ScriptNum.isTrue(condition)
                        if opcode == Opcode.notIf { value.toggle() }
                    }
                    execution.append(value)
                case Opcode.opElse:
                    guard let last = execution.popLast() else { throw .unbalancedConditional }
                    execution.append(!last)
                case Opcode.endIf:
                    guard execution.popLast() != nil else { throw .unbalancedConditional }
                case Opcode.verify:
                    guard ScriptNum.isTrue(try pop()) else { throw .verify }
                case Opcode.opReturn: throw .opReturn
                case 0x6b:  // TOALTSTACK
                    altstack.append(try pop())
                case 0x6c:  // FROMALTSTACK
                    guard let value = altstack.popLast() else { throw .invalidAltstackOperation }
                    stack.append(value)
                case 0x6d:  // 2DROP
                    try need(2)
                    stack.removeLast(2)
                case 0x6e:  // 2DUP
                    try need(2)
                    stack += [stack[stack.count - 2], stack[stack.count - 1]]
                case 0x6f:  // 3DUP
                    try need(3)
                    stack += stack[(stack.count - 3)...]
                case 0x70:  // 2OVER
                    try need(4)
                    stack += [stack[stack.count - 4], stack[stack.count - 3]]
                case 0x71:  // 2ROT
                    try need(6)
                    let moved = Array(stack[(stack.count - 6)..<(stack.count - 4)])
                    stack.removeSubrange((stack.count - 6)..<(stack.count - 4))
                    stack += moved
                case 0x72:  // 2SWAP
                    try need(4)
                    let n = stack.count
                    stack.swapAt(n - 4, n - 2)
                    stack.swapAt(n - 3, n - 1)
                case 0x73:  // IFDUP
                    let value = try top(1)
                    if ScriptNum.isTrue(value) { stack.append(value) }
                case 0x74:  // DEPTH
                    stack.append(ScriptNum.encode(Int64(stack.count)))
                case 0x75:  // DROP
                    _ = try pop()
                case Opcode.dup:
                    stack.append(try top(1))
                case 0x77:  // NIP
                    try need(2)
                    stack.remove(at: stack.count - 2)
                case 0x78:  // OVER
                    stack.append(try top(2))
                case 0x79, 0x7a:  // PICK, ROLL
                    let n = try number()
                    _ = try pop()
                    guard n >= 0, n < stack.count else { throw .invalidStackOperation }
                    let index = stack.count - 1 - Int(n)
                    let value = stack[index]
                    if opcode == 0x7a { stack.remove(at: index) }
                    stack.append(value)
                case 0x7b:  // ROT
                    try need(3)
                    let value = stack.remove(at: stack.count - 3)
                    stack.append(value)
                case 0x7c:  // SWAP
                    try need(2)
                    stack.swapAt(stack.count - 2, stack.count - 1)
                case 0x7d:  // TUCK
                    try need(2)
                    stack.insert(stack[stack.count - 1], at: stack.count - 2)
                case 0x82:  // SIZE
                    stack.append(ScriptNum.encode(Int64(try top(1).count)))
                case Opcode.equal, Opcode.equalVerify:
                    let b = try pop()
                    let a = try pop()
                    let equal = a == b
                    if opcode == Opcode.equalVerify {
                        guard equal else { throw .equalVerify }
                    } else {
                        stack.append(equal ? [1] : [])
                    }
                case 0x8b, 0x8c, 0x8f, 0x90, 0x91, 0x92:  // 1ADD 1SUB NEGATE ABS NOT 0NOTEQUAL
                    let value = try number()
                    _ = try pop()
                    let result: Int64
                    switch opcode {
                    case 0x8b: result = value + 1
                    case 0x8c: result = value - 1
                    case 0x8f: result = -value
                    case 0x90: result = abs(value)
                    case 0x91: result = value == 0 ? 1 : 0
                    default: result = value != 0 ? 1 : 0
                    }
                    stack.append(ScriptNum.encode(result))
                case 0x93...0xa4:  // ADD … MAX
                    let b = try number(1)
                    let a = try number(2)
                    stack.removeLast(2)
                    let result: Int64
                    switch opcode {
                    case 0x93: result = a + b
                    case 0x94: result = a - b
                    case 0x9a: result = a != 0 && b != 0 ? 1 : 0
                    case 0x9b: result = a != 0 || b != 0 ? 1 : 0
                    case 0x9c, 0x9d: result = a == b ? 1 : 0
                    case 0x9e: result = a != b ? 1 : 0
                    case 0x9f: result = a < b ? 1 : 0
                    case 0xa0: result = a > b ? 1 : 0
                    case 0xa1: result = a <= b ? 1 : 0
                    case 0xa2: result = a >= b ? 1 : 0
                    case 0xa3: result = min(a, b)
                    default: result = max(a, b)
                    }
                    if opcode == 0x9d {
                        guard result != 0 else { throw .numEqualVerify }
                    } else {
                        stack.append(ScriptNum.encode(result))
                    }
                case 0xa5:  // WITHIN
                    let high = try number(1)
                    let low = try number(2)
                    let value = try number(3)
                    stack.removeLast(3)
                    stack.append(low <= value && value < high ? [1] : [])
                case 0xa6...0xaa:
                    let value = try pop()
                    switch opcode {
                    case 0xa6: stack.append(BitcoinHash.ripemd160(value))
                    case 0xa7: stack.append(BitcoinHash.sha1(value))
                    case 0xa8: stack.append(BitcoinHash.sha256(value))
                    case 0xa9: stack.append(BitcoinHash.hash160(value))
                    default: stack.append(Hash256.doubleSHA256(value).bytes)
                    }
                case Opcode.codeSeparator:
                    codeStart = parser.position
                case Opcode.checkSig, Opcode.checkSigVerify:
                    try need(2)
                    let publicKey = stack[stack.count - 1]
                    let signature = stack[stack.count - 2]
                    var scriptCode = Array(script[codeStart...])
                    if version == .base {
                        var push: [UInt8] = []
                        push.appendPush(signature)
                        scriptCode = findAndDelete(scriptCode, push)
                    }
                    try checkSignatureEncoding(signature, flags: flags)
                    try checkPublicKeyEncoding(publicKey, flags: flags, version: version)
                    let valid = checker.checkSignature(
                        signature, publicKey: publicKey, scriptCode: scriptCode, version: version)
                    if !valid, flags.contains(.nullFail), !signature.isEmpty { throw .sigNullFail }
                    stack.removeLast(2)
                    if opcode == Opcode.checkSigVerify {
                        guard valid else { throw .checkSigVerify }
                    } else {
                        stack.append(valid ? [1] : [])
                    }
                case Opcode.checkMultiSig, Opcode.checkMultiSigVerify:
                    var i = 1
                    try need(i)
                    var keys = Int(try number(i))
                    guard keys >= 0, keys <= maxPubkeysPerMultisig else { throw .pubkeyCount }
                    operations += keys
                    guard operations <= maxOps else { throw .opCount }
                    i += 1
                    var keyIndex = i
                    var keysToClean = keys + 2
                    i += keys
                    try need(i)
                    var signatures = Int(try number(i))
                    guard signatures >= 0, signatures <= keys else { throw .sigCount }
                    i += 1
                    var signatureIndex = i
                    i += signatures
                    try need(i)
                    var scriptCode = Array(script[codeStart...])
                    if version == .base {
                        for k in 0..<signatures {
                            var push: [UInt8] = []
                            push.appendPush(stack[stack.count - signatureIndex - k])
                            scriptCode = findAndDelete(scriptCode, push)
                        }
                    }
                    var success = true
                    while success && signatures > 0 {
                        let signature = stack[stack.count - signatureIndex]
                        let publicKey = stack[stack.count - keyIndex]
                        try checkSignatureEncoding(signature, flags: flags)
                        try checkPublicKeyEncoding(publicKey, flags: flags, version: version)
                        if checker.checkSignature(
                            signature, publicKey: publicKey, scriptCode: scriptCode, version: version)
                        {
                            signatureIndex += 1
                            signatures -= 1
                        }
                        keyIndex += 1
                        keys -= 1
                        if signatures > keys { success = false }
                    }
                    while i > 1 {
                        i -= 1
                        if !success, flags.contains(.nullFail), keysToClean == 0, !(try top(1)).isEmpty {
                            throw .sigNullFail
                        }
                        if keysToClean > 0 { keysToClean -= 1 }
                        _ = try pop()
                    }
                    // The extra element popped for Satoshi's off-by-one.
                    let dummy = try pop()
                    if flags.contains(.nullDummy), !dummy.isEmpty { throw .sigNullDummy }
                    if opcode == Opcode.checkMultiSigVerify {
                        guard success else { throw .checkMultiSigVerify }
                    } else {
                        stack.append(success ? [1] : [])
                    }
                default:
                    throw .badOpcode
                }
            }
            guard stack.count + altstack.count <= maxStackSize else { throw .stackSize }
        }
        if parser.failed { throw .badOpcode }
        guard execution.isEmpty else { throw .unbalancedConditional }
    }

    /// Whether a push uses the shortest encoding (Core's `CheckMinimalPush`).
    static func isMinimalPush(_ data: [UInt8], opcode: UInt8) -> Bool {
        if data.isEmpty { return opcode == Opcode.op0 }
        if data.count == 1, data[0] >= 1, data[0] <= 16 { return false }
        if data.count == 1, data[0] == 0x81 { return false }
        if data.count <= 75 { return opcode == UInt8(data.count) }
        if data.count <= 255 { return opcode == Opcode.pushData1 }
        if data.count <= 65_535 { return opcode == Opcode.pushData2 }
        return true
    }

    /// Removes every push of `pattern` that starts at an opcode boundary (Core's `FindAndDelete`).
    static func findAndDelete(_ script: [UInt8], _ pattern: [UInt8]) -> [UInt8] {
        guard !pattern.isEmpty else { return script }
        var result: [UInt8] = []
        var found = false
        var parser = ScriptParser(script)
        var copyFrom = 0
        var position = 0
        while true {
            result += script[copyFrom..<position]
            while script.count - position >= pattern.count,
                script[position..<position + pattern.count].elementsEqual(pattern)
            {
                position += pattern.count
                found = true
            }
            copyFrom = position
            parser.position = position
            guard parser.next() != nil else { break }
            position = parser.position
        }
        guard found else { return script }
        result += script[copyFrom...]
        return result
    }

    /// BIP 66 strict DER (Core's `IsValidSignatureEncoding`), the hash type byte included.
    public static func isStrictDER(_ signature: [UInt8]) -> Bool {
        let s = signature
        guard s.count >= 9, s.count <= 73, s[0] == 0x30, Int(s[1]) == s.count - 3 else { return false }
        let lengthR = Int(s[3])
        guard 5 + lengthR < s.count else { return false }
        let lengthS = Int(s[5 + lengthR])
        guard lengthR + lengthS + 7 == s.count, s[2] == 0x02, lengthR != 0, s[4] & 0x80 == 0 else {
            return false
        }
        if lengthR > 1, s[4] == 0, s[5] & 0x80 == 0 { return false }
        guard s[lengthR + 4] == 0x02, lengthS != 0, s[lengthR + 6] & 0x80 == 0 else { return false }
        if lengthS > 1, s[lengthR + 6] == 0, s[lengthR + 7] & 0x80 == 0 { return false }
        return true
    }

    static func checkSignatureEncoding(_ signature: [UInt8], flags: ScriptFlags) throws(ScriptError) {
        guard !signature.isEmpty else { return }
        if !flags.isDisjoint(with: [.derSignatures, .lowS, .strictEncoding]), !isStrictDER(signature) {
            throw .sigDER
        }
        if flags.contains(.lowS), !PublicKey.hasLowS(Array(signature.dropLast())) { throw .sigHighS }
        if flags.contains(.strictEncoding) {
            let type = signature[signature.count - 1] & ~0x80
            guard type >= 1, type <= 3 else { throw .sigHashType }
        }
    }

    static func checkPublicKeyEncoding(_ key: [UInt8], flags: ScriptFlags, version: SigVersion)
        throws(ScriptError)
    {
        if flags.contains(.strictEncoding) {
            let valid =
                (key.count == 33 && (key[0] == 2 || key[0] == 3)) || (key.count == 65 && key[0] == 4)
            guard valid else { throw .pubkeyType }
        }
        if flags.contains(.witnessPubkeyType), version == .witnessV0 {
            guard key.count == 33, key[0] == 2 || key[0] == 3 else { throw .witnessPubkeyType }
        }
    }

    public static func isPushOnly(_ script: [UInt8]) -> Bool {
        var parser = ScriptParser(script)
        while let element = parser.next() {
            if element.opcode > Opcode.op16 { return false }
        }
        return !parser.failed
    }

    public static func isP2SH(_ script: [UInt8]) -> Bool {
        script.count == 23 && script[0] == Opcode.hash160 && script[1] == 0x14 && script[22] == Opcode.equal
    }

    /// A witness program: a version opcode (0, 1…16) and one push of 2…40 bytes.
    public static func witnessProgram(_ script: [UInt8]) -> (version: Int, program: [UInt8])? {
        guard script.count >= 4, script.count <= 42 else { return nil }
        guard script[0] == Opcode.op0 || (script[0] >= Opcode.op1 && script[0] <= Opcode.op16) else {
            return nil
        }
        guard Int(script[1]) + 2 == script.count else { return nil }
        let version = script[0] == 0 ? 0 : Int(script[0]) - 0x50
        return (version, Array(script[2...]))
    }

    /// Verifies an input: scriptSig, then scriptPubKey, P2SH and witness programs as the flags
    /// enable (Core's `VerifyScript`).
    /// Verifies input `input` of `transaction` spending `coin` (its scripts, witness and a
    /// signature checker for its amount): what the chain, the mempool and the node's blame
    /// rule each ask.
    public static func verify(
        _ transaction: Transaction, input: Int, spending coin: Coin, flags: ScriptFlags
    ) throws(ScriptError) {
        let spending = transaction.inputs[input]
        try verify(
            scriptSig: spending.scriptSig, scriptPubKey: coin.output.scriptPubKey, witness: spending.witness,
            flags: flags,
            checker: TransactionSignatureChecker(
                transaction: transaction, input: input, amount: coin.output.value))
    }

    public static func verify(
        scriptSig: [UInt8], scriptPubKey: [UInt8], witness: [[UInt8]] = [], flags: ScriptFlags,
        checker: some SignatureChecker
    ) throws(ScriptError) {
        if flags.contains(.sigPushOnly), !isPushOnly(scriptSig) { throw .sigPushOnly }
        var stack: [[UInt8]] = []
        try evaluate(scriptSig, stack: &stack, flags: flags, checker: checker)
        let copy = stack
        try evaluate(scriptPubKey, stack: &stack, flags: flags, checker: checker)
        guard let last = stack.last, ScriptNum.isTrue(last) else { throw .evalFalse }
        var hadWitness = false
        if flags.contains(.witness), let (version, program) = witnessProgram(scriptPubKey) {
            hadWitness = true
            guard scriptSig.isEmpty else { throw .witnessMalleated }
            try verifyWitness(
                version: version, program: program, witness: witness, flags: flags, checker: checker)
            stack = [[1]]
        }
        if flags.contains(.p2sh), isP2SH(scriptPubKey) {
            guard isPushOnly(scriptSig) else { throw .sigPushOnly }
            stack = copy
            guard let redeem = stack.popLast() else { throw .invalidStackOperation }
            try evaluate(redeem, stack: &stack, flags: flags, checker: checker)
            guard let top = stack.last, ScriptNum.isTrue(top) else { throw .evalFalse }
            if flags.contains(.witness), let (version, program) = witnessProgram(redeem) {
                hadWitness = true
                var expected: [UInt8] = []
                expected.appendPush(redeem)
                guard scriptSig == expected else { throw .witnessMalleatedP2SH }
                try verifyWitness(
                    version: version, program: program, witness: witness, flags: flags, checker: checker)
                stack = [[1]]
            }
        }
        if flags.contains(.cleanStack), stack.count != 1 { throw .cleanStack }
        if flags.contains(.witness), !hadWitness, !witness.isEmpty { throw .witnessUnexpected }
    }

    static func verifyWitness(
        version: Int, program: [UInt8], witness: [[UInt8]], flags: ScriptFlags, checker: some SignatureChecker
    ) throws(ScriptError) {
        guard version == 0 else {
            if flags.contains(.discourageUpgradableWitnessProgram) {
                throw .discourageUpgradableWitnessProgram
            }
            return
        }
        var stack: [[UInt8]]
        let script: [UInt8]
        switch program.count {
        case 32:
            guard let last = witness.last else { throw .witnessProgramWitnessEmpty }
            guard BitcoinHash.sha256(last) == program else { throw .witnessProgramMismatch }
            script = last
            stack = Array(witness.dropLast())
        case 20:
            guard witness.count == 2 else { throw .witnessProgramMismatch }
            script = [Opcode.dup, Opcode.hash160, 0x14] + program + [Opcode.equalVerify, Opcode.checkSig]
            stack = witness
        default:
            throw .witnessProgramWrongLength
        }
        guard !stack.contains(where: { $0.count > maxPushSize }) else { throw .pushSize }
        try evaluate(script, stack: &stack, flags: flags, checker: checker, version: .witnessV0)
        guard stack.count == 1 else { throw .cleanStack }
        guard ScriptNum.isTrue(stack[0]) else { throw .evalFalse }
    }
}

/// Why a script failed (Bitcoin Core's `ScriptError_t`, by the same names).
public enum ScriptError: Error, Sendable, Hashable, CustomStringConvertible {
    case evalFalse, opReturn
    case scriptSize, pushSize, opCount, stackSize, sigCount, pubkeyCount
    case verify, equalVerify, checkMultiSigVerify, checkSigVerify, numEqualVerify
    case badOpcode, disabledOpcode, invalidStackOperation, invalidAltstackOperation, unbalancedConditional
    case sigHashType, sigDER, minimalData, sigPushOnly, sigHighS, sigNullDummy, pubkeyType, cleanStack
    case minimalIf, sigNullFail
    case discourageUpgradableNops, discourageUpgradableWitnessProgram
    case witnessProgramWrongLength, witnessProgramWitnessEmpty, witnessProgramMismatch
    case witnessMalleated, witnessMalleatedP2SH, witnessUnexpected, witnessPubkeyType
    case numberOverflow, nonMinimalNumber

    public var description: String {
        switch self {
        case .evalFalse:
            return "script evaluated without error but finished with a false/empty top stack element"
        case .opReturn: return "OP_RETURN was encountered"
        case .scriptSize: return "script is too big"
        case .pushSize: return "push value size limit exceeded"
        case .opCount: return "operation limit exceeded"
        case .stackSize: return "stack size limit exceeded"
        case .sigCount: return "signature count negative or greater than pubkey count"
        case .pubkeyCount: return "pubkey count negative or limit exceeded"
        case .verify: return "script failed an OP_VERIFY operation"
        case .equalVerify: return "script failed an OP_EQUALVERIFY operation"
        case .checkMultiSigVerify: return "script failed an OP_CHECKMULTISIGVERIFY operation"
        case .checkSigVerify: return "script failed an OP_CHECKSIGVERIFY operation"
        case .numEqualVerify: return "script failed an OP_NUMEQUALVERIFY operation"
        case .badOpcode: return "opcode missing or not understood"
        case .disabledOpcode: return "attempted to use a disabled opcode"
        case .invalidStackOperation: return "operation not valid with the current stack size"
        case .invalidAltstackOperation: return "operation not valid with the current altstack size"
        case .unbalancedConditional: return "invalid OP_IF construction"
        case .sigHashType: return "signature hash type missing or not understood"
        case .sigDER: return "non-canonical DER signature"
        case .minimalData: return "data push larger than necessary"
        case .sigPushOnly: return "only push operators allowed in signatures"
        case .sigHighS: return "non-canonical signature: S value is unnecessarily high"
        case .sigNullDummy: return "dummy CHECKMULTISIG argument must be zero"
        case .pubkeyType: return "public key is neither compressed nor uncompressed"
        case .cleanStack: return "stack size must be exactly one after execution"
        case .minimalIf: return "OP_IF/NOTIF argument must be minimal"
        case .sigNullFail: return "signature must be zero for failed CHECK(MULTI)SIG operation"
        case .discourageUpgradableNops: return "NOPx reserved for soft-fork upgrades"
        case .discourageUpgradableWitnessProgram: return "witness version reserved for soft-fork upgrades"
        case .witnessProgramWrongLength: return "witness program has incorrect length"
        case .witnessProgramWitnessEmpty: return "witness program was passed an empty witness"
        case .witnessProgramMismatch: return "witness program hash mismatch"
        case .witnessMalleated: return "witness requires empty scriptSig"
        case .witnessMalleatedP2SH: return "witness requires only-redeemscript scriptSig"
        case .witnessUnexpected: return "witness provided for non-witness script"
        case .witnessPubkeyType: return "using non-compressed keys in segwit"
        case .numberOverflow: return "script number overflow"
        case .nonMinimalNumber: return "non-minimally encoded script number"
        }
    }
}

import Blockchain
import FuzzSupport

/// Bitcoin's parsers and the script interpreter, in one target (one build of their
/// dependencies): the first byte picks what the rest is fed to.
/// - wire frames: decode never traps; a decoded message re-encodes to the same frame;
/// - transactions and blocks: what parses serializes back to exactly the input;
/// - scripts: evaluation under every flag set ends in a value or a ScriptError, within limits.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzBitcoin(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let selector = input.first else { return 0 }
    let bytes = Array(input.dropFirst())
    let magic = ChainParameters.regtest.magic
    switch selector % 4 {
    case 0:
        let frame = magic + bytes
        if let (message, used) = try? P2PCodec.decode(ArraySlice(frame), magic: magic) {
            if case .unknown = message {
            } else {
                precondition(
                    P2PCodec.encode(message, magic: magic) == Array(frame.prefix(used)),
                    "frame did not round-trip")
            }
        }
    case 1:
        if let transaction = try? Transaction(bytes: bytes) {
            precondition(transaction.serialized() == bytes, "transaction did not round-trip")
            _ = transaction.txid
            _ = try? Consensus.checkTransaction(transaction)
        }
    case 2:
        if let block = try? Block(bytes: bytes) {
            precondition(block.serialized() == bytes, "block did not round-trip")
            _ = block.merkleRoot
        }
    default:
        let flags = ScriptFlags(rawValue: UInt32(selector) << 4 & 0xffff)
        var stack: [[UInt8]] = []
        let succeeded =
            (try? Interpreter.evaluate(bytes, stack: &stack, flags: flags, checker: NoSignatureChecker()))
            != nil
        // As in Bitcoin Core, the size is checked after each opcode: a script that fails with a
        // stack-size error may leave what its last opcode pushed (OP_3DUP pushes three) on top of
        // the limit; one that succeeds never exceeds it.
        precondition(
            stack.count <= Interpreter.maxStackSize + (succeeded ? 0 : 3), "stack past its limit")
        _ = try? Interpreter.verify(
            scriptSig: Array(bytes.prefix(bytes.count / 2)),
            scriptPubKey: Array(bytes.dropFirst(bytes.count / 2)),
            flags: flags.union(.p2sh), checker: NoSignatureChecker())
    }
    return 0
}

runFuzzer(fuzzBitcoin)

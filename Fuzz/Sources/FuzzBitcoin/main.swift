import Blockchain
import FuzzSupport

/// Bitcoin's parsers and the script interpreter, in one target (one build of their
/// dependencies): the first byte picks what the rest is fed to.
/// - wire frames: decode never traps; a decoded message re-encodes to the same frame;
/// - transactions and blocks: what parses serializes back to exactly the input;
/// - scripts: evaluation under every flag set ends in a value or a ScriptError, within limits;
/// - message payloads by command (addr, addrv2, inv, headers, …, past the frame checksum a fuzzer
///   cannot forge): decode never traps, what decodes re-encodes to the input;
/// - JSON-RPC bodies and BTC amounts: a request, a batch or a typed error; amounts in range.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzBitcoin(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let selector = input.first else { return 0 }
    let bytes = Array(input.dropFirst())
    let magic = ChainParameters.regtest.magic
    switch selector % 6 {
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
    case 4:
        let commands = [
            "addrv2", "addr", "inv", "getdata", "notfound", "headers", "getheaders", "tx", "ping",
            "sendaddrv2",
        ]
        let command = commands[Int(selector / 6) % commands.count]
        if let message = try? P2PCodec.decodePayload(command: command, bytes) {
            precondition(P2PCodec.payload(message) == bytes, "\(command) payload did not round-trip")
        }
    case 5:
        if let body = try? JSONRPC.parse(bytes) {
            let requests: [JSONRPCRequest]
            switch body {
            case .single(let request): requests = [request]
            case .batch(let items):
                precondition(items.count <= JSONRPC.maxBatch, "batch past its limit")
                requests = items.compactMap { try? $0.get() }
            }
            for request in requests {
                if let parameters = try? RPCParameters(request, names: ["a", "b", "c"]) {
                    for index in 0..<3 {
                        if let amount = try? parameters.amount(index) {
                            precondition(amount >= 0 && amount <= Consensus.maxMoney, "amount out of range")
                        }
                        _ = try? parameters.hash(index)
                        _ = try? parameters.int(index)
                    }
                }
            }
        }
        if let amount = try? Amount.satoshis(String(decoding: bytes.prefix(80), as: UTF8.self)) {
            precondition(amount >= 0 && amount <= Consensus.maxMoney, "amount out of range")
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

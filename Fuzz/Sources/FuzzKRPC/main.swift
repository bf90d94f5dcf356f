import FuzzSupport
import MainlineDHT

/// KRPC datagrams (BEP 5, 32, 42, 43, 44): any bytes give a message or a typed error; what
/// decodes re-encodes to bytes that decode to the same message.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzKRPC(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    switch Result(catching: { () throws(KRPCError) in try KRPCCodec.decode(bytes) }) {
    case .success(let message):
        precondition(
            (try? KRPCCodec.decode(KRPCCodec.encode(message))) == message, "re-encoding changed the message")
    case .failure(let error):
        precondition(error.code == 203 || error.code == 204, "unexpected error code")
    }
    return 0
}

runFuzzer(fuzzKRPC)

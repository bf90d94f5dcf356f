import FuzzSupport
import IPFS
import Multiformats

/// CAR v1/v2 files and their CBOR headers, and Bitswap messages and their framing: any input
/// gives values or a typed error, never a trap; every block handed out matches its CID; a header
/// that decodes re-encodes canonically; a Bitswap message that decodes re-encodes to one that
/// decodes equal.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzCAR(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    var offset = 0
    if let value = try? CBORValue.decode(bytes, at: &offset) {
        var again = 0
        precondition((try? CBORValue.decode(value.encoded(), at: &again)) != nil, "CBOR did not re-decode")
    }
    if var reader = try? CARReader(bytes: bytes) {
        var count = 0
        while count < 10_000, let block = try? reader.next() {
            precondition(
                block.cid.multihash.function.map {
                    Multihash.hash(block.block, with: $0) == block.cid.multihash
                } ?? false, "unverified block")
            count += 1
        }
    }
    if let message = try? BitswapMessage(decoding: bytes) {
        for block in message.blocks {
            precondition(
                block.cid.multihash.function.map {
                    Multihash.hash(block.data, with: $0) == block.cid.multihash
                }
                    ?? false, "a Bitswap block that is not its CID's")
        }
        precondition(
            (try? BitswapMessage(decoding: message.encoded())) == message, "Bitswap did not round-trip")
    }
    var frames = BitswapFrameReader()
    frames.feed(bytes)
    var count = 0
    while count < 1_000, (try? frames.next()) != nil { count += 1 }
    return 0
}

runFuzzer(fuzzCAR)

import Bencode
import FuzzSupport

/// Decodes in both modes; a strictly decoded value must re-encode to the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzBencode(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    if let value = try? BencodeDecoder().decode(bytes) {
        precondition(value.encoded() == bytes, "strict decode accepted non-canonical input")
    }
    if let node = try? BencodeDecoder(mode: .lenient).decodeNode(bytes) {
        precondition(node.range.upperBound <= bytes.count)
        _ = node.value.encoded()
    }
    return 0
}

runFuzzer(fuzzBencode)

import Bencode

#if canImport(Glibc)
    import Glibc
#endif

/// Decodes in both modes; a strictly decoded value must re-encode to the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzBencode(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let value = try? BencodeDecoder().decode(bytes) {
        precondition(value.encoded() == bytes, "strict decode accepted non-canonical input")
    }
    if let node = try? BencodeDecoder(mode: .lenient).decodeNode(bytes) {
        precondition(node.range.upperBound <= bytes.count)
        _ = node.value.encoded()
    }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

/// libFuzzer's own `main` is not linked into a Swift executable; this one hands over to it.
func runFuzzer() -> Never {
    var argc = CommandLine.argc
    var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
    exit(runDriver(&argc, &argv, fuzzBencode))
}

runFuzzer()

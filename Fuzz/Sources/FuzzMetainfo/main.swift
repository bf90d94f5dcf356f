import Bencode
import BitTorrent

#if canImport(Glibc)
    import Glibc
#endif

/// Parses a .torrent; an accepted one must re-encode to a torrent with the same info-hash.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzMetainfo(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    if let metainfo = try? Metainfo(parsing: bytes) {
        let again = try? Metainfo(parsing: metainfo.encoded())
        precondition(again?.infoHash == metainfo.infoHash, "re-encoding changed the info-hash")
        precondition(metainfo.info.pieceCount * metainfo.info.pieceLength >= Int(metainfo.info.totalLength))
    }
    _ = try? MagnetLink(parsing: String(decoding: bytes, as: UTF8.self))
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
    exit(runDriver(&argc, &argv, fuzzMetainfo))
}

runFuzzer()

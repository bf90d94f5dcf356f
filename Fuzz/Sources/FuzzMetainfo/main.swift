import Bencode
import BitTorrent
import FuzzSupport

/// Parses a .torrent; an accepted one must re-encode to a torrent with the same info-hash, and
/// every path it names (sanitised) must stay inside the download directory.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzMetainfo(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    if let metainfo = try? Metainfo(parsing: bytes) {
        let again = try? Metainfo(parsing: metainfo.encoded())
        precondition(again?.infoHash == metainfo.infoHash, "re-encoding changed the info-hash")
        precondition(metainfo.info.pieceCount * metainfo.info.pieceLength >= Int(metainfo.info.totalLength))
        for file in metainfo.info.files {
            for component in metainfo.info.relativePath(of: file) {
                precondition(
                    !component.isEmpty && component != "." && component != ".."
                        && !component.utf8.contains(where: { $0 == 0 || $0 == UInt8(ascii: "/") }),
                    "an unsafe path component: \(component)")
            }
        }
    }
    _ = try? MagnetLink(parsing: String(decoding: bytes, as: UTF8.self))
    return 0
}

runFuzzer(fuzzMetainfo)

import FuzzSupport
import IPFS
import Multiformats

/// dag-pb nodes and UnixFS data: any input gives a value or a typed error; a node that decodes
/// is canonical, so encoding it gives the input back; UnixFS data that decodes re-encodes to
/// something that decodes to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzDagPB(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    if let node = try? DagPBNode(decoding: bytes) {
        let sorted = node.links.map { $0.name ?? "" }
        let inOrder = zip(sorted, sorted.dropFirst()).allSatisfy {
            !Array($1.utf8).lexicographicallyPrecedes(Array($0.utf8))
        }
        if inOrder {
            precondition(node.encoded() == bytes, "a decoded dag-pb node did not re-encode to its bytes")
        }
        if let inner = node.data, let unixfs = try? UnixFSData(decoding: inner) {
            precondition(
                (try? UnixFSData(decoding: unixfs.encoded())) == unixfs, "UnixFS data did not round-trip")
        }
    }
    if let unixfs = try? UnixFSData(decoding: bytes) {
        precondition(
            (try? UnixFSData(decoding: unixfs.encoded())) == unixfs, "UnixFS data did not round-trip")
    }
    return 0
}

runFuzzer(fuzzDagPB)

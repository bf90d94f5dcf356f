import FuzzSupport
import Multiformats

/// CID and multibase text, binary CIDs and multiaddrs: any input gives a value or a typed error;
/// what parses formats back to something that parses to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzCID(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let text = String(decoding: bytes, as: UTF8.self)
    if let cid = try? CID(text) {
        precondition((try? CID(cid.description)) == cid, "CID text did not round-trip")
    }
    if let cid = try? CID(bytes: bytes) {
        precondition((try? CID(bytes: cid.bytes)) == cid, "binary CID did not round-trip")
    }
    if let (base, decoded) = try? Multibase.decode(text) {
        precondition(
            (try? Multibase.decode(base.encode(decoded)))?.1 == decoded, "multibase did not round-trip")
    }
    if let address = try? Multiaddr(bytes: bytes) {
        precondition((try? Multiaddr(bytes: address.bytes)) == address, "binary multiaddr did not round-trip")
    }
    if let address = try? Multiaddr(text) {
        precondition((try? Multiaddr(address.description)) == address, "multiaddr text did not round-trip")
    }
    return 0
}

runFuzzer(fuzzCID)

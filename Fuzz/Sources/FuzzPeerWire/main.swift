import BitTorrent
import FuzzSupport

/// Peer wire frames, extension payloads (BEP 10, 9, 11) and tracker replies (BEP 3, 15): any
/// bytes give a value or a typed error; decoded frames re-encode to the same bytes.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzPeerWire(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    if let message = try? PeerWireCodec.decode(bytes[...]), case .unknown = message {
    } else if let message = try? PeerWireCodec.decode(bytes[...]), message != .keepAlive {
        precondition(Array(PeerWireCodec.encode(message).dropFirst(4)) == bytes, "frame did not re-encode")
    }
    _ = try? Handshake(decoding: bytes)
    _ = try? ExtensionHandshake(decoding: bytes)
    _ = try? MetadataMessage(decoding: bytes)
    _ = try? PEXMessage(decoding: bytes)
    _ = try? HTTPTrackerCodec.parse(bytes)
    _ = try? UDPTrackerCodec.parseAnnounce(bytes, transaction: 0, ipv6: false)
    _ = try? UDPTrackerCodec.parseConnect(bytes, transaction: 0)
    _ = Bitfield(bytes: bytes, count: size * 8 - 3)
    return 0
}

runFuzzer(fuzzPeerWire)

import FuzzSupport
import Libp2p
import PeerCrypto

/// libp2p's parsers, the first byte choosing which: key protobufs and peer IDs, the Noise
/// handshake payload and a Noise handshake message, multistream-select lines, yamux frames
/// through a session. Any bytes give a value or a typed error; what decodes re-encodes to itself.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzLibp2p(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let selector = input.first else { return 0 }
    let bytes = Array(input.dropFirst())
    switch selector % 5 {
    case 0:
        if let key = try? EncodedKey(bytes: bytes) {
            precondition(key.bytes == bytes, "key protobuf did not round-trip")
            _ = try? PublicKey(key)
        }
        _ = try? PrivateKey(bytes: bytes)
        _ = try? PeerID(String(decoding: bytes.prefix(200), as: UTF8.self))
    case 1:
        if let payload = try? NoiseHandshakePayload(bytes: bytes) {
            precondition(
                (try? NoiseHandshakePayload(bytes: payload.bytes)) == payload, "payload did not round-trip")
        }
    case 2:
        // A responder's first read (32 bytes of ephemeral key and a payload), then as the
        // initiator's second (what a listener sends back).
        var responder = LibP2PNoiseHandshake(role: .responder, identity: FuzzKeys.identity)
        try? responder.readMessage(bytes)
        var initiator = LibP2PNoiseHandshake(role: .initiator, identity: FuzzKeys.identity)
        if (try? initiator.writeMessage()) != nil { try? initiator.readMessage(bytes) }
    case 3:
        var reader = MultistreamReader()
        _ = try? reader.feed(bytes)
        var listener = MultistreamListener(supported: ["/noise", "/yamux/1.0.0"])
        _ = try? listener.receive(bytes)
        var dialer = MultistreamDialer(protocols: ["/noise", "/tls/1.0.0"])
        _ = dialer.start()
        _ = try? dialer.receive(bytes)
    default:
        var session = YamuxSession(role: .server)
        var offset = 0
        while bytes.count - offset >= YamuxFrame.headerLength {
            guard var frame = try? YamuxFrame.header(bytes[offset..<offset + YamuxFrame.headerLength]) else {
                break
            }
            offset += YamuxFrame.headerLength
            if frame.kind == .data {
                // The driver refuses a payload past the stream's window before reading it.
                let length = Int(min(frame.length, session.receiveWindow(frame.stream) + 1))
                let available = min(length, bytes.count - offset)
                frame.payload = Array(bytes[offset..<offset + available])
                frame.length = UInt32(available)
                offset += available
            }
            let (_, error) = session.receive(frame)
            if error != nil { break }
        }
        precondition(session.streamCount <= session.limits.maxStreams, "streams past the limit")
    }
    return 0
}

enum FuzzKeys {
    static let identity: PrivateKey = {
        guard let key = try? PrivateKey(ed25519Seed: [UInt8](repeating: 7, count: 32)) else {
            fatalError("seed")
        }
        return key
    }()
}

runFuzzer(fuzzLibp2p)

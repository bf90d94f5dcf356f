import FuzzSupport
import Libp2p
import PeerCrypto

/// libp2p's parsers, the first byte choosing which: key protobufs and peer IDs, the Noise
/// handshake payload and a Noise handshake message, multistream-select lines, yamux frames
/// through a session, a TLS certificate and its libp2p extension, Noise transport frames, the
/// yamux byte reader, the connection upgrade from its first byte, and kad-dht messages through
/// a DHT node. Any bytes give a value or a typed error; what decodes re-encodes to itself.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzLibp2p(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let input = fuzzInput(data, size)
    guard let selector = input.first else { return 0 }
    let bytes = Array(input.dropFirst())
    switch selector % 10 {
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
    case 5:
        _ = try? LibP2PTLS.verify(chain: [bytes])
        if let signed = try? LibP2PTLS.parseSignedKey(bytes) {
            precondition(
                (try? LibP2PTLS.signedKey(hostKey: signed.hostKey, signature: signed.signature)) == bytes,
                "SignedKey did not round-trip")
        }
    case 6:
        // Frames a peer sends after the handshake: every one must fail to open (wrong key) or
        // wait for more, and sealing then opening must give the plaintext back.
        var receiving = FuzzKeys.transports.receive
        _ = try? receiving.open(bytes)
        var sending = FuzzKeys.transports.send
        var back = FuzzKeys.transports.receive
        if let sealed = try? sending.seal(Array(bytes.prefix(NoiseTransport.maxPlaintext))) {
            precondition(
                (try? back.open(sealed)) == Array(bytes.prefix(NoiseTransport.maxPlaintext)),
                "Noise round trip")
        }
    case 7:
        // Bytes as the socket gives them, in two reads, through the bounded frame reader.
        var session = YamuxSession(role: .client)
        var reader = YamuxFrameReader()
        let cut = bytes.count / 2
        _ = session.receive(bytes: Array(bytes[..<cut]), reader: &reader)
        _ = session.receive(bytes: Array(bytes[cut...]), reader: &reader)
        precondition(session.streamCount <= session.limits.maxStreams, "streams past the limit")
    case 8:
        // A connection's first bytes, as the listener and as the dialer read them.
        var listener = ConnectionUpgrade(role: .listener, identity: FuzzKeys.identity)
        _ = listener.start()
        _ = try? listener.receive(bytes)
        var dialer = ConnectionUpgrade(role: .dialer, identity: FuzzKeys.identity)
        _ = dialer.start()
        if (try? dialer.receive(Array("\u{13}/multistream/1.0.0\n\u{07}/noise\n".utf8))) != nil {
            _ = try? dialer.receive(bytes)
        }
    case 9:
        // A kad-dht message: decoded, re-encoded to itself, and answered by a node.
        if let message = try? KadMessage(decoding: bytes) {
            precondition(
                (try? KadMessage(decoding: message.encoded())) == message, "kad-dht did not round-trip")
            var node = KadNode(ownPeer: FuzzKeys.identity.publicKey.peerID, now: .zero)
            for peer in message.closerPeers {
                node.learned(peer.id, addresses: peer.addresses, server: true, now: .zero)
            }
            let sender = message.providerPeers.first?.id ?? FuzzKeys.identity.publicKey.peerID
            if let response = try? node.respond(
                to: message, from: sender, source: [127, 0, 0, 1], now: .zero)
            {
                precondition(
                    response.closerPeers.count <= node.configuration.k + 1, "a response past k peers")
            }
        }
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

    /// Both directions of a finished Noise XX handshake with fixed identities.
    static let transports: (send: NoiseTransport, receive: NoiseTransport) = {
        var initiator = LibP2PNoiseHandshake(role: .initiator, identity: identity)
        var responder = LibP2PNoiseHandshake(role: .responder, identity: identity)
        guard let first = try? initiator.writeMessage(), (try? responder.readMessage(first)) != nil,
            let second = try? responder.writeMessage(), (try? initiator.readMessage(second)) != nil,
            let third = try? initiator.writeMessage(), (try? responder.readMessage(third)) != nil,
            let mine = try? initiator.split(), let theirs = try? responder.split()
        else { fatalError("handshake") }
        return (
            NoiseTransport(send: mine.send, receive: mine.receive),
            NoiseTransport(send: theirs.send, receive: theirs.receive)
        )
    }()
}

runFuzzer(fuzzLibp2p)

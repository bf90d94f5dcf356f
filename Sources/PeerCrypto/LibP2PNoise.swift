import Crypto
import Multiformats

/// Why libp2p's Noise handshake (`/noise`) failed.
public enum LibP2PNoiseError: Error, Sendable, Hashable, CustomStringConvertible {
    case noise(NoiseError)
    /// The handshake payload protobuf is malformed (`what` names the field, `offset` the byte).
    case badPayload(String, offset: Int)
    case badIdentityKey(PeerCryptoError)
    /// The identity key's signature over the Noise static key does not verify.
    case badSignature
    /// The remote peer is not the one dialled.
    case unexpectedPeer(expected: PeerID, got: PeerID)

    public var description: String {
        switch self {
        case .noise(let error): return "noise: \(error)"
        case .badPayload(let what, let offset): return "noise handshake payload: \(what) at byte \(offset)"
        case .badIdentityKey(let error): return "noise handshake payload: identity key: \(error)"
        case .badSignature: return "the peer's identity key did not sign its Noise static key"
        case .unexpectedPeer(let expected, let got): return "dialled \(expected) but the peer is \(got)"
        }
    }
}

/// The payload each side sends in libp2p's Noise handshake (noise spec, "Handshake payload"):
/// `message NoiseHandshakePayload { bytes identity_key = 1; bytes identity_sig = 2;
/// NoiseExtensions extensions = 4; }` with `message NoiseExtensions { repeated bytes
/// webtransport_certhashes = 1; repeated string stream_muxers = 2; }`.
public struct NoiseHandshakePayload: Sendable, Hashable {
    /// The identity's public key protobuf.
    public var identityKey: [UInt8]
    /// Its signature over `"noise-libp2p-static-key:"` and the Noise static public key.
    public var identitySignature: [UInt8]
    /// Stream multiplexers offered (early muxer negotiation), in preference order.
    public var streamMuxers: [String]

    public static let maxLength = 16 << 10
    public static let maxMuxers = 16

    public init(identityKey: [UInt8], identitySignature: [UInt8], streamMuxers: [String] = []) {
        self.identityKey = identityKey
        self.identitySignature = identitySignature
        self.streamMuxers = streamMuxers
    }

    public var bytes: [UInt8] {
        var out = Protobuf.field(1, identityKey) + Protobuf.field(2, identitySignature)
        if !streamMuxers.isEmpty {
            out += Protobuf.field(4, streamMuxers.flatMap { Protobuf.field(2, Array($0.utf8)) })
        }
        return out
    }

    /// Length-delimited fields of a protobuf message, in order; unknown varint fields skipped
    /// (proto3 readers ignore what they do not know), other wire types refused.
    public init(bytes: [UInt8]) throws(LibP2PNoiseError) {
        guard bytes.count <= Self.maxLength else { throw .badPayload("\(bytes.count) bytes", offset: 0) }
        var key: [UInt8]?
        var signature: [UInt8]?
        var muxers: [String] = []
        let fields: [(UInt64, [UInt8])]
        do {
            fields = try Protobuf.fields(bytes)
        } catch {
            throw .badPayload(error.what, offset: error.offset)
        }
        for (number, value) in fields {
            switch number {
            case 1: key = value
            case 2: signature = value
            case 4:
                let extensions: [(UInt64, [UInt8])]
                do {
                    extensions = try Protobuf.fields(value)
                } catch {
                    throw .badPayload("extensions: \(error.what)", offset: error.offset)
                }
                for (inner, entry) in extensions where inner == 2 {
                    guard muxers.count < Self.maxMuxers, let name = String(validating: entry, as: UTF8.self)
                    else {
                        throw .badPayload("stream muxer names in the extensions", offset: 0)
                    }
                    muxers.append(name)
                }
            default: break
            }
        }
        guard let key else { throw .badPayload("no identity_key", offset: bytes.count) }
        guard let signature else { throw .badPayload("no identity_sig", offset: bytes.count) }
        self.init(identityKey: key, identitySignature: signature, streamMuxers: muxers)
    }
}

/// libp2p's `/noise` security handshake (noise spec) over ``NoiseXX``: each side proves its
/// identity by signing its Noise static key, and the dialler checks it reached the peer it
/// meant. Sans I/O: the driver frames each message with a 2-byte big-endian length.
public struct LibP2PNoiseHandshake: Sendable {
    public static let protocolID = "/noise"
    static let signaturePrefix = Array("noise-libp2p-static-key:".utf8)

    var noise: NoiseXX
    let identity: PrivateKey
    let expected: PeerID?
    let muxers: [String]
    /// The remote peer, its key and the muxers it offered, once its payload is read.
    public private(set) var remotePeer: PeerID?
    public private(set) var remoteKey: PublicKey?
    public private(set) var remoteMuxers: [String] = []

    /// `expected` is the peer ID dialled (the initiator must know it; a listener takes anyone).
    public init(
        role: NoiseXX.Role, identity: PrivateKey, expected: PeerID? = nil, streamMuxers: [String] = [],
        staticKey: Curve25519.KeyAgreement.PrivateKey = Curve25519.KeyAgreement.PrivateKey()
    ) {
        noise = NoiseXX(role: role, staticKey: staticKey)
        self.identity = identity
        self.expected = expected
        self.muxers = streamMuxers
    }

    public var isComplete: Bool { noise.isComplete }
    public var isWriting: Bool { noise.isWriting }

    func ownPayload() throws -> [UInt8] {
        let staticKey = Array(noise.staticKey.publicKey.rawRepresentation)
        return NoiseHandshakePayload(
            identityKey: identity.publicKey.encoded.bytes,
            identitySignature: try identity.sign(Self.signaturePrefix + staticKey),
            streamMuxers: muxers
        ).bytes
    }

    /// The next handshake message (the first carries no payload; the second and third carry the
    /// sender's identity).
    public mutating func writeMessage() throws -> [UInt8] {
        let payload = noise.step == 0 ? [] : try ownPayload()
        do {
            return try noise.writeMessage(payload: payload)
        } catch {
            throw LibP2PNoiseError.noise(error)
        }
    }

    /// Reads the other side's message; the one carrying its identity is verified here.
    public mutating func readMessage(_ message: [UInt8]) throws(LibP2PNoiseError) {
        let payload: [UInt8]
        do {
            payload = try noise.readMessage(message)
        } catch {
            throw .noise(error)
        }
        guard noise.step >= 2 else { return }  // the first message has no identity
        let decoded = try NoiseHandshakePayload(bytes: payload)
        let key: PublicKey
        do {
            key = try PublicKey(bytes: decoded.identityKey)
        } catch {
            throw .badIdentityKey(error)
        }
        guard let remoteStatic = noise.remoteStatic,
            key.verify(decoded.identitySignature, for: Self.signaturePrefix + remoteStatic)
        else { throw .badSignature }
        let peer = key.peerID
        if let expected, expected != peer { throw .unexpectedPeer(expected: expected, got: peer) }
        remotePeer = peer
        remoteKey = key
        remoteMuxers = decoded.streamMuxers
    }

    /// The transport ciphers (send, receive) once complete.
    public func split() throws(LibP2PNoiseError) -> (send: NoiseCipherState, receive: NoiseCipherState) {
        do {
            return try noise.split()
        } catch {
            throw .noise(error)
        }
    }
}

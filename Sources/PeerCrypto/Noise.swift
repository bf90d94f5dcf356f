import Crypto
import Foundation

/// Why a Noise handshake or transport message was refused.
public enum NoiseError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A handshake message shorter than its pattern needs (`needed` bytes at least).
    case tooShort(got: Int, needed: Int)
    /// A ciphertext did not authenticate (wrong key, tampered, replayed or reordered).
    case decryptionFailed
    /// A message over Noise's 65,535-byte limit.
    case tooLong(Int)
    /// A write or read out of turn, or after the handshake ended.
    case outOfTurn
    /// 2⁶⁴ − 1 messages under one key: the connection must close (Noise §5.1).
    case nonceExhausted
    case badKey

    public var description: String {
        switch self {
        case .tooShort(let got, let needed): return "a handshake message of \(got) bytes (\(needed) needed)"
        case .decryptionFailed: return "a message did not decrypt (tampered, replayed or the wrong key)"
        case .tooLong(let count): return "a message of \(count) bytes (Noise allows 65,535)"
        case .outOfTurn: return "a handshake message out of turn"
        case .nonceExhausted: return "the nonce ran out: the connection must close"
        case .badKey: return "a Curve25519 public key that is not 32 bytes"
        }
    }
}

/// One direction of a Noise session (Noise §5.1 CipherState): ChaCha20-Poly1305 with the
/// nonce as 32 zero bits and a 64-bit little-endian counter, which may not wrap.
public struct NoiseCipherState: Sendable {
    var key: SymmetricKey?
    public private(set) var nonce: UInt64 = 0

    public static let maxMessage = 65_535
    public static let tagLength = 16

    init(key: SymmetricKey? = nil) { self.key = key }

    var hasKey: Bool { key != nil }

    func chachaNonce() throws(NoiseError) -> ChaChaPoly.Nonce {
        var bytes = [UInt8](repeating: 0, count: 12)
        for index in 0..<8 { bytes[4 + index] = UInt8(truncatingIfNeeded: nonce >> (8 * UInt64(index))) }
        guard let value = try? ChaChaPoly.Nonce(data: bytes) else { throw .decryptionFailed }
        return value
    }

    /// Encrypts `plaintext` with associated data `ad` (without a key: returns it as it is).
    public mutating func encrypt(_ plaintext: [UInt8], ad: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        guard key != nil else { return plaintext }
        var this = self
        let sealed = plaintext.withUnsafeBytes { bytes in
            Result { () throws(NoiseError) in try this.seal(bytes, ad: ad) }
        }
        self = this
        let (ciphertext, tag) = try sealed.get()
        var out = [UInt8]()
        out.reserveCapacity(ciphertext.count + tag.count)
        out += ciphertext
        out += tag
        return out
    }

    /// Encrypts `plaintext` (a transport message, keyed), returning swift-crypto's ciphertext and
    /// tag without copying them: the transport writes them straight into its output buffer.
    public mutating func seal(_ plaintext: UnsafeRawBufferPointer, ad: [UInt8] = []) throws(NoiseError) -> (
        ciphertext: Data, tag: Data
    ) {
        guard let key else { throw .outOfTurn }
        guard nonce < UInt64.max else { throw .nonceExhausted }
        guard plaintext.count + Self.tagLength <= Self.maxMessage else { throw .tooLong(plaintext.count) }
        guard
            let box = try? ChaChaPoly.seal(
                plaintext, using: key, nonce: try chachaNonce(), authenticating: ad)
        else { throw .decryptionFailed }
        nonce += 1
        return (box.ciphertext, box.tag)
    }

    /// Decrypts and authenticates `ciphertext` (without a key: returns it as it is).
    public mutating func decrypt(_ ciphertext: [UInt8], ad: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        guard key != nil else { return ciphertext }
        return Array(try open(ciphertext[...], ad: ad))
    }

    /// Decrypts and authenticates one transport message (ciphertext and tag, keyed); the
    /// plaintext is swift-crypto's, uncopied.
    public mutating func open(_ message: ArraySlice<UInt8>, ad: [UInt8] = []) throws(NoiseError) -> Data {
        guard let key else { throw .outOfTurn }
        guard nonce < UInt64.max else { throw .nonceExhausted }
        guard message.count <= Self.maxMessage else { throw .tooLong(message.count) }
        guard message.count >= Self.tagLength else { throw .decryptionFailed }
        // One contiguous nonce ‖ ciphertext ‖ tag, the form swift-crypto opens without copying.
        var combined = Data(capacity: 12 + message.count)
        combined.append(contentsOf: [0, 0, 0, 0] as [UInt8])
        withUnsafeBytes(of: nonce.littleEndian) { combined.append(contentsOf: $0) }
        message.withUnsafeBytes { combined.append(contentsOf: $0) }
        guard
            let box = try? ChaChaPoly.SealedBox(combined: combined),
            let plaintext = try? ChaChaPoly.open(box, using: key, authenticating: ad)
        else { throw .decryptionFailed }
        nonce += 1
        return plaintext
    }
}

/// Noise §5.2 SymmetricState with SHA-256: the chaining key, the handshake hash and the cipher.
struct NoiseSymmetricState: Sendable {
    var chainingKey: [UInt8]
    var hash: [UInt8]
    var cipher = NoiseCipherState()

    init(protocolName: String) {
        let name = Array(protocolName.utf8)
        hash =
            name.count <= 32
            ? name + [UInt8](repeating: 0, count: 32 - name.count) : Array(SHA256.hash(data: name))
        chainingKey = hash
    }

    mutating func mixHash(_ data: [UInt8]) {
        hash = Array(SHA256.hash(data: hash + data))
    }

    /// Noise's HKDF is RFC 5869's with the chaining key as salt and no info.
    static func hkdf(_ chainingKey: [UInt8], _ input: [UInt8]) -> ([UInt8], [UInt8]) {
        let output = HKDF<SHA256>.deriveKey(
            inputKeyMaterial: SymmetricKey(data: input), salt: chainingKey, info: [UInt8](),
            outputByteCount: 64)
        let bytes = output.withUnsafeBytes { Array($0) }
        return (Array(bytes[0..<32]), Array(bytes[32..<64]))
    }

    mutating func mixKey(_ input: [UInt8]) {
        let (next, key) = Self.hkdf(chainingKey, input)
        chainingKey = next
        cipher = NoiseCipherState(key: SymmetricKey(data: key))
    }

    mutating func encryptAndHash(_ plaintext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let ciphertext = try cipher.encrypt(plaintext, ad: hash)
        mixHash(ciphertext)
        return ciphertext
    }

    mutating func decryptAndHash(_ ciphertext: [UInt8]) throws(NoiseError) -> [UInt8] {
        let plaintext = try cipher.decrypt(ciphertext, ad: hash)
        mixHash(ciphertext)
        return plaintext
    }

    func split() -> (NoiseCipherState, NoiseCipherState) {
        let (first, second) = Self.hkdf(chainingKey, [])
        return (
            NoiseCipherState(key: SymmetricKey(data: first)),
            NoiseCipherState(key: SymmetricKey(data: second))
        )
    }
}

/// The `Noise_XX_25519_ChaChaPoly_SHA256` handshake as a sans-I/O state machine (Noise §7.5,
/// the pattern libp2p's `/noise` uses): `-> e`, `<- e, ee, s, es`, `-> s, se`. Each side calls
/// ``writeMessage(payload:)`` and ``readMessage(_:)`` in turn; after the third message
/// ``split()`` gives the transport ciphers. No sockets, no clock; the ephemeral key comes from
/// swift-crypto's generator unless a test passes one.
public struct NoiseXX: Sendable {
    public enum Role: Sendable { case initiator, responder }

    public static let protocolName = "Noise_XX_25519_ChaChaPoly_SHA256"

    public let role: Role
    let staticKey: Curve25519.KeyAgreement.PrivateKey
    var ephemeral: Curve25519.KeyAgreement.PrivateKey
    var symmetric = NoiseSymmetricState(protocolName: NoiseXX.protocolName)
    /// The remote side's keys, once read.
    public private(set) var remoteEphemeral: [UInt8]?
    public private(set) var remoteStatic: [UInt8]?
    /// Messages done (0 to 3).
    public private(set) var step = 0

    public init(
        role: Role, staticKey: Curve25519.KeyAgreement.PrivateKey, prologue: [UInt8] = [],
        ephemeral: Curve25519.KeyAgreement.PrivateKey = Curve25519.KeyAgreement.PrivateKey()
    ) {
        self.role = role
        self.staticKey = staticKey
        self.ephemeral = ephemeral
        symmetric.mixHash(prologue)
    }

    /// Whether all three messages are done.
    public var isComplete: Bool { step == 3 }
    /// The handshake hash (Noise §11.2: channel binding), final once complete.
    public var handshakeHash: [UInt8] { symmetric.hash }
    /// Whether it is this side's turn to write.
    public var isWriting: Bool { (step % 2 == 0) == (role == .initiator) && step < 3 }

    func dh(_ local: Curve25519.KeyAgreement.PrivateKey, _ remote: [UInt8]?) throws(NoiseError) -> [UInt8] {
        guard let remote, let key = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: remote),
            let shared = try? local.sharedSecretFromKeyAgreement(with: key)
        else { throw .badKey }
        return shared.withUnsafeBytes { Array($0) }
    }

    /// The next message of this side, carrying `payload` (encrypted from the second message on).
    public mutating func writeMessage(payload: [UInt8] = []) throws(NoiseError) -> [UInt8] {
        guard isWriting else { throw .outOfTurn }
        var out: [UInt8] = []
        switch step {
        case 0:  // -> e
            let key = Array(ephemeral.publicKey.rawRepresentation)
            out += key
            symmetric.mixHash(key)
        case 1:  // <- e, ee, s, es
            let key = Array(ephemeral.publicKey.rawRepresentation)
            out += key
            symmetric.mixHash(key)
            symmetric.mixKey(try dh(ephemeral, remoteEphemeral))
            out += try symmetric.encryptAndHash(Array(staticKey.publicKey.rawRepresentation))
            symmetric.mixKey(try dh(staticKey, remoteEphemeral))
        default:  // -> s, se
            out += try symmetric.encryptAndHash(Array(staticKey.publicKey.rawRepresentation))
            symmetric.mixKey(try dh(staticKey, remoteEphemeral))
        }
        out += try symmetric.encryptAndHash(payload)
        guard out.count <= NoiseCipherState.maxMessage else { throw .tooLong(out.count) }
        step += 1
        return out
    }

    /// Reads the other side's next message; returns its payload.
    public mutating func readMessage(_ message: [UInt8]) throws(NoiseError) -> [UInt8] {
        guard !isWriting, step < 3 else { throw .outOfTurn }
        guard message.count <= NoiseCipherState.maxMessage else { throw .tooLong(message.count) }
        var rest = message[...]
        func take(_ count: Int) throws(NoiseError) -> [UInt8] {
            guard rest.count >= count else {
                throw .tooShort(got: message.count, needed: message.count - rest.count + count)
            }
            defer { rest = rest.dropFirst(count) }
            return Array(rest.prefix(count))
        }
        switch step {
        case 0:  // -> e
            let key = try take(32)
            remoteEphemeral = key
            symmetric.mixHash(key)
        case 1:  // <- e, ee, s, es
            let key = try take(32)
            remoteEphemeral = key
            symmetric.mixHash(key)
            symmetric.mixKey(try dh(ephemeral, remoteEphemeral))
            remoteStatic = try symmetric.decryptAndHash(try take(32 + NoiseCipherState.tagLength))
            symmetric.mixKey(try dh(ephemeral, remoteStatic))
        default:  // -> s, se
            remoteStatic = try symmetric.decryptAndHash(try take(32 + NoiseCipherState.tagLength))
            symmetric.mixKey(try dh(ephemeral, remoteStatic))
        }
        let payload = try symmetric.decryptAndHash(Array(rest))
        step += 1
        return payload
    }

    /// The transport ciphers once the handshake is complete: what this side sends with and
    /// what it receives with (Noise §5.2 Split; the initiator sends with the first).
    public func split() throws(NoiseError) -> (send: NoiseCipherState, receive: NoiseCipherState) {
        guard isComplete else { throw .outOfTurn }
        let (first, second) = symmetric.split()
        return role == .initiator ? (first, second) : (second, first)
    }
}

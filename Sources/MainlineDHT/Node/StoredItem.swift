import Bencode
import Crypto

/// A BEP 44 item: an immutable value (found under the SHA-1 of its bencoding) or a mutable one
/// (found under the SHA-1 of an Ed25519 public key and an optional salt, signed, with a sequence
/// number that only grows).
public struct DHTItem: Sendable, Hashable {
    /// The value's bencoding (at most ``maxValueSize`` bytes).
    public var value: [UInt8]
    /// Mutable items only.
    public var key: [UInt8]?
    public var signature: [UInt8]?
    public var seq: Int64?
    public var salt: [UInt8]

    /// BEP 44: values are at most 1000 bytes bencoded, salts at most 64.
    public static let maxValueSize = 1000
    public static let maxSaltSize = 64

    /// An immutable item holding `value` (bencoded bytes).
    public init(immutable value: [UInt8]) {
        self.value = value
        salt = []
    }

    /// A mutable item, signed by `signer`.
    public init(
        mutable value: [UInt8], seq: Int64, salt: [UInt8] = [], signer: Curve25519.Signing.PrivateKey
    ) throws {
        self.value = value
        self.seq = seq
        self.salt = salt
        key = Array(signer.publicKey.rawRepresentation)
        signature = Array(try signer.signature(for: Self.signedBytes(salt: salt, seq: seq, value: value)))
    }

    /// A mutable item as received.
    public init(value: [UInt8], key: [UInt8], signature: [UInt8], seq: Int64, salt: [UInt8]) {
        self.value = value
        self.key = key
        self.signature = signature
        self.seq = seq
        self.salt = salt
    }

    public var isMutable: Bool { key != nil }

    /// Where the item is stored: SHA-1 of the value (immutable) or of key + salt (mutable).
    public var target: NodeID {
        if let key { return Self.target(key: key, salt: salt) }
        return Self.target(immutable: value)
    }

    public static func target(immutable value: [UInt8]) -> NodeID {
        NodeID(bytes: Array(Insecure.SHA1.hash(data: value))) ?? .zero
    }

    public static func target(key: [UInt8], salt: [UInt8] = []) -> NodeID {
        NodeID(bytes: Array(Insecure.SHA1.hash(data: key + salt))) ?? .zero
    }

    /// What a mutable item's signature covers (BEP 44): `4:salt<n>:<salt>` when there is a salt,
    /// then `3:seqi<seq>e1:v` and the value's bencoding.
    public static func signedBytes(salt: [UInt8], seq: Int64, value: [UInt8]) -> [UInt8] {
        var bytes: [UInt8] = []
        if !salt.isEmpty { bytes += Array("4:salt\(salt.count):".utf8) + salt }
        bytes += Array("3:seqi\(seq)e1:v".utf8) + value
        return bytes
    }

    /// Why an item is refused, with BEP 44's error codes.
    public enum Problem: Error, Sendable, Hashable {
        case valueTooBig, saltTooBig, badSignature, casMismatch, seqTooLow, notBencode

        public var code: Int {
            switch self {
            case .valueTooBig: return 205
            case .saltTooBig: return 207
            case .badSignature: return 206
            case .casMismatch: return 301
            case .seqTooLow: return 302
            case .notBencode: return 203
            }
        }

        public var message: String {
            switch self {
            case .valueTooBig: return "message (v field) too big"
            case .saltTooBig: return "salt (salt field) too big"
            case .badSignature: return "invalid signature"
            case .casMismatch: return "CAS mismatch, re-read value and try again"
            case .seqTooLow: return "sequence number less than current"
            case .notBencode: return "v is not bencoded"
            }
        }
    }

    /// Checks sizes and, for mutable items, the signature.
    public func validate() throws(Problem) {
        guard value.count <= Self.maxValueSize else { throw .valueTooBig }
        guard salt.count <= Self.maxSaltSize else { throw .saltTooBig }
        guard (try? BencodeDecoder(mode: .lenient).decode(value)) != nil else { throw .notBencode }
        guard let key else { return }
        guard let signature, let seq,
            let publicKey = try? Curve25519.Signing.PublicKey(rawRepresentation: key),
            publicKey.isValidSignature(signature, for: Self.signedBytes(salt: salt, seq: seq, value: value))
        else { throw .badSignature }
    }
}

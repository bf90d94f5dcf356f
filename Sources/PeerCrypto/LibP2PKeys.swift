import Crypto
import Foundation
import Multiformats
import _CryptoExtras

/// Why a key, signature or peer ID was refused.
public enum PeerCryptoError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A key protobuf that does not follow the spec (`what` names the field, `offset` the byte).
    case badEncoding(String, offset: Int)
    case unsupportedKeyType(UInt64)
    case badKey(KeyType, String)
    case badPeerID(String)

    public var description: String {
        switch self {
        case .badEncoding(let what, let offset): return "key encoding: \(what) at byte \(offset)"
        case .unsupportedKeyType(let type): return "key type \(type) is not supported"
        case .badKey(let type, let why): return "\(type) key: \(why)"
        case .badPeerID(let why): return "peer ID: \(why)"
        }
    }
}

/// The key types of libp2p's key protobuf (peer-ids spec, "Keys").
public enum KeyType: UInt64, Sendable, Hashable, CustomStringConvertible {
    case rsa = 0
    case ed25519 = 1
    case secp256k1 = 2
    case ecdsa = 3

    public var description: String {
        switch self {
        case .rsa: return "RSA"
        case .ed25519: return "Ed25519"
        case .secp256k1: return "Secp256k1"
        case .ecdsa: return "ECDSA"
        }
    }
}

/// A key as libp2p sends and stores it: `message PublicKey { required KeyType Type = 1; required
/// bytes Data = 2; }` (and the same shape for private keys), in the spec's deterministic
/// encoding: both fields, in field order, no others.
public struct EncodedKey: Sendable, Hashable {
    public var type: KeyType
    public var data: [UInt8]
    /// Largest key data accepted (an RSA-8192 public key is about 1.1 KB; private keys more).
    public static let maxDataLength = 8 << 10

    public init(type: KeyType, data: [UInt8]) {
        self.type = type
        self.data = data
    }

    /// The protobuf bytes: `08 <type> 12 <length> <data>`.
    public var bytes: [UInt8] {
        [0x08] + Varint.encode(type.rawValue) + [0x12] + Varint.encode(UInt64(data.count)) + data
    }

    /// Reads the protobuf strictly: field 1 (varint) then field 2 (bytes), each once, nothing else.
    public init(bytes: [UInt8]) throws(PeerCryptoError) {
        var offset = 0
        guard bytes.first == 0x08 else { throw .badEncoding("field 1 (Type) must come first", offset: 0) }
        offset = 1
        let typeCode: UInt64
        do {
            typeCode = try Varint.decode(bytes, at: &offset)
        } catch {
            throw .badEncoding("the key type varint", offset: offset)
        }
        guard let type = KeyType(rawValue: typeCode) else { throw .unsupportedKeyType(typeCode) }
        guard offset < bytes.count, bytes[offset] == 0x12 else {
            throw .badEncoding("field 2 (Data) must follow the type", offset: offset)
        }
        offset += 1
        let start = offset
        let length: UInt64
        do {
            length = try Varint.decode(bytes, at: &offset)
        } catch {
            throw .badEncoding("the data length varint", offset: start)
        }
        guard length <= UInt64(Self.maxDataLength) else {
            throw .badEncoding("key data of \(length) bytes (at most \(Self.maxDataLength))", offset: start)
        }
        guard bytes.count - offset == Int(length) else {
            throw .badEncoding(
                bytes.count - offset < Int(length) ? "the key data is cut short" : "bytes after the key data",
                offset: offset)
        }
        self.type = type
        self.data = Array(bytes[offset...])
    }
}

/// A public key of a peer: what verifies its signatures and what its peer ID is made of.
public struct PublicKey: Sendable, Hashable {
    public let encoded: EncodedKey

    /// The smallest RSA modulus accepted (peer-ids spec: "at least 2048 bits").
    public static let minRSABits = 2_048
    /// The largest (go-libp2p refuses keys over 8192 bits).
    public static let maxRSABits = 8_192

    /// Checks the key data for its type (Ed25519: 32 bytes; ECDSA: a PKIX DER P-256 key;
    /// secp256k1: a 33-byte compressed point; RSA: a PKIX DER key of 2,048 to 8,192 bits).
    public init(_ encoded: EncodedKey) throws(PeerCryptoError) {
        switch encoded.type {
        case .ed25519:
            guard (try? Curve25519.Signing.PublicKey(rawRepresentation: encoded.data)) != nil else {
                throw .badKey(.ed25519, "\(encoded.data.count) bytes, not a 32-byte public key")
            }
        case .ecdsa:
            guard (try? P256.Signing.PublicKey(derRepresentation: encoded.data)) != nil else {
                throw .badKey(.ecdsa, "not a PKIX DER P-256 public key")
            }
        case .secp256k1:
            guard encoded.data.count == 33, (try? Secp256k1.PublicKey(bytes: encoded.data)) != nil else {
                throw .badKey(.secp256k1, "not a 33-byte compressed secp256k1 point")
            }
        case .rsa:
            guard let key = try? _RSA.Signing.PublicKey(derRepresentation: encoded.data) else {
                throw .badKey(.rsa, "not a PKIX DER RSA public key of at least \(Self.minRSABits) bits")
            }
            guard key.keySizeInBits <= Self.maxRSABits else {
                throw .badKey(.rsa, "\(key.keySizeInBits) bits (at most \(Self.maxRSABits))")
            }
        }
        self.encoded = encoded
    }

    /// Reads a public key protobuf.
    public init(bytes: [UInt8]) throws(PeerCryptoError) {
        try self.init(try EncodedKey(bytes: bytes))
    }

    public var type: KeyType { encoded.type }

    /// Whether `signature` signs `message` (Ed25519: RFC 8032; ECDSA: SHA-256, DER signature).
    public func verify(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        switch encoded.type {
        case .ed25519:
            guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: encoded.data) else {
                return false
            }
            return key.isValidSignature(signature, for: message)
        case .ecdsa:
            guard let key = try? P256.Signing.PublicKey(derRepresentation: encoded.data),
                let parsed = try? P256.Signing.ECDSASignature(derRepresentation: signature)
            else { return false }
            return key.isValidSignature(parsed, for: message)
        case .secp256k1:
            guard let key = try? Secp256k1.PublicKey(bytes: encoded.data) else { return false }
            return key.verify(der: signature, hash: Array(SHA256.hash(data: message)))
        case .rsa:
            // PKCS #1 v1.5 with SHA-256, as go-libp2p signs.
            guard let key = try? _RSA.Signing.PublicKey(derRepresentation: encoded.data) else { return false }
            return key.isValidSignature(
                _RSA.Signing.RSASignature(rawRepresentation: signature), for: SHA256.hash(data: message),
                padding: .insecurePKCS1v1_5)
        }
    }

    /// The peer ID of this key (peer-ids spec: the identity multihash of the protobuf when it is
    /// at most 42 bytes, its SHA-256 multihash otherwise).
    public var peerID: PeerID { PeerID(publicKey: self) }
}

/// A node's own identity: the private key it signs with.
public struct PrivateKey: Sendable {
    enum Storage: Sendable {
        case ed25519(Curve25519.Signing.PrivateKey)
        case ecdsa(P256.Signing.PrivateKey)
        case secp256k1(Secp256k1.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey)
    }
    let storage: Storage

    /// A new random key of `type` (RSA: 2,048 bits).
    public static func generate(_ type: KeyType = .ed25519) throws(PeerCryptoError) -> PrivateKey {
        switch type {
        case .ed25519: return PrivateKey(storage: .ed25519(Curve25519.Signing.PrivateKey()))
        case .ecdsa: return PrivateKey(storage: .ecdsa(P256.Signing.PrivateKey()))
        case .secp256k1: return PrivateKey(storage: .secp256k1(.generate()))
        case .rsa:
            guard let key = try? _RSA.Signing.PrivateKey(keySize: .bits2048) else {
                throw .badKey(.rsa, "key generation failed")
            }
            return PrivateKey(storage: .rsa(key))
        }
    }

    public var type: KeyType {
        switch storage {
        case .ed25519: return .ed25519
        case .ecdsa: return .ecdsa
        case .secp256k1: return .secp256k1
        case .rsa: return .rsa
        }
    }

    /// An Ed25519 key from its 32-byte seed.
    public init(ed25519Seed seed: [UInt8]) throws(PeerCryptoError) {
        guard let key = try? Curve25519.Signing.PrivateKey(rawRepresentation: seed) else {
            throw .badKey(.ed25519, "a seed must be 32 bytes, not \(seed.count)")
        }
        self.init(storage: .ed25519(key))
    }

    init(storage: Storage) { self.storage = storage }

    /// Reads a private key protobuf as libp2p stores it (Ed25519: the 32-byte seed and the
    /// 32-byte public key; ECDSA: SEC 1 or PKCS #8 DER). The public half must match the seed.
    public init(bytes: [UInt8]) throws(PeerCryptoError) {
        let encoded = try EncodedKey(bytes: bytes)
        switch encoded.type {
        case .ed25519:
            guard encoded.data.count == 64 else {
                throw .badKey(.ed25519, "private key data of \(encoded.data.count) bytes, not 64")
            }
            try self.init(ed25519Seed: Array(encoded.data.prefix(32)))
            guard publicKey.encoded.data == Array(encoded.data.suffix(32)) else {
                throw .badKey(.ed25519, "the public half does not belong to the seed")
            }
        case .ecdsa:
            guard let key = try? P256.Signing.PrivateKey(derRepresentation: encoded.data) else {
                throw .badKey(.ecdsa, "not a DER P-256 private key")
            }
            self = PrivateKey(storage: .ecdsa(key))
        case .secp256k1:
            guard let key = try? Secp256k1.PrivateKey(bytes: encoded.data) else {
                throw .badKey(.secp256k1, "not a 32-byte secp256k1 secret key")
            }
            self = PrivateKey(storage: .secp256k1(key))
        case .rsa:
            // PKCS #1 DER, as go-libp2p stores it (Kubo's repository identities).
            guard let key = try? _RSA.Signing.PrivateKey(derRepresentation: encoded.data) else {
                throw .badKey(.rsa, "not a DER RSA private key of at least \(PublicKey.minRSABits) bits")
            }
            self = PrivateKey(storage: .rsa(key))
        }
    }

    /// The private key protobuf (what an identity file holds).
    public var bytes: [UInt8] {
        switch storage {
        case .ed25519(let key):
            return EncodedKey(
                type: .ed25519, data: Array(key.rawRepresentation + key.publicKey.rawRepresentation)
            )
            .bytes
        case .ecdsa(let key):
            return EncodedKey(type: .ecdsa, data: Array(key.derRepresentation)).bytes
        case .secp256k1(let key):
            return EncodedKey(type: .secp256k1, data: key.bytes).bytes
        case .rsa(let key):
            return EncodedKey(type: .rsa, data: Array(key.derRepresentation)).bytes
        }
    }

    public var publicKey: PublicKey {
        switch storage {
        case .ed25519(let key):
            return PublicKey(
                unchecked: EncodedKey(type: .ed25519, data: Array(key.publicKey.rawRepresentation)))
        case .ecdsa(let key):
            return PublicKey(
                unchecked: EncodedKey(type: .ecdsa, data: Array(key.publicKey.derRepresentation)))
        case .secp256k1(let key):
            return PublicKey(
                unchecked: EncodedKey(type: .secp256k1, data: key.publicKey(compressed: true).bytes))
        case .rsa(let key):
            return PublicKey(unchecked: EncodedKey(type: .rsa, data: Array(key.publicKey.derRepresentation)))
        }
    }

    /// Signs `message` (Ed25519: RFC 8032; ECDSA and secp256k1: SHA-256 then a DER signature;
    /// RSA: PKCS #1 v1.5 over SHA-256).
    public func sign(_ message: [UInt8]) throws -> [UInt8] {
        switch storage {
        case .ed25519(let key): return Array(try key.signature(for: message))
        case .ecdsa(let key): return Array(try key.signature(for: message).derRepresentation)
        case .secp256k1(let key): return key.sign(hash: Array(SHA256.hash(data: message)))
        case .rsa(let key):
            return Array(
                try key.signature(for: SHA256.hash(data: message), padding: .insecurePKCS1v1_5)
                    .rawRepresentation)
        }
    }
}

extension PublicKey {
    /// A key this module made itself (no need to check it again).
    init(unchecked encoded: EncodedKey) { self.encoded = encoded }
}

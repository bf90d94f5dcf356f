internal import CSecp256k1

/// secp256k1 (SEC 2) through libsecp256k1: the curve Bitcoin signs with, and one of libp2p's
/// identity key types. Keys are checked on parse; signatures are normalised to low S before
/// they are verified, so either form of a signature verifies.
public enum Secp256k1 {
    /// Why bytes are not a secp256k1 key.
    public struct KeyError: Error, Sendable, Hashable, CustomStringConvertible {
        public let why: String
        public var description: String { why }
    }

    /// The one libsecp256k1 context: created and randomised once, then only read (signing and
    /// verifying with a const context is thread-safe).
    final class Context: @unchecked Sendable {
        static let shared = Context()
        let pointer: OpaquePointer

        private init() {
            pointer = secp256k1_context_create(UInt32(SECP256K1_CONTEXT_SIGN | SECP256K1_CONTEXT_VERIFY))!
            var seed = [UInt8](repeating: 0, count: 32)
            var generator = SystemRandomNumberGenerator()
            for index in seed.indices { seed[index] = generator.next() }
            _ = secp256k1_context_randomize(pointer, seed)
        }
    }

    /// A public key, compressed (33 bytes) or not (65).
    public struct PublicKey: Hashable, Sendable {
        public let bytes: [UInt8]
        /// libsecp256k1's parsed form (64 bytes), kept so that verifying does not parse again.
        let parsed: [UInt8]

        public static func == (a: PublicKey, b: PublicKey) -> Bool { a.bytes == b.bytes }
        public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }

        /// Parses and checks a serialized key (on the curve).
        public init(bytes: [UInt8]) throws(KeyError) {
            guard bytes.count == 33 || bytes.count == 65 else {
                throw KeyError(why: "public key of \(bytes.count) bytes")
            }
            var key = secp256k1_pubkey()
            guard secp256k1_ec_pubkey_parse(Context.shared.pointer, &key, bytes, bytes.count) == 1 else {
                throw KeyError(why: "not a point on secp256k1")
            }
            self.bytes = bytes
            self.parsed = withUnsafeBytes(of: key.data) { Array($0) }
        }

        init(trusted bytes: [UInt8], parsed: [UInt8]) {
            self.bytes = bytes
            self.parsed = parsed
        }

        public var isCompressed: Bool { bytes.count == 33 }

        /// The 33-byte compressed form (what libp2p's key protobuf holds).
        public var compressed: [UInt8] {
            guard !isCompressed else { return bytes }
            var key = secp256k1_pubkey()
            withUnsafeMutableBytes(of: &key.data) { $0.copyBytes(from: parsed) }
            var out = [UInt8](repeating: 0, count: 33)
            var length = out.count
            _ = secp256k1_ec_pubkey_serialize(
                Context.shared.pointer, &out, &length, &key, UInt32(SECP256K1_EC_COMPRESSED))
            return out
        }

        /// Verifies a 64-byte compact R‖S signature over a 32-byte hash (normalised to low S).
        public func verify(compact: [UInt8], hash: [UInt8]) -> Bool {
            guard hash.count == 32, compact.count == 64 else { return false }
            let context = Context.shared.pointer
            var signature = secp256k1_ecdsa_signature()
            guard secp256k1_ecdsa_signature_parse_compact(context, &signature, compact) == 1 else {
                return false
            }
            var key = secp256k1_pubkey()
            withUnsafeMutableBytes(of: &key.data) { $0.copyBytes(from: parsed) }
            var normalized = secp256k1_ecdsa_signature()
            _ = secp256k1_ecdsa_signature_normalize(context, &normalized, &signature)
            return secp256k1_ecdsa_verify(context, &normalized, hash, &key) == 1
        }

        /// Verifies a strict DER signature over a 32-byte hash.
        public func verify(der: [UInt8], hash: [UInt8]) -> Bool {
            guard let compact = Secp256k1.compact(der: der) else { return false }
            return verify(compact: compact, hash: hash)
        }
    }

    /// A private key (32 bytes, in [1, n − 1]).
    public struct PrivateKey: Hashable, Sendable {
        public let bytes: [UInt8]

        public init(bytes: [UInt8]) throws(KeyError) {
            guard bytes.count == 32, secp256k1_ec_seckey_verify(Context.shared.pointer, bytes) == 1 else {
                throw KeyError(why: "not a valid secp256k1 secret key")
            }
            self.bytes = bytes
        }

        /// A fresh key from the system's random source.
        public static func generate() -> PrivateKey {
            var generator = SystemRandomNumberGenerator()
            while true {
                let candidate = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
                if let key = try? PrivateKey(bytes: candidate) { return key }
            }
        }

        public func publicKey(compressed: Bool = true) -> PublicKey {
            let context = Context.shared.pointer
            var key = secp256k1_pubkey()
            _ = secp256k1_ec_pubkey_create(context, &key, bytes)
            var out = [UInt8](repeating: 0, count: 65)
            var length = out.count
            _ = secp256k1_ec_pubkey_serialize(
                context, &out, &length, &key,
                UInt32(compressed ? SECP256K1_EC_COMPRESSED : SECP256K1_EC_UNCOMPRESSED))
            return PublicKey(
                trusted: Array(out.prefix(length)), parsed: withUnsafeBytes(of: key.data) { Array($0) })
        }

        /// ECDSA over a 32-byte hash with RFC 6979 nonces; libsecp256k1 always gives low S. DER.
        public func sign(hash: [UInt8]) -> [UInt8] {
            precondition(hash.count == 32, "sign a 32-byte hash")
            let context = Context.shared.pointer
            var signature = secp256k1_ecdsa_signature()
            _ = secp256k1_ecdsa_sign(context, &signature, hash, bytes, nil, nil)
            var der = [UInt8](repeating: 0, count: 72)
            var length = der.count
            _ = secp256k1_ecdsa_signature_serialize_der(context, &der, &length, &signature)
            return Array(der.prefix(length))
        }
    }

    /// The compact R‖S of a strict DER signature; nil when it is not strict DER.
    public static func compact(der: [UInt8]) -> [UInt8]? {
        let context = Context.shared.pointer
        var signature = secp256k1_ecdsa_signature()
        guard secp256k1_ecdsa_signature_parse_der(context, &signature, der, der.count) == 1 else {
            return nil
        }
        var out = [UInt8](repeating: 0, count: 64)
        _ = secp256k1_ecdsa_signature_serialize_compact(context, &out, &signature)
        return out
    }

    /// Whether a compact signature's S is in the lower half (BIP 146's LOW_S rule).
    public static func hasLowS(compact: [UInt8]) -> Bool {
        guard compact.count == 64 else { return false }
        let context = Context.shared.pointer
        var signature = secp256k1_ecdsa_signature()
        guard secp256k1_ecdsa_signature_parse_compact(context, &signature, compact) == 1 else { return false }
        return secp256k1_ecdsa_signature_normalize(context, nil, &signature) == 0
    }

    /// BIP 340 Schnorr signatures over x-only keys.
    public enum Schnorr {
        public static func verify(signature: [UInt8], message: [UInt8], xOnlyKey: [UInt8]) -> Bool {
            guard signature.count == 64, xOnlyKey.count == 32 else { return false }
            let context = Context.shared.pointer
            var key = secp256k1_xonly_pubkey()
            guard secp256k1_xonly_pubkey_parse(context, &key, xOnlyKey) == 1 else { return false }
            return secp256k1_schnorrsig_verify(context, signature, message, message.count, &key) == 1
        }

        /// Signs `message` (32 bytes) with BIP 340's default nonce (auxiliary randomness `aux`).
        public static func sign(message: [UInt8], key: PrivateKey, aux: [UInt8]? = nil) -> (
            signature: [UInt8], xOnlyKey: [UInt8]
        ) {
            let context = Context.shared.pointer
            var pair = secp256k1_keypair()
            _ = secp256k1_keypair_create(context, &pair, key.bytes)
            var signature = [UInt8](repeating: 0, count: 64)
            if let aux {
                _ = secp256k1_schnorrsig_sign32(context, &signature, message, &pair, aux)
            } else {
                _ = secp256k1_schnorrsig_sign32(context, &signature, message, &pair, nil)
            }
            var xonly = secp256k1_xonly_pubkey()
            _ = secp256k1_keypair_xonly_pub(context, &xonly, nil, &pair)
            var out = [UInt8](repeating: 0, count: 32)
            _ = secp256k1_xonly_pubkey_serialize(context, &out, &xonly)
            return (signature, out)
        }
    }
}

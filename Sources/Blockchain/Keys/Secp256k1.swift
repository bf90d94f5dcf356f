internal import CNettle
internal import CSecp256k1
import Crypto

/// The one libsecp256k1 context: created and randomised once, then only read (signing and
/// verifying with a const context is thread-safe).
final class Secp256k1Context: @unchecked Sendable {
    static let shared = Secp256k1Context()
    let pointer: OpaquePointer

    private init() {
        pointer = secp256k1_context_create(UInt32(SECP256K1_CONTEXT_SIGN | SECP256K1_CONTEXT_VERIFY))!
        var seed = [UInt8](repeating: 0, count: 32)
        var generator = SystemRandomNumberGenerator()
        for index in seed.indices { seed[index] = generator.next() }
        _ = secp256k1_context_randomize(pointer, seed)
    }
}

/// Hashes Bitcoin uses besides double SHA-256.
public enum BitcoinHash {
    public static func sha256(_ data: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: data)) }

    /// RIPEMD-160 (Nettle).
    public static func ripemd160(_ data: [UInt8]) -> [UInt8] {
        var context = ripemd160_ctx()
        nettle_ripemd160_init(&context)
        data.withUnsafeBufferPointer { nettle_ripemd160_update(&context, $0.count, $0.baseAddress) }
        var digest = [UInt8](repeating: 0, count: 20)
        nettle_ripemd160_digest(&context, 20, &digest)
        return digest
    }

    /// RIPEMD-160 of SHA-256: public key and script hashes in addresses.
    public static func hash160(_ data: [UInt8]) -> [UInt8] { ripemd160(sha256(data)) }

    public static func sha1(_ data: [UInt8]) -> [UInt8] { Array(Insecure.SHA1.hash(data: data)) }
}

/// A secp256k1 public key, compressed (33 bytes) or not (65).
public struct PublicKey: Hashable, Sendable {
    public let bytes: [UInt8]
    /// libsecp256k1's parsed form (64 bytes), kept so that verifying does not parse again.
    let parsed: [UInt8]

    public static func == (a: PublicKey, b: PublicKey) -> Bool { a.bytes == b.bytes }
    public func hash(into hasher: inout Hasher) { hasher.combine(bytes) }

    /// Parses and checks a serialized key (on the curve).
    public init(bytes: [UInt8]) throws(BlockchainError) {
        guard bytes.count == 33 || bytes.count == 65 else {
            throw .badKey("public key of \(bytes.count) bytes")
        }
        var key = secp256k1_pubkey()
        guard secp256k1_ec_pubkey_parse(Secp256k1Context.shared.pointer, &key, bytes, bytes.count) == 1 else {
            throw .badKey("not a point on secp256k1")
        }
        self.bytes = bytes
        self.parsed = withUnsafeBytes(of: key.data) { Array($0) }
    }

    public var isCompressed: Bool { bytes.count == 33 }
    public var hash160: [UInt8] { BitcoinHash.hash160(bytes) }

    /// Verifies a DER signature (parsed strictly when it is strict DER, else leniently as Bitcoin
    /// Core does for old signatures; normalised to low S) over a 32-byte message hash.
    public func verify(derSignature: [UInt8], hash: [UInt8]) -> Bool {
        guard hash.count == 32 else { return false }
        let context = Secp256k1Context.shared.pointer
        var signature = secp256k1_ecdsa_signature()
        if secp256k1_ecdsa_signature_parse_der(context, &signature, derSignature, derSignature.count) != 1 {
            guard let compact = LaxDER.parse(derSignature),
                secp256k1_ecdsa_signature_parse_compact(context, &signature, compact) == 1
            else { return false }
        }
        var key = secp256k1_pubkey()
        withUnsafeMutableBytes(of: &key.data) { $0.copyBytes(from: parsed) }
        var normalized = secp256k1_ecdsa_signature()
        _ = secp256k1_ecdsa_signature_normalize(context, &normalized, &signature)
        return secp256k1_ecdsa_verify(context, &normalized, hash, &key) == 1
    }

    /// Whether a DER signature has a low S (BIP 146's LOW_S rule).
    public static func hasLowS(_ derSignature: [UInt8]) -> Bool {
        guard let compact = LaxDER.parse(derSignature) else { return false }
        let context = Secp256k1Context.shared.pointer
        var signature = secp256k1_ecdsa_signature()
        guard secp256k1_ecdsa_signature_parse_compact(context, &signature, compact) == 1 else { return false }
        return secp256k1_ecdsa_signature_normalize(context, nil, &signature) == 0
    }
}

/// A secp256k1 private key.
public struct PrivateKey: Hashable, Sendable {
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) throws(BlockchainError) {
        guard bytes.count == 32, secp256k1_ec_seckey_verify(Secp256k1Context.shared.pointer, bytes) == 1
        else {
            throw .badKey("not a valid secp256k1 secret key")
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
        let context = Secp256k1Context.shared.pointer
        var key = secp256k1_pubkey()
        _ = secp256k1_ec_pubkey_create(context, &key, bytes)
        var out = [UInt8](repeating: 0, count: 65)
        var length = out.count
        _ = secp256k1_ec_pubkey_serialize(
            context, &out, &length, &key,
            UInt32(compressed ? SECP256K1_EC_COMPRESSED : SECP256K1_EC_UNCOMPRESSED))
        return PublicKey.made(Array(out.prefix(length)), parsed: withUnsafeBytes(of: key.data) { Array($0) })
    }

    /// ECDSA over a 32-byte hash with RFC 6979 nonces; libsecp256k1 always gives low S. DER.
    public func sign(hash: [UInt8]) -> [UInt8] {
        precondition(hash.count == 32, "sign a 32-byte hash")
        let context = Secp256k1Context.shared.pointer
        var signature = secp256k1_ecdsa_signature()
        _ = secp256k1_ecdsa_sign(context, &signature, hash, bytes, nil, nil)
        var der = [UInt8](repeating: 0, count: 72)
        var length = der.count
        _ = secp256k1_ecdsa_signature_serialize_der(context, &der, &length, &signature)
        return Array(der.prefix(length))
    }
}

extension PublicKey {
    /// A key this library just derived (no need to parse it again).
    fileprivate static func made(_ bytes: [UInt8], parsed: [UInt8]) -> PublicKey {
        PublicKey(trusted: bytes, parsed: parsed)
    }
    private init(trusted bytes: [UInt8], parsed: [UInt8]) {
        self.bytes = bytes
        self.parsed = parsed
    }
}

/// BIP 340 Schnorr signatures over x-only keys.
public enum Schnorr {
    public static func verify(signature: [UInt8], message: [UInt8], xOnlyKey: [UInt8]) -> Bool {
        guard signature.count == 64, xOnlyKey.count == 32 else { return false }
        let context = Secp256k1Context.shared.pointer
        var key = secp256k1_xonly_pubkey()
        guard secp256k1_xonly_pubkey_parse(context, &key, xOnlyKey) == 1 else { return false }
        return secp256k1_schnorrsig_verify(context, signature, message, message.count, &key) == 1
    }

    /// Signs `message` (32 bytes) with BIP 340's default nonce (auxiliary randomness `aux`).
    public static func sign(message: [UInt8], key: PrivateKey, aux: [UInt8]? = nil) -> (
        signature: [UInt8], xOnlyKey: [UInt8]
    ) {
        let context = Secp256k1Context.shared.pointer
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

/// Bitcoin Core's lenient DER parser (`ecdsa_signature_parse_der_lax`, from libsecp256k1's
/// contrib): accepts the malformed encodings found in old transactions and returns the 64-byte
/// compact R‖S (each reduced to 32 bytes, overflowing values as zero → invalid signature).
enum LaxDER {
    static func parse(_ input: [UInt8]) -> [UInt8]? {
        var pos = 0
        let count = input.count
        func readLength() -> Int? {
            guard pos < count else { return nil }
            var length = Int(input[pos])
            pos += 1
            if length & 0x80 != 0 {
                var bytes = length & 0x7f
                guard bytes <= count - pos else { return nil }
                while bytes > 0 && input[pos] == 0 {
                    pos += 1
                    bytes -= 1
                }
                guard bytes < 8 else { return nil }
                length = 0
                while bytes > 0 {
                    length = length << 8 | Int(input[pos])
                    pos += 1
                    bytes -= 1
                }
            }
            return length
        }
        // Sequence tag and length (the length is not checked, as Core does not).
        guard pos < count, input[pos] == 0x30 else { return nil }
        pos += 1
        guard readLength() != nil else { return nil }
        func readInteger() -> [UInt8]? {
            guard pos < count, input[pos] == 0x02 else { return nil }
            pos += 1
            guard let length = readLength(), length <= count - pos else { return nil }
            var start = pos
            var size = length
            pos += length
            while size > 0 && input[start] == 0 {
                start += 1
                size -= 1
            }
            if size > 32 { return [UInt8](repeating: 0xff, count: 33) }  // overflow marker
            return [UInt8](repeating: 0, count: 32 - size) + input[start..<start + size]
        }
        guard var r = readInteger(), var s = readInteger() else { return nil }
        if r.count > 32 || s.count > 32 {
            r = [UInt8](repeating: 0, count: 32)
            s = r
        }
        return r + s
    }
}

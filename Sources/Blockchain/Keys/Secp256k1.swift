internal import CNettle
import Crypto
import PeerCrypto

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

/// A secp256k1 public key, compressed (33 bytes) or not (65), with Bitcoin's rules for
/// signatures (the curve itself is ``Secp256k1`` in PeerCrypto).
public struct PublicKey: Hashable, Sendable {
    public let key: Secp256k1.PublicKey
    public var bytes: [UInt8] { key.bytes }

    init(key: Secp256k1.PublicKey) { self.key = key }

    /// Parses and checks a serialized key (on the curve).
    public init(bytes: [UInt8]) throws(BlockchainError) {
        do {
            key = try Secp256k1.PublicKey(bytes: bytes)
        } catch {
            throw .badKey(error.why)
        }
    }

    public var isCompressed: Bool { key.isCompressed }
    public var hash160: [UInt8] { BitcoinHash.hash160(bytes) }

    /// Verifies a DER signature (parsed strictly when it is strict DER, else leniently as Bitcoin
    /// Core does for old signatures; normalised to low S) over a 32-byte message hash.
    public func verify(derSignature: [UInt8], hash: [UInt8]) -> Bool {
        guard let compact = Secp256k1.compact(der: derSignature) ?? LaxDER.parse(derSignature) else {
            return false
        }
        return key.verify(compact: compact, hash: hash)
    }

    /// Whether a DER signature has a low S (BIP 146's LOW_S rule).
    public static func hasLowS(_ derSignature: [UInt8]) -> Bool {
        guard let compact = LaxDER.parse(derSignature) else { return false }
        return Secp256k1.hasLowS(compact: compact)
    }
}

/// A secp256k1 private key.
public struct PrivateKey: Hashable, Sendable {
    public let key: Secp256k1.PrivateKey
    public var bytes: [UInt8] { key.bytes }

    public init(bytes: [UInt8]) throws(BlockchainError) {
        do {
            key = try Secp256k1.PrivateKey(bytes: bytes)
        } catch {
            throw .badKey(error.why)
        }
    }

    init(key: Secp256k1.PrivateKey) { self.key = key }

    /// A fresh key from the system's random source.
    public static func generate() -> PrivateKey { PrivateKey(key: .generate()) }

    public func publicKey(compressed: Bool = true) -> PublicKey {
        PublicKey(key: key.publicKey(compressed: compressed))
    }

    /// ECDSA over a 32-byte hash with RFC 6979 nonces; libsecp256k1 always gives low S. DER.
    public func sign(hash: [UInt8]) -> [UInt8] { key.sign(hash: hash) }
}

/// BIP 340 Schnorr signatures over x-only keys.
public enum Schnorr {
    public static func verify(signature: [UInt8], message: [UInt8], xOnlyKey: [UInt8]) -> Bool {
        Secp256k1.Schnorr.verify(signature: signature, message: message, xOnlyKey: xOnlyKey)
    }

    /// Signs `message` (32 bytes) with BIP 340's default nonce (auxiliary randomness `aux`).
    public static func sign(message: [UInt8], key: PrivateKey, aux: [UInt8]? = nil) -> (
        signature: [UInt8], xOnlyKey: [UInt8]
    ) {
        Secp256k1.Schnorr.sign(message: message, key: key.key, aux: aux)
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

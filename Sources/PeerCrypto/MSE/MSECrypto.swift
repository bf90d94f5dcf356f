import CNettle
import Crypto
import Multiformats

/// The primitives of BitTorrent's Message Stream Encryption (MSE/PE, as Vuze, libtorrent and
/// Transmission implement it): a Diffie-Hellman exchange over the spec's 768-bit prime with
/// generator 2 (GMP's constant-time `mpz_powm_sec`), SHA-1 for its hashes, RC4 from Nettle.
public enum MSE {
    /// The 768-bit prime P of the spec.
    static let prime: [UInt8] =
        (try? Multibase.base16.decode(
            digits: Array(
                "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a63a36210000000000090563"
                    .utf8))) ?? []
    /// Bytes of a public key and of the shared secret (big-endian, zero-padded).
    public static let keyLength = 96
    /// Bytes of a private key (libtorrent's and Transmission's size: 160 bits).
    public static let privateKeyLength = 20
    /// Most padding either side sends (PadA … PadD).
    public static let maxPadding = 512
    /// The verification constant: 8 zero bytes, encrypted.
    static let vc = [UInt8](repeating: 0, count: 8)

    /// `base ^ exponent mod P`, both big-endian; nil when `exponent` is zero.
    static func powerModP(base: [UInt8], exponent: [UInt8]) -> [UInt8]? {
        guard exponent.contains(where: { $0 != 0 }) else { return nil }
        var b = mpz_t()
        var e = mpz_t()
        var p = mpz_t()
        var r = mpz_t()
        __gmpz_init(&b)
        __gmpz_init(&e)
        __gmpz_init(&p)
        __gmpz_init(&r)
        defer {
            __gmpz_clear(&b)
            __gmpz_clear(&e)
            __gmpz_clear(&p)
            __gmpz_clear(&r)
        }
        base.withUnsafeBytes { __gmpz_import(&b, base.count, 1, 1, 1, 0, $0.baseAddress) }
        exponent.withUnsafeBytes { __gmpz_import(&e, exponent.count, 1, 1, 1, 0, $0.baseAddress) }
        prime.withUnsafeBytes { __gmpz_import(&p, prime.count, 1, 1, 1, 0, $0.baseAddress) }
        __gmpz_powm_sec(&r, &b, &e, &p)
        var out = [UInt8](repeating: 0, count: keyLength)
        var count = 0
        // Size in bytes, to right-align the export in 96 bytes.
        let bits = __gmpz_sizeinbase(&r, 2)
        let bytes = (bits + 7) / 8
        guard bytes <= keyLength else { return nil }
        out.withUnsafeMutableBytes { buffer in
            _ = __gmpz_export(buffer.baseAddress! + (keyLength - bytes), &count, 1, 1, 1, 0, &r)
        }
        return out
    }

    /// The public key for a private one: `2 ^ x mod P`.
    public static func publicKey(privateKey: [UInt8]) -> [UInt8]? {
        powerModP(base: [2], exponent: privateKey)
    }

    /// The shared secret S from our private key and the other side's public key; nil when that
    /// key is not in 2…P−2 (a degenerate key would give a known secret).
    public static func sharedSecret(privateKey: [UInt8], remotePublicKey: [UInt8]) -> [UInt8]? {
        guard remotePublicKey.count == keyLength else { return nil }
        let value = remotePublicKey.drop { $0 == 0 }
        if value.isEmpty || value == [1] { return nil }
        var pMinusOne = prime
        pMinusOne[pMinusOne.count - 1] -= 1
        guard remotePublicKey.lexicographicallyPrecedes(pMinusOne) else { return nil }
        return powerModP(base: remotePublicKey, exponent: privateKey)
    }

    /// SHA-1 of the parts, concatenated (the spec's HASH).
    static func hash(_ parts: [UInt8]...) -> [UInt8] {
        var hasher = Insecure.SHA1()
        for part in parts { hasher.update(data: part) }
        return Array(hasher.finalize())
    }
}

/// RC4 (Nettle's ARCFOUR) with the first 1,024 bytes of keystream discarded, as MSE uses it. A
/// value: copying it copies the cipher's state.
public struct RC4: Sendable {
    private var context = arcfour_ctx()

    /// A cipher keyed with `key` (MSE: 20 bytes), its first `discard` bytes of keystream dropped.
    public init(key: [UInt8], discard: Int = 1_024) {
        key.withUnsafeBufferPointer { nettle_arcfour_set_key(&context, key.count, $0.baseAddress) }
        var skip = [UInt8](repeating: 0, count: discard)
        crypt(&skip)
    }

    /// Encrypts or decrypts in place.
    public mutating func crypt(_ bytes: inout [UInt8]) {
        let count = bytes.count
        bytes.withUnsafeMutableBufferPointer { buffer in
            nettle_arcfour_crypt(&context, count, buffer.baseAddress, buffer.baseAddress)
        }
    }

    /// Encrypts or decrypts a region of memory in place.
    public mutating func crypt(_ buffer: UnsafeMutableRawBufferPointer) {
        guard let base = buffer.baseAddress else { return }
        let bytes = base.assumingMemoryBound(to: UInt8.self)
        nettle_arcfour_crypt(&context, buffer.count, bytes, bytes)
    }

    /// `bytes` encrypted (or decrypted).
    public mutating func crypted(_ bytes: some Sequence<UInt8>) -> [UInt8] {
        var copy = Array(bytes)
        crypt(&copy)
        return copy
    }
}

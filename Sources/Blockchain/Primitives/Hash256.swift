import Crypto
import Multiformats

/// A 32-byte double-SHA-256 (or other) hash as stored on the wire. Bitcoin shows txids and
/// block hashes byte-reversed, which `description` and `init(hex:)` follow.
public struct Hash256: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let bytes: [UInt8]

    public static let zero = Hash256(bytes: [UInt8](repeating: 0, count: 32))

    public init(bytes: [UInt8]) {
        precondition(bytes.count == 32, "a Hash256 holds 32 bytes")
        self.bytes = bytes
    }

    /// From Bitcoin's display form (64 hex digits, byte-reversed).
    public init?(hex: String) {
        guard let decoded = Hex.decode(hex), decoded.count == 32 else { return nil }
        self.bytes = decoded.reversed()
    }

    public var description: String { Hex.encode(bytes.reversed()) }

    /// SHA-256 of SHA-256: txids, block hashes, checksums.
    public static func doubleSHA256(_ data: [UInt8]) -> Hash256 {
        let first = SHA256.hash(data: data)
        return Hash256(bytes: Array(SHA256.hash(data: Array(first))))
    }

    /// Compares as the 256-bit little-endian number Bitcoin's proof of work reads.
    public static func < (a: Hash256, b: Hash256) -> Bool {
        for index in stride(from: 31, through: 0, by: -1) where a.bytes[index] != b.bytes[index] {
            return a.bytes[index] < b.bytes[index]
        }
        return false
    }
}

/// Lower-case hexadecimal (Multiformats' base16, without its multibase prefix); decoding takes
/// either case and an even number of digits only.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        String(decoding: Multibase.base16.digits(of: Array(bytes)), as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let digits = Array(text.utf8)
        guard digits.count % 2 == 0, !digits.contains(UInt8(ascii: "=")) else { return nil }
        return try? Multibase.base16.decode(digits: digits)
    }
}

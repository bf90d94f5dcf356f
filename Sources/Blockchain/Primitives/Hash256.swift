import Crypto

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

/// Lower-case hexadecimal.
public enum Hex {
    public static func encode(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    public static func decode(_ text: String) -> [UInt8]? {
        let characters = Array(text.utf8)
        guard characters.count % 2 == 0 else { return nil }
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x61...0x66: return c - 0x61 + 10
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        var out: [UInt8] = []
        out.reserveCapacity(characters.count / 2)
        var index = 0
        while index < characters.count {
            guard let high = value(characters[index]), let low = value(characters[index + 1]) else {
                return nil
            }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }
}

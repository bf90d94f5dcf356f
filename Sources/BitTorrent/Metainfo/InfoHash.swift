import Crypto

/// A v1 info-hash: the SHA-1 of a torrent's bencoded info dictionary (BEP 3), 20 bytes.
public struct InfoHash: Hashable, Sendable, Comparable {
    /// The 20 raw bytes.
    public let bytes: [UInt8]

    /// Wraps 20 raw bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 20 else { return nil }
        self.bytes = Array(bytes)
    }

    init(uncheckedBytes: [UInt8]) {
        self.bytes = uncheckedBytes
    }

    /// Parses 40 hexadecimal digits (either case) or 32 base32 characters (RFC 4648, as magnet
    /// links allow); nil for anything else.
    public init?(_ text: some StringProtocol) {
        let utf8 = Array(text.utf8)
        if utf8.count == 40, let bytes = Hex.decode(utf8) {
            self.bytes = bytes
        } else if utf8.count == 32, let bytes = Base32.decode(utf8), bytes.count == 20 {
            self.bytes = bytes
        } else {
            return nil
        }
    }

    /// Lowercase hexadecimal, as trackers, libtorrent and magnet links print it.
    public var hex: String { Hex.encode(bytes) }

    public static func < (lhs: InfoHash, rhs: InfoHash) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}

extension InfoHash: CustomStringConvertible {
    public var description: String { hex }
}

/// Hexadecimal text of bytes.
enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    static func encode(_ bytes: some Sequence<UInt8>) -> String {
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(text.count / 2)
        var index = 0
        while index < text.count {
            guard let high = value(text[index]), let low = value(text[index + 1]) else { return nil }
            out.append(high << 4 | low)
            index += 2
        }
        return out
    }

    static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return digit - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}

/// RFC 4648 base32 without padding, as magnet links use for 32-character info-hashes.
enum Base32 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for byte in bytes {
            buffer = buffer << 8 | UInt32(byte)
            bits += 8
            while bits >= 5 {
                out.append(alphabet[Int((buffer >> UInt32(bits - 5)) & 0x1F)])
                bits -= 5
            }
        }
        if bits > 0 { out.append(alphabet[Int((buffer << UInt32(5 - bits)) & 0x1F)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: [UInt8]) -> [UInt8]? {
        var out: [UInt8] = []
        var buffer: UInt32 = 0
        var bits = 0
        for character in text {
            let value: UInt8
            switch character {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): value = character - UInt8(ascii: "A")
            case UInt8(ascii: "a")...UInt8(ascii: "z"): value = character - UInt8(ascii: "a")
            case UInt8(ascii: "2")...UInt8(ascii: "7"): value = character - UInt8(ascii: "2") + 26
            default: return nil
            }
            buffer = (buffer << 5 | UInt32(value)) & 0xFFFF
            bits += 5
            if bits >= 8 {
                out.append(UInt8((buffer >> UInt32(bits - 8)) & 0xFF))
                bits -= 8
            }
        }
        return out
    }
}

/// A v2 info-hash (BEP 52): the SHA-256 of the info dictionary, 32 bytes. The wire, trackers
/// and the DHT carry its first 20 bytes (``truncated``).
public struct InfoHashV2: Hashable, Sendable, Comparable {
    /// The 32 raw bytes.
    public let bytes: [UInt8]

    /// Wraps 32 raw bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 32 else { return nil }
        self.bytes = Array(bytes)
    }

    /// Parses 64 hexadecimal digits (either case).
    public init?(_ text: some StringProtocol) {
        guard let bytes = Hex.decode(Array(text.utf8)), bytes.count == 32 else { return nil }
        self.bytes = bytes
    }

    /// The SHA-256 of `bytes`.
    public init(hashing bytes: [UInt8]) {
        self.bytes = Array(SHA256.hash(data: bytes))
    }

    /// The 20 bytes that stand for the torrent in handshakes, announces and the DHT.
    public var truncated: InfoHash { InfoHash(uncheckedBytes: Array(bytes.prefix(20))) }

    public var hex: String { Hex.encode(bytes) }

    public static func < (lhs: InfoHashV2, rhs: InfoHashV2) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}

extension InfoHashV2: CustomStringConvertible {
    public var description: String { hex }
}

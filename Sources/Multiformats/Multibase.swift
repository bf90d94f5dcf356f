/// Multibase: a one-character prefix names the base the rest is written in. RFC 4648 bases are
/// written without padding (padding is accepted on input), as the multibase table says.
public enum Multibase: Character, Sendable, CaseIterable {
    case base16 = "f"
    case base16Upper = "F"
    case base32 = "b"
    case base32Upper = "B"
    case base36 = "k"
    case base36Upper = "K"
    case base58btc = "z"
    case base64 = "m"
    case base64url = "u"

    /// Longest text the quadratic bases (58, 36) decode: a CID or key is far shorter.
    public static let maxBigBaseLength = 4_096

    public var name: String {
        switch self {
        case .base16: return "base16"
        case .base16Upper: return "base16upper"
        case .base32: return "base32"
        case .base32Upper: return "base32upper"
        case .base36: return "base36"
        case .base36Upper: return "base36upper"
        case .base58btc: return "base58btc"
        case .base64: return "base64"
        case .base64url: return "base64url"
        }
    }

    private var alphabet: [UInt8] {
        switch self {
        case .base16: return Array("0123456789abcdef".utf8)
        case .base16Upper: return Array("0123456789ABCDEF".utf8)
        case .base32: return Array("abcdefghijklmnopqrstuvwxyz234567".utf8)
        case .base32Upper: return Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567".utf8)
        case .base36: return Array("0123456789abcdefghijklmnopqrstuvwxyz".utf8)
        case .base36Upper: return Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8)
        case .base58btc: return Array("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz".utf8)
        case .base64: return Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        case .base64url: return Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        }
    }

    private var bitsPerDigit: Int? {
        switch self {
        case .base16, .base16Upper: return 4
        case .base32, .base32Upper: return 5
        case .base64, .base64url: return 6
        case .base36, .base36Upper, .base58btc: return nil
        }
    }

    /// `bytes` in this base, with the prefix.
    public func encode(_ bytes: [UInt8]) -> String {
        String(rawValue) + String(decoding: digits(of: bytes), as: UTF8.self)
    }

    /// `bytes` in this base, without the prefix (base58btc alone is how CIDv0 and peer IDs are written).
    public func digits(of bytes: [UInt8]) -> [UInt8] {
        let alphabet = self.alphabet
        if let bits = bitsPerDigit {
            var out: [UInt8] = []
            var buffer = 0
            var count = 0
            for byte in bytes {
                buffer = buffer << 8 | Int(byte)
                count += 8
                while count >= bits {
                    count -= bits
                    out.append(alphabet[(buffer >> count) & ((1 << bits) - 1)])
                }
                buffer &= (1 << count) - 1
            }
            if count > 0 { out.append(alphabet[(buffer << (bits - count)) & ((1 << bits) - 1)]) }
            return out
        }
        // Big-number bases: leading zero bytes become leading zero digits.
        let radix = alphabet.count
        let zeros = bytes.prefix { $0 == 0 }.count
        var number = Array(bytes.dropFirst(zeros))
        var out: [UInt8] = []
        while !number.isEmpty {
            var remainder = 0
            var quotient: [UInt8] = []
            quotient.reserveCapacity(number.count)
            for byte in number {
                let value = remainder << 8 | Int(byte)
                let digit = value / radix
                remainder = value % radix
                if !quotient.isEmpty || digit != 0 { quotient.append(UInt8(digit)) }
            }
            out.append(alphabet[remainder])
            number = quotient
        }
        return Array(repeating: alphabet[0], count: zeros) + out.reversed()
    }

    /// Decodes prefixed multibase text.
    public static func decode(_ text: String) throws(MultiformatError) -> (Multibase, [UInt8]) {
        guard let prefix = text.first else { throw .invalid("empty multibase text") }
        guard let base = Multibase(rawValue: prefix) else { throw .unknownBase(prefix) }
        return (base, try base.decode(digits: Array(text.utf8.dropFirst())))
    }

    /// Decodes digits of this base (no prefix).
    public func decode(digits text: [UInt8]) throws(MultiformatError) -> [UInt8] {
        var table = [Int](repeating: -1, count: 256)
        for (value, character) in alphabet.enumerated() { table[Int(character)] = value }
        // The base16, base32 and base36 letters are read in either case.
        switch self {
        case .base32, .base32Upper, .base16, .base16Upper, .base36, .base36Upper:
            for (value, character) in alphabet.enumerated()
            where (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(character | 0x20) {
                table[Int(character | 0x20)] = value
                table[Int(character & ~0x20)] = value
            }
        default:
            break
        }
        var input = text[...]
        if bitsPerDigit != nil { while input.last == UInt8(ascii: "=") { input = input.dropLast() } }
        if let bits = bitsPerDigit {
            var out: [UInt8] = []
            out.reserveCapacity(input.count * bits / 8)
            var buffer = 0
            var count = 0
            for (position, character) in input.enumerated() {
                let value = table[Int(character)]
                guard value >= 0 else {
                    throw .badCharacter(
                        Character(Unicode.Scalar(character)), base: name, offset: position + 1)
                }
                buffer = buffer << bits | value
                count += bits
                if count >= 8 {
                    count -= 8
                    out.append(UInt8((buffer >> count) & 0xFF))
                }
                buffer &= (1 << count) - 1
            }
            // Leftover bits must be padding zeros, fewer than a digit.
            guard count < bits, buffer == 0 else {
                throw .invalid("\(name) text has \(count) stray bits at its end")
            }
            return out
        }
        guard input.count <= Self.maxBigBaseLength else {
            throw .badLength("\(name) text of \(input.count) characters", offset: 0)
        }
        let radix = alphabet.count
        let zeroDigit = alphabet[0]
        let zeros = input.prefix { $0 == zeroDigit }.count
        var number: [UInt8] = []  // big-endian bytes
        for (position, character) in input.enumerated().dropFirst(zeros) {
            let value = table[Int(character)]
            guard value >= 0 else {
                throw .badCharacter(Character(Unicode.Scalar(character)), base: name, offset: position + 1)
            }
            var carry = value
            for index in number.indices.reversed() {
                let total = Int(number[index]) * radix + carry
                number[index] = UInt8(total & 0xFF)
                carry = total >> 8
            }
            while carry > 0 {
                number.insert(UInt8(carry & 0xFF), at: 0)
                carry >>= 8
            }
        }
        return Array(repeating: 0, count: zeros) + number
    }
}

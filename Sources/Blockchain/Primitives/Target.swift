/// An unsigned 256-bit integer, as Bitcoin Core's `arith_uint256`: just what targets and chain
/// work need (compare, add, subtract, shift, divide).
public struct UInt256: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Little-endian 64-bit limbs.
    public var limbs: (UInt64, UInt64, UInt64, UInt64)

    public static let zero = UInt256(0)
    public static let max = UInt256(limbs: (.max, .max, .max, .max))

    public init(_ value: UInt64) { limbs = (value, 0, 0, 0) }
    public init(limbs: (UInt64, UInt64, UInt64, UInt64)) { self.limbs = limbs }

    /// From 32 little-endian bytes (how a hash is compared to a target).
    public init(littleEndian bytes: [UInt8]) {
        precondition(bytes.count == 32)
        func limb(_ i: Int) -> UInt64 {
            (0..<8).reduce(0) { $0 | UInt64(bytes[i * 8 + $1]) << (8 * UInt64($1)) }
        }
        limbs = (limb(0), limb(1), limb(2), limb(3))
    }

    public init(_ hash: Hash256) { self.init(littleEndian: hash.bytes) }

    var array: [UInt64] {
        get { [limbs.0, limbs.1, limbs.2, limbs.3] }
        set { limbs = (newValue[0], newValue[1], newValue[2], newValue[3]) }
    }

    public static func == (a: UInt256, b: UInt256) -> Bool { a.array == b.array }
    public func hash(into hasher: inout Hasher) { hasher.combine(array) }

    public static func < (a: UInt256, b: UInt256) -> Bool {
        for index in stride(from: 3, through: 0, by: -1) where a.array[index] != b.array[index] {
            return a.array[index] < b.array[index]
        }
        return false
    }

    public static func + (a: UInt256, b: UInt256) -> UInt256 {
        var out = [UInt64](repeating: 0, count: 4)
        var carry: UInt64 = 0
        let x = a.array
        let y = b.array
        for index in 0..<4 {
            let (s1, o1) = x[index].addingReportingOverflow(y[index])
            let (s2, o2) = s1.addingReportingOverflow(carry)
            out[index] = s2
            carry = (o1 ? 1 : 0) + (o2 ? 1 : 0)
        }
        var result = UInt256.zero
        result.array = out
        return result
    }

    public static func - (a: UInt256, b: UInt256) -> UInt256 {
        var out = [UInt64](repeating: 0, count: 4)
        var borrow: UInt64 = 0
        let x = a.array
        let y = b.array
        for index in 0..<4 {
            let (d1, o1) = x[index].subtractingReportingOverflow(y[index])
            let (d2, o2) = d1.subtractingReportingOverflow(borrow)
            out[index] = d2
            borrow = (o1 ? 1 : 0) + (o2 ? 1 : 0)
        }
        var result = UInt256.zero
        result.array = out
        return result
    }

    public static func << (a: UInt256, shift: Int) -> UInt256 {
        guard shift < 256 else { return .zero }
        var out = [UInt64](repeating: 0, count: 4)
        let words = shift / 64
        let bits = UInt64(shift % 64)
        let x = a.array
        for index in stride(from: 3, through: words, by: -1) {
            out[index] = x[index - words] << bits
            if bits > 0, index - words - 1 >= 0 { out[index] |= x[index - words - 1] >> (64 - bits) }
        }
        var result = UInt256.zero
        result.array = out
        return result
    }

    public static func >> (a: UInt256, shift: Int) -> UInt256 {
        guard shift < 256 else { return .zero }
        var out = [UInt64](repeating: 0, count: 4)
        let words = shift / 64
        let bits = UInt64(shift % 64)
        let x = a.array
        for index in 0..<(4 - words) {
            out[index] = x[index + words] >> bits
            if bits > 0, index + words + 1 < 4 { out[index] |= x[index + words + 1] << (64 - bits) }
        }
        var result = UInt256.zero
        result.array = out
        return result
    }

    public var bitWidth: Int {
        for index in stride(from: 3, through: 0, by: -1) where array[index] != 0 {
            return index * 64 + (64 - array[index].leadingZeroBitCount)
        }
        return 0
    }

    /// Long division (nil for a zero divisor).
    public func dividedBy(_ divisor: UInt256) -> UInt256? {
        guard divisor != .zero else { return nil }
        var remainder = self
        var quotient = UInt256.zero
        let shift = bitWidth - divisor.bitWidth
        guard shift >= 0 else { return .zero }
        var d = divisor << shift
        for step in stride(from: shift, through: 0, by: -1) {
            if !(remainder < d) {
                remainder = remainder - d
                quotient = quotient + (UInt256(1) << step)
            }
            d = d >> 1
        }
        return quotient
    }

    /// Multiplies by a small factor (nil on overflow past 256 bits).
    public func multiplied(by factor: UInt64) -> UInt256? {
        var out = [UInt64](repeating: 0, count: 4)
        var carry: UInt64 = 0
        for (index, limb) in array.enumerated() {
            let (high, low) = limb.multipliedFullWidth(by: factor)
            let (sum, overflow) = low.addingReportingOverflow(carry)
            out[index] = sum
            carry = high + (overflow ? 1 : 0)
        }
        guard carry == 0 else { return nil }
        var result = UInt256.zero
        result.array = out
        return result
    }

    public static prefix func ~ (a: UInt256) -> UInt256 {
        UInt256(limbs: (~a.limbs.0, ~a.limbs.1, ~a.limbs.2, ~a.limbs.3))
    }

    /// 64 hex digits, most significant first.
    public var description: String {
        array.reversed().map { value in
            let text = String(value, radix: 16)
            return String(repeating: "0", count: 16 - text.count) + text
        }.joined()
    }
}

/// Proof-of-work targets: the compact `bits` form of a header and the work a target stands for.
public enum Target {
    /// Decodes compact bits as Bitcoin Core's `SetCompact`; nil when negative, zero or overflowing.
    public static func expand(_ bits: UInt32) -> UInt256? {
        let exponent = Int(bits >> 24)
        let mantissa = bits & 0x007f_ffff
        let negative = mantissa != 0 && bits & 0x0080_0000 != 0
        let overflow =
            mantissa != 0
            && (exponent > 34 || (mantissa > 0xff && exponent > 33) || (mantissa > 0xffff && exponent > 32))
        guard !negative, !overflow, mantissa != 0 else { return nil }
        if exponent <= 3 { return UInt256(UInt64(mantissa >> (8 * (3 - exponent)))) }
        let value = UInt256(UInt64(mantissa)) << (8 * (exponent - 3))
        return value == .zero ? nil : value
    }

    /// Encodes a target as compact bits (Core's `GetCompact`).
    public static func compact(_ target: UInt256) -> UInt32 {
        var size = (target.bitWidth + 7) / 8
        var mantissa: UInt64
        if size <= 3 {
            mantissa = target.limbs.0 << (8 * UInt64(3 - size))
        } else {
            mantissa = (target >> (8 * (size - 3))).limbs.0
        }
        if mantissa & 0x0080_0000 != 0 {
            mantissa >>= 8
            size += 1
        }
        return UInt32(mantissa & 0x007f_ffff) | UInt32(size) << 24
    }

    /// The expected number of hashes to meet `target`: 2²⁵⁶ / (target + 1).
    public static func work(_ target: UInt256) -> UInt256 {
        // 2^256 / (t + 1) == ~t / (t + 1) + 1, which stays within 256 bits.
        ((~target).dividedBy(target + UInt256(1)) ?? .zero) + UInt256(1)
    }

    /// Whether `hash` meets the target encoded in `bits`.
    public static func isMet(by hash: Hash256, bits: UInt32, limit: UInt256) -> Bool {
        guard let target = expand(bits), !(limit < target) else { return false }
        return !(target < UInt256(hash))
    }
}

/// Why a BTC amount was refused.
public enum AmountError: Error, Sendable, Hashable, CustomStringConvertible {
    case empty
    /// Not a decimal number (`what` names the first thing wrong).
    case notANumber(String, what: String)
    case negative(String)
    /// More digits after the point than satoshis have (8).
    case tooPrecise(String)
    /// More than 21,000,000 BTC (Core's `MAX_MONEY`).
    case outOfRange(String)

    public var description: String {
        switch self {
        case .empty: return "no amount given"
        case .notANumber(let text, let what): return "'\(text)' is not an amount in BTC (\(what))"
        case .negative(let text): return "'\(text)' is negative"
        case .tooPrecise(let text):
            return "'\(text)' has more than 8 decimal places (1 satoshi is 0.00000001)"
        case .outOfRange(let text): return "'\(text)' is more than 21,000,000 BTC"
        }
    }
}

/// Amounts of bitcoin: satoshis as `Int64`, read from and written as decimal BTC text.
public enum Amount {
    /// Longest amount text read (a JSON number as Python or JavaScript prints it fits easily).
    public static let maxTextLength = 64

    /// Parses decimal BTC (`1`, `0.5`, `.25`, `1e-05`, `2.1E7`, as a JSON number or a string
    /// prints it) to satoshis, exactly: no floating point, every step checked against overflow.
    /// Refuses a negative amount, one finer than a satoshi, and one over 21,000,000 BTC, as
    /// Bitcoin Core's `AmountFromValue` does (`ParseFixedPoint` with 8 decimals).
    public static func satoshis(_ text: some StringProtocol) throws(AmountError) -> Int64 {
        let string = String(text)
        guard !string.isEmpty else { throw .empty }
        guard string.utf8.count <= maxTextLength else {
            throw .notANumber(String(string.prefix(20)) + "…", what: "too long")
        }
        var bytes = Substring(string).utf8[...]
        if bytes.first == UInt8(ascii: "-") {
            bytes = bytes.dropFirst()
            // "-0" is zero; anything else below zero is refused.
            if bytes.contains(where: { (49...57).contains($0) }) { throw .negative(string) }
        } else if bytes.first == UInt8(ascii: "+") {
            bytes = bytes.dropFirst()
        }
        // Mantissa digits with the point's place, then an optional exponent.
        var digits: [UInt8] = []
        var pointAt: Int?
        var exponent = 0
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            if (48...57).contains(byte) {
                digits.append(byte - 48)
            } else if byte == UInt8(ascii: "."), pointAt == nil {
                pointAt = digits.count
            } else if byte == UInt8(ascii: "e") || byte == UInt8(ascii: "E") {
                let rest = String(decoding: bytes[bytes.index(after: index)...], as: UTF8.self)
                guard let value = Int(rest), (-100...100).contains(value) else {
                    throw .notANumber(string, what: "exponent '\(rest)'")
                }
                exponent = value
                break
            } else {
                throw .notANumber(string, what: "unexpected '\(Character(Unicode.Scalar(byte)))'")
            }
            index = bytes.index(after: index)
        }
        guard !digits.isEmpty else { throw .notANumber(string, what: "no digits") }
        // value = digits × 10^(exponent − fraction digits); in satoshis, shifted by 8 more.
        let shift = exponent - (digits.count - (pointAt ?? digits.count)) + 8
        var kept = digits
        if shift < 0 {
            let dropped = kept.suffix(min(-shift, kept.count))
            guard dropped.allSatisfy({ $0 == 0 }) else { throw .tooPrecise(string) }
            kept.removeLast(dropped.count)
        }
        while kept.first == 0 { kept.removeFirst() }
        if kept.isEmpty { return 0 }
        let zeros = max(shift, 0)
        // 21,000,000 BTC is 2.1 × 10^15 satoshis: 16 digits; refuse longer before multiplying.
        guard kept.count + zeros <= 16 else { throw .outOfRange(string) }
        var value: Int64 = 0
        for digit in kept { value = value * 10 + Int64(digit) }
        for _ in 0..<zeros { value *= 10 }
        guard value <= Consensus.maxMoney else { throw .outOfRange(string) }
        return value
    }

    /// Satoshis as BTC with 8 decimals (`0.00010000`), as Core's RPC prints amounts.
    public static func text(_ satoshis: Int64) -> String {
        let sign = satoshis < 0 ? "-" : ""
        let magnitude = satoshis.magnitude
        let whole = magnitude / UInt64(Consensus.coin)
        let fraction = String(magnitude % UInt64(Consensus.coin))
        return sign + "\(whole)." + String(repeating: "0", count: 8 - fraction.count) + fraction
    }
}

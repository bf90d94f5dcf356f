/// Why a byte sequence is not acceptable bencode. Every case carries the byte offset in the
/// input where the problem was found, so a user can locate it.
public enum BencodeError: Error, Hashable, Sendable {
    /// The input is empty.
    case emptyInput
    /// The input is larger than ``BencodeDecoder/Limits/maxInputSize``.
    case inputTooLarge(size: Int, limit: Int)
    /// The input ended in the middle of a value.
    case unexpectedEnd(offset: Int)
    /// A byte that cannot start or continue a value here.
    case unexpectedByte(UInt8, offset: Int)
    /// `ie` or `i-e`: an integer with no digits.
    case emptyInteger(offset: Int)
    /// An integer or string length with a leading zero, or `-0` (BEP 3 forbids both).
    case nonCanonicalInteger(offset: Int)
    /// An integer that does not fit in 64 bits.
    case integerOverflow(offset: Int)
    /// A string length prefix that is not a decimal number followed by `:`.
    case invalidStringLength(offset: Int)
    /// A string claims more bytes than remain in the input.
    case stringBeyondEnd(length: Int, offset: Int)
    /// A dictionary key that is not a byte string.
    case nonStringKey(offset: Int)
    /// A dictionary key that is not greater than the one before it (BEP 3: keys sorted).
    case unsortedKey(offset: Int)
    /// A dictionary key that appears twice.
    case duplicateKey(offset: Int)
    /// Bytes after the top-level value.
    case trailingData(offset: Int)
    /// Lists and dictionaries nested deeper than the limit.
    case depthLimitExceeded(limit: Int, offset: Int)
    /// More values than the limit.
    case elementLimitExceeded(limit: Int, offset: Int)

    /// The byte offset in the input where the problem was found.
    public var offset: Int {
        switch self {
        case .emptyInput, .inputTooLarge: return 0
        case .unexpectedEnd(let offset), .unexpectedByte(_, let offset), .emptyInteger(let offset),
            .nonCanonicalInteger(let offset), .integerOverflow(let offset), .invalidStringLength(let offset),
            .stringBeyondEnd(_, let offset), .nonStringKey(let offset), .unsortedKey(let offset),
            .duplicateKey(let offset), .trailingData(let offset), .depthLimitExceeded(_, let offset),
            .elementLimitExceeded(_, let offset):
            return offset
        }
    }

    /// What is wrong, without the offset.
    public var reason: String {
        switch self {
        case .emptyInput: return "empty input"
        case .inputTooLarge(let size, let limit):
            return "input of \(size) bytes exceeds the limit of \(limit)"
        case .unexpectedEnd: return "input ends in the middle of a value"
        case .unexpectedByte(let byte, _):
            let shown =
                byte >= 0x20 && byte < 0x7F
                ? "'\(Character(Unicode.Scalar(byte)))'" : "0x\(String(byte, radix: 16))"
            return "unexpected byte \(shown)"
        case .emptyInteger: return "integer has no digits"
        case .nonCanonicalInteger: return "integer has a leading zero or is -0"
        case .integerOverflow: return "integer does not fit in 64 bits"
        case .invalidStringLength: return "invalid string length"
        case .stringBeyondEnd(let length, _):
            return "string of \(length) bytes runs past the end of the input"
        case .nonStringKey: return "dictionary key is not a string"
        case .unsortedKey: return "dictionary keys are not sorted"
        case .duplicateKey: return "dictionary key appears twice"
        case .trailingData: return "data after the end of the top-level value"
        case .depthLimitExceeded(let limit, _): return "nesting deeper than \(limit) levels"
        case .elementLimitExceeded(let limit, _): return "more than \(limit) values"
        }
    }
}

extension BencodeError: CustomStringConvertible {
    /// `"<reason> (at byte N)"`.
    public var description: String { "\(reason) (at byte \(offset))" }
}

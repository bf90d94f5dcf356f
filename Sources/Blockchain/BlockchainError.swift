/// Why Bitcoin-format bytes, keys, addresses or scripts were refused; byte offsets where there
/// are bytes.
public enum BlockchainError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Bytes ran out while reading `what`.
    case truncated(String, offset: Int)
    /// A length or count beyond what the format or a limit allows.
    case tooLarge(String, offset: Int)
    /// A field with a value the format does not allow (a non-canonical CompactSize, a segwit
    /// marker without witnesses, …).
    case invalid(String, offset: Int)
    /// Bytes left after a whole value.
    case trailingBytes(Int, offset: Int)
    /// A key, signature, address or WIF string that is not valid.
    case badKey(String)
    case badAddress(String)

    public var description: String {
        switch self {
        case .truncated(let what, let offset): return "\(what) runs past the end at byte \(offset)"
        case .tooLarge(let what, let offset): return "\(what) is too large at byte \(offset)"
        case .invalid(let what, let offset): return "\(what) at byte \(offset)"
        case .trailingBytes(let count, let offset): return "\(count) bytes left over at byte \(offset)"
        case .badKey(let why): return "bad key or signature: \(why)"
        case .badAddress(let why): return "bad address: \(why)"
        }
    }
}

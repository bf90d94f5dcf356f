/// Why a piece of text is not an address or endpoint; each case names the text at fault.
public enum AddressError: Error, Hashable, Sendable, CustomStringConvertible {
    case empty
    /// Neither an IPv4 nor an IPv6 literal (and names are not allowed here).
    case notAnAddress(String)
    case invalidIPv4(String)
    case invalidIPv6(String)
    /// `[` without its `]`, or text after `]` that is not `:port`.
    case badBrackets(String)
    /// An IPv6 address with a port must be bracketed: `[2001:db8::1]:6881`.
    case unbracketedIPv6(String)
    case missingPort(String)
    /// Not a decimal number from 0 (or 1) to 65535.
    case invalidPort(String)
    /// A host name with characters DNS names cannot have, or longer than 253 bytes.
    case invalidHostName(String)
    /// A socket address that is not IPv4 or IPv6 (a Unix socket).
    case notAnIPSocket(String)

    public var description: String {
        switch self {
        case .empty: return "empty address"
        case .notAnAddress(let text): return "'\(text)' is not an IP address"
        case .invalidIPv4(let text): return "'\(text)' is not a valid IPv4 address"
        case .invalidIPv6(let text): return "'\(text)' is not a valid IPv6 address"
        case .badBrackets(let text): return "'\(text)': expected [IPv6]:port"
        case .unbracketedIPv6(let text):
            return "'\(text)': an IPv6 address with a port needs brackets, [addr]:port"
        case .missingPort(let text): return "'\(text)' has no port (host:port)"
        case .invalidPort(let text): return "'\(text)' is not a port number (1-65535)"
        case .invalidHostName(let text): return "'\(text)' is not a valid host name"
        case .notAnIPSocket(let text): return "\(text) is not an IP socket address"
        }
    }
}

import Multiformats
import PeerCrypto

/// Why a libp2p connection or stream operation failed.
public enum Libp2pError: Error, Sendable, Hashable, CustomStringConvertible {
    case upgrade(UpgradeError)
    case yamux(YamuxError)
    /// The connection closed (by either side, or on a protocol error) while in use.
    case connectionClosed
    /// The peer reset the stream.
    case streamReset
    /// The stream was closed for writing by this side.
    case streamClosed
    /// The peer supports none of the protocols asked for on a stream.
    case protocolNotSupported([String])
    /// A stream's multistream-select failed.
    case negotiation(MultistreamError)
    /// A multiaddr this host cannot dial or listen on.
    case badAddress(String)
    /// The connection manager's limits refused the connection (`why` says which).
    case refused(String)
    /// Nothing within the deadline.
    case timedOut(String)
    /// A message over its protocol's bound.
    case messageTooLarge(Int, limit: Int)
    /// A protocol's message did not parse.
    case malformed(String)

    public var description: String {
        switch self {
        case .upgrade(let error): return "\(error)"
        case .yamux(let error): return "yamux: \(error)"
        case .connectionClosed: return "the connection closed"
        case .streamReset: return "the peer reset the stream"
        case .streamClosed: return "the stream is closed for writing"
        case .protocolNotSupported(let names):
            return "the peer supports none of \(names.joined(separator: ", "))"
        case .negotiation(let error): return "\(error)"
        case .badAddress(let why): return "bad address: \(why)"
        case .refused(let why): return "refused: \(why)"
        case .timedOut(let what): return "timed out: \(what)"
        case .messageTooLarge(let size, let limit): return "a message of \(size) bytes (at most \(limit))"
        case .malformed(let why): return why
        }
    }
}

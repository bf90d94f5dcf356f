/// Why a peer's bytes or behaviour break the wire protocol. Any of these closes that one
/// connection; the torrent and its other peers carry on.
public enum PeerWireError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncatedHandshake
    case notBitTorrent
    case wrongInfoHash(InfoHash)
    case connectedToSelf
    /// A message from a connection whose handshake was not accepted.
    case beforeHandshake(message: String)
    case frameTooLong(length: Int, limit: Int)
    /// A message whose payload has the wrong size for its ID.
    case badLength(message: String, length: Int)
    case bitfieldSize(expected: Int, got: Int)
    case pieceIndexOutOfRange(Int)
    case requestOutOfRange(BlockRequest)
    case blockTooLarge(BlockRequest)
    case unrequestedBlock(BlockRequest)
    case fastMessageWithoutFastExtension(String)
    case tooManyRequests(limit: Int)
    case badExtensionMessage(String)
    case timedOut(String)
    /// The MSE/PE handshake failed, or the connection's encryption is not allowed.
    case encryption(String)

    public var description: String {
        switch self {
        case .truncatedHandshake: return "handshake cut short"
        case .notBitTorrent: return "not a BitTorrent handshake"
        case .wrongInfoHash(let hash): return "handshake for another torrent (\(hash.hex))"
        case .connectedToSelf: return "connected to ourselves"
        case .beforeHandshake(let message): return "\(message) message before the handshake"
        case .frameTooLong(let length, let limit):
            return "message of \(length) bytes exceeds the limit of \(limit)"
        case .badLength(let message, let length): return "\(message) message with a \(length)-byte payload"
        case .bitfieldSize(let expected, let got): return "bitfield of \(got) bytes, expected \(expected)"
        case .pieceIndexOutOfRange(let index): return "piece index \(index) out of range"
        case .requestOutOfRange(let request): return "request beyond the torrent: \(request)"
        case .blockTooLarge(let request): return "request larger than 16 KiB: \(request)"
        case .unrequestedBlock(let request): return "block never requested: \(request)"
        case .fastMessageWithoutFastExtension(let name): return "\(name) without the fast extension"
        case .tooManyRequests(let limit): return "more than \(limit) outstanding requests"
        case .badExtensionMessage(let what): return "bad extension message: \(what)"
        case .timedOut(let what): return "timed out: \(what)"
        case .encryption(let what): return "encryption: \(what)"
        }
    }
}

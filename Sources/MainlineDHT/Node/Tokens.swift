import Crypto
import PeerNet

/// `get_peers` tokens (BEP 5): a MAC of the asker's IP under a secret that changes every five
/// minutes; tokens under the current or the previous secret are accepted, so one lives five to
/// ten minutes and a node can only announce from the address it asked from. No per-asker state.
public struct TokenSecrets: Sendable {
    private var current: HMAC<SHA256>
    private var previous: HMAC<SHA256>

    /// Start with `secret` (random bytes the driver chose).
    public init(secret: SymmetricKey) {
        current = HMAC<SHA256>(key: secret)
        previous = current
    }

    /// Moves to a new secret (every five minutes, BEP 5); the old one still verifies.
    public mutating func rotate(to secret: SymmetricKey) {
        previous = current
        current = HMAC<SHA256>(key: secret)
    }

    /// The token for an asker at `ip` (4 or 16 bytes): 8 bytes.
    public func token(for ip: [UInt8]) -> [UInt8] { Self.mac(current, ip) }

    public func isValid(_ token: [UInt8], for ip: [UInt8]) -> Bool {
        token == Self.mac(current, ip) || token == Self.mac(previous, ip)
    }

    private static func mac(_ keyed: HMAC<SHA256>, _ ip: [UInt8]) -> [UInt8] {
        var hmac = keyed
        hmac.update(data: ip)
        return Array(hmac.finalize()).prefix(8).map { $0 }
    }
}

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

/// A token bucket per source IP: each IP may send `rate` queries a second with bursts of
/// `burst`; at most `maxTracked` IPs are remembered (the stalest are forgotten first), so a
/// flood of spoofed sources cannot grow memory.
public struct RateLimiter: Sendable {
    private struct Bucket: Sendable {
        var tokens: Double
        var updated: Duration
    }

    public let rate: Double
    public let burst: Double
    public let maxTracked: Int
    private var buckets: [IPAddress: Bucket] = [:]

    public init(rate: Double = 20, burst: Double = 50, maxTracked: Int = 10_000) {
        self.rate = rate
        self.burst = burst
        self.maxTracked = maxTracked
    }

    /// Whether a query from `ip` at `now` may be served (and takes a token if so).
    public mutating func allow(_ ip: IPAddress, now: Duration) -> Bool {
        var bucket = buckets[ip] ?? Bucket(tokens: burst, updated: now)
        let elapsed =
            Double((now - bucket.updated).components.seconds)
            + Double((now - bucket.updated).components.attoseconds) / 1e18
        bucket.tokens = min(burst, bucket.tokens + max(0, elapsed) * rate)
        bucket.updated = now
        let allowed = bucket.tokens >= 1
        if allowed { bucket.tokens -= 1 }
        if buckets[ip] == nil && buckets.count >= maxTracked {
            // Forget the IPs idle longest (a tenth at a time, so this stays rare).
            let stalest = buckets.sorted { $0.value.updated < $1.value.updated }.prefix(maxTracked / 10)
            for (key, _) in stalest { buckets[key] = nil }
        }
        buckets[ip] = bucket
        return allowed
    }
}

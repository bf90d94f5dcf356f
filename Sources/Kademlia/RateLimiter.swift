/// A token bucket per source (an IP in the mainline DHT, a peer's IP in libp2p's): each may send
/// `rate` queries a second with bursts of `burst`; at most `maxTracked` sources are remembered
/// (the stalest are forgotten first), so a flood of spoofed sources cannot grow memory.
public struct RateLimiter<Source: Hashable & Sendable>: Sendable {
    private struct Bucket: Sendable {
        var tokens: Double
        var updated: Duration
    }

    public let rate: Double
    public let burst: Double
    public let maxTracked: Int
    private var buckets: [Source: Bucket] = [:]

    public init(rate: Double = 20, burst: Double = 50, maxTracked: Int = 10_000) {
        self.rate = rate
        self.burst = burst
        self.maxTracked = maxTracked
    }

    /// Whether a query from `ip` at `now` may be served (and takes a token if so).
    public mutating func allow(_ ip: Source, now: Duration) -> Bool {
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

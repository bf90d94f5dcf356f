/// A transfer rate smoothed over a few seconds: bytes are added as they move, and
/// ``tick(elapsed:)`` folds them into the rate.
public struct RateMeter: Sendable {
    public private(set) var total: Int64 = 0
    private var sinceTick: Int64 = 0
    /// Bytes per second.
    public private(set) var rate: Double = 0

    public init() {}

    public mutating func add(_ bytes: Int) {
        total += Int64(bytes)
        sinceTick += Int64(bytes)
    }

    public mutating func tick(elapsed: Duration) {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        guard seconds > 0 else { return }
        let sample = Double(sinceTick) / seconds
        rate = rate == 0 ? sample : rate * 0.6 + sample * 0.4
        sinceTick = 0
    }
}

/// SplitMix64, seeded by the caller, so state machines stay deterministic under test.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) {
        state = seed
    }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

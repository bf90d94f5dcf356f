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

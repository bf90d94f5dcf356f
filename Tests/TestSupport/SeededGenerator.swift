import PeerNet

/// PeerNet's SplitMix64 under the tests' name, so property tests and payloads are the same on
/// every run.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var source: SplitMix64

    public init(state: UInt64) {
        source = SplitMix64(seed: state)
    }

    public mutating func next() -> UInt64 { source.next() }

    /// `count` pseudo-random bytes from `seed`.
    public static func bytes(_ count: Int, seed: UInt64) -> [UInt8] {
        var generator = SeededGenerator(state: seed)
        var bytes = [UInt8](repeating: 0, count: count)
        bytes.withUnsafeMutableBytes { raw in
            var index = 0
            while index < count {
                var word = generator.next()
                let take = min(8, count - index)
                withUnsafeBytes(of: &word) { source in
                    for offset in 0..<take { raw[index + offset] = source[offset] }
                }
                index += take
            }
        }
        return bytes
    }
}

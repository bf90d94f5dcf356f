/// Bytes received and not yet consumed, for the frame readers: appended at the end, taken from
/// the front, and compacted only when the consumed part is at least half, so reading a stream
/// costs O(n) and not O(n²).
struct ByteQueue: Sendable {
    private var bytes: [UInt8] = []
    private var start = 0

    /// Bytes not yet taken.
    var count: Int { bytes.count - start }

    mutating func append(_ more: some Collection<UInt8>) {
        if start > 0, start >= bytes.count / 2 {
            bytes.removeFirst(start)
            start = 0
        }
        bytes.append(contentsOf: more)
    }

    subscript(index: Int) -> UInt8 { bytes[start + index] }

    /// The next `count` bytes, left in the queue.
    func peek(_ count: Int) -> ArraySlice<UInt8> { bytes[start..<start + count] }

    /// Skips `count` bytes after reading `offset` of them, returns them.
    mutating func take(_ count: Int, after offset: Int = 0) -> ArraySlice<UInt8> {
        let taken = bytes[start + offset..<start + offset + count]
        start += offset + count
        return taken
    }

    /// Everything not yet taken.
    var remaining: [UInt8] { Array(bytes[start...]) }
}

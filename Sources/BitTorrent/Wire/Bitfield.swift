/// One bit per piece, high bit of the first byte for piece 0 (BEP 3 `bitfield`).
public struct Bitfield: Hashable, Sendable {
    /// Number of pieces.
    public let count: Int
    /// The packed bits, `(count + 7) / 8` bytes, spare bits zero.
    public private(set) var bytes: [UInt8]
    /// Number of bits set.
    public private(set) var setCount: Int

    /// All bits clear (or all set).
    public init(count: Int, allSet: Bool = false) {
        self.count = count
        bytes = [UInt8](repeating: allSet ? 0xFF : 0, count: (count + 7) / 8)
        setCount = allSet ? count : 0
        if allSet, count % 8 != 0, !bytes.isEmpty {
            bytes[bytes.count - 1] = UInt8(0xFF << (8 - count % 8) & 0xFF)
        }
    }

    /// Reads a peer's bitfield: exactly `(count + 7) / 8` bytes with the spare bits clear, as
    /// BEP 3 requires; nil otherwise.
    public init?(bytes: some Collection<UInt8>, count: Int) {
        guard bytes.count == (count + 7) / 8 else { return nil }
        let array = Array(bytes)
        if count % 8 != 0, let last = array.last, last & (0xFF >> (count % 8)) != 0 { return nil }
        self.count = count
        self.bytes = array
        setCount = array.reduce(0) { $0 + $1.nonzeroBitCount }
    }

    public subscript(index: Int) -> Bool {
        get { bytes[index >> 3] & (0x80 >> UInt8(index & 7)) != 0 }
        set {
            let mask: UInt8 = 0x80 >> UInt8(index & 7)
            let wasSet = bytes[index >> 3] & mask != 0
            guard wasSet != newValue else { return }
            if newValue {
                bytes[index >> 3] |= mask
                setCount += 1
            } else {
                bytes[index >> 3] &= ~mask
                setCount -= 1
            }
        }
    }

    public var isComplete: Bool { setCount == count }
    public var isEmpty: Bool { setCount == 0 }

    /// Indices of the set bits, ascending.
    public var setIndices: [Int] { (0..<count).filter { self[$0] } }
}

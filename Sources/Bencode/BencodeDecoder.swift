/// Decodes bencode (BEP 3) with bounds on everything an adversary controls.
///
/// The decoder is total: any input yields a value or a ``BencodeError`` naming the byte offset;
/// it never traps and never allocates more than the input's size in byte strings plus a
/// bounded number of values.
///
/// - ``Mode/strict`` (the default, for protocol messages) accepts only the canonical form:
///   integers without leading zeros or `-0`, string lengths without leading zeros, dictionary
///   keys sorted by raw bytes and unique, nothing after the top value.
/// - ``Mode/lenient`` (for reading real-world `.torrent` files) also accepts unsorted and
///   repeated keys (the first one wins), leading zeros and bytes after the top value, as
///   libtorrent does.
public struct BencodeDecoder: Sendable {
    public enum Mode: Sendable, Hashable {
        case strict
        case lenient
    }

    /// Bounds on the input. Exceeding any of them is an error, never an allocation.
    public struct Limits: Sendable, Hashable {
        /// Deepest nesting of lists and dictionaries.
        public var maxDepth: Int
        /// Most values (integers, strings, lists, dictionaries, keys included) in one input.
        public var maxElements: Int
        /// Largest input in bytes.
        public var maxInputSize: Int

        public init(maxDepth: Int, maxElements: Int, maxInputSize: Int) {
            self.maxDepth = maxDepth
            self.maxElements = maxElements
            self.maxInputSize = maxInputSize
        }

        /// For protocol messages: depth 32, 100,000 values, 4 MiB.
        public static let messages = Limits(maxDepth: 32, maxElements: 100_000, maxInputSize: 4 << 20)
    }

    public var mode: Mode
    public var limits: Limits

    public init(mode: Mode = .strict, limits: Limits = .messages) {
        self.mode = mode
        self.limits = limits
    }

    /// Decodes exactly one value filling all of `bytes` (trailing bytes are an error in strict mode).
    public func decode(_ bytes: [UInt8]) throws(BencodeError) -> BencodeValue {
        try bytes.withUnsafeBufferPointer { (buffer) throws(BencodeError) -> BencodeValue in
            try run(buffer, whole: true).value
        }
    }

    /// Decodes exactly one value filling all of `bytes`; offsets count from `bytes.startIndex`.
    public func decode(_ bytes: ArraySlice<UInt8>) throws(BencodeError) -> BencodeValue {
        try bytes.withUnsafeBufferPointer { (buffer) throws(BencodeError) -> BencodeValue in
            try run(buffer, whole: true).value
        }
    }

    /// Decodes one value with the byte range of every value in it.
    public func decodeNode(_ bytes: [UInt8]) throws(BencodeError) -> BencodeNode {
        try bytes.withUnsafeBufferPointer { (buffer) throws(BencodeError) -> BencodeNode in
            try run(buffer, whole: true).value
        }
    }

    /// Decodes the value at the start of `bytes` and says how many bytes it took; what follows
    /// is left to the caller (BEP 9 metadata messages carry raw data after a dictionary).
    public func decodePrefix(_ bytes: ArraySlice<UInt8>) throws(BencodeError) -> (
        value: BencodeValue, length: Int
    ) {
        try bytes.withUnsafeBufferPointer {
            (buffer) throws(BencodeError) -> (value: BencodeValue, length: Int) in
            let result: (value: BencodeValue, end: Int) = try run(buffer, whole: false)
            return (result.value, result.end)
        }
    }

    private func run<Tree: DecodedTree>(
        _ buffer: UnsafeBufferPointer<UInt8>, whole: Bool
    ) throws(BencodeError) -> (value: Tree, end: Int) {
        guard buffer.count > 0 else { throw .emptyInput }
        guard buffer.count <= limits.maxInputSize else {
            throw .inputTooLarge(size: buffer.count, limit: limits.maxInputSize)
        }
        var parser = Parser<Tree>(input: buffer, strict: mode == .strict, limits: limits)
        let value = try parser.parseValue(depth: 0)
        if whole && mode == .strict && parser.position != buffer.count {
            throw .trailingData(offset: parser.position)
        }
        return (value, parser.position)
    }
}

/// What the parser builds: plain values or values with positions.
protocol DecodedTree {
    static func makeInteger(_ value: Int64, range: Range<Int>) -> Self
    static func makeBytes(_ value: [UInt8], range: Range<Int>) -> Self
    static func makeList(_ elements: [Self], range: Range<Int>) -> Self
    static func makeDictionary(_ entries: [(key: [UInt8], keyOffset: Int, value: Self)], range: Range<Int>)
        -> Self
}

extension BencodeValue: DecodedTree {
    static func makeInteger(_ value: Int64, range: Range<Int>) -> BencodeValue { .integer(value) }
    static func makeBytes(_ value: [UInt8], range: Range<Int>) -> BencodeValue { .bytes(value) }
    static func makeList(_ elements: [BencodeValue], range: Range<Int>) -> BencodeValue { .list(elements) }
    static func makeDictionary(
        _ entries: [(key: [UInt8], keyOffset: Int, value: BencodeValue)], range: Range<Int>
    ) -> BencodeValue {
        var result: [[UInt8]: BencodeValue] = [:]
        result.reserveCapacity(entries.count)
        for entry in entries where result[entry.key] == nil { result[entry.key] = entry.value }
        return .dictionary(result)
    }
}

extension BencodeNode: DecodedTree {
    static func makeInteger(_ value: Int64, range: Range<Int>) -> BencodeNode {
        BencodeNode(range: range, kind: .integer(value))
    }
    static func makeBytes(_ value: [UInt8], range: Range<Int>) -> BencodeNode {
        BencodeNode(range: range, kind: .bytes(value))
    }
    static func makeList(_ elements: [BencodeNode], range: Range<Int>) -> BencodeNode {
        BencodeNode(range: range, kind: .list(elements))
    }
    static func makeDictionary(
        _ entries: [(key: [UInt8], keyOffset: Int, value: BencodeNode)], range: Range<Int>
    ) -> BencodeNode {
        BencodeNode(
            range: range,
            kind: .dictionary(entries.map { Entry(key: $0.key, keyOffset: $0.keyOffset, value: $0.value) }))
    }
}

private struct Parser<Tree: DecodedTree> {
    let input: UnsafeBufferPointer<UInt8>
    let strict: Bool
    let limits: BencodeDecoder.Limits
    var position = 0
    var elements = 0

    init(input: UnsafeBufferPointer<UInt8>, strict: Bool, limits: BencodeDecoder.Limits) {
        self.input = input
        self.strict = strict
        self.limits = limits
    }

    private mutating func countElement() throws(BencodeError) {
        elements += 1
        if elements > limits.maxElements {
            throw .elementLimitExceeded(limit: limits.maxElements, offset: position)
        }
    }

    private func peek() throws(BencodeError) -> UInt8 {
        guard position < input.count else { throw .unexpectedEnd(offset: position) }
        return input[position]
    }

    mutating func parseValue(depth: Int) throws(BencodeError) -> Tree {
        let start = position
        let byte = try peek()
        switch byte {
        case UInt8(ascii: "i"):
            try countElement()
            position += 1
            let value = try parseDecimal(allowNegative: true, terminator: UInt8(ascii: "e"))
            return .makeInteger(value, range: start..<position)
        case UInt8(ascii: "0")...UInt8(ascii: "9"):
            try countElement()
            let bytes = try parseString()
            return .makeBytes(bytes, range: start..<position)
        case UInt8(ascii: "l"):
            try countElement()
            guard depth < limits.maxDepth else {
                throw .depthLimitExceeded(limit: limits.maxDepth, offset: start)
            }
            position += 1
            var elements: [Tree] = []
            while try peek() != UInt8(ascii: "e") {
                elements.append(try parseValue(depth: depth + 1))
            }
            position += 1
            return .makeList(elements, range: start..<position)
        case UInt8(ascii: "d"):
            try countElement()
            guard depth < limits.maxDepth else {
                throw .depthLimitExceeded(limit: limits.maxDepth, offset: start)
            }
            position += 1
            var entries: [(key: [UInt8], keyOffset: Int, value: Tree)] = []
            while try peek() != UInt8(ascii: "e") {
                let keyOffset = position
                let keyByte = input[position]
                guard keyByte >= UInt8(ascii: "0") && keyByte <= UInt8(ascii: "9") else {
                    throw .nonStringKey(offset: keyOffset)
                }
                try countElement()
                let key = try parseString()
                if strict, let previous = entries.last?.key {
                    if key == previous { throw .duplicateKey(offset: keyOffset) }
                    if !previous.lexicographicallyPrecedes(key) { throw .unsortedKey(offset: keyOffset) }
                }
                let value = try parseValue(depth: depth + 1)
                entries.append((key, keyOffset, value))
            }
            position += 1
            return .makeDictionary(entries, range: start..<position)
        default:
            throw .unexpectedByte(byte, offset: start)
        }
    }

    /// `<length>:<bytes>` with the length bounded by what remains of the input.
    private mutating func parseString() throws(BencodeError) -> [UInt8] {
        let start = position
        let length = try parseDecimal(allowNegative: false, terminator: UInt8(ascii: ":"))
        guard length <= Int64(input.count - position) else {
            throw .stringBeyondEnd(length: Int(clamping: length), offset: start)
        }
        let count = Int(length)
        let bytes = Array(UnsafeBufferPointer(rebasing: input[position..<position + count]))
        position += count
        return bytes
    }

    /// Digits (with an optional `-` for integers) up to `terminator`, which is consumed.
    private mutating func parseDecimal(allowNegative: Bool, terminator: UInt8) throws(BencodeError) -> Int64 {
        let start = position
        let isString = !allowNegative
        var negative = false
        if allowNegative, try peek() == UInt8(ascii: "-") {
            negative = true
            position += 1
        }
        let digitsStart = position
        var magnitude: Int64 = 0
        while position < input.count, input[position] >= UInt8(ascii: "0"),
            input[position] <= UInt8(ascii: "9")
        {
            let digit = Int64(input[position] - UInt8(ascii: "0"))
            let (times10, overflow1) = magnitude.multipliedReportingOverflow(by: 10)
            // Accumulate negatively so Int64.min is representable.
            let (next, overflow2) =
                negative
                ? times10.subtractingReportingOverflow(digit) : times10.addingReportingOverflow(digit)
            if overflow1 || overflow2 {
                throw isString ? .invalidStringLength(offset: start) : .integerOverflow(offset: start)
            }
            magnitude = next
            position += 1
        }
        let digitCount = position - digitsStart
        guard position < input.count else { throw .unexpectedEnd(offset: position) }
        if digitCount == 0 {
            if isString { throw .invalidStringLength(offset: start) }
            if input[position] == terminator { throw .emptyInteger(offset: start) }
            throw .unexpectedByte(input[position], offset: position)
        }
        guard input[position] == terminator else {
            if isString { throw .invalidStringLength(offset: start) }
            throw .unexpectedByte(input[position], offset: position)
        }
        if strict {
            if digitCount > 1 && input[digitsStart] == UInt8(ascii: "0") {
                throw .nonCanonicalInteger(offset: start)
            }
            if negative && magnitude == 0 { throw .nonCanonicalInteger(offset: start) }
        }
        position += 1
        return magnitude
    }
}

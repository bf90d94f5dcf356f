/// LZW as Go's `compress/lzw` writes it with LSB bit order and 8-bit literals: memberlist's one
/// compression algorithm (`lzwAlgo`, 0). Codes start 9 bits wide and grow to 12; 256 clears the
/// table, 257 ends the stream. Not a cryptographic primitive, and no packaged Swift library
/// speaks Go's variant, so it is written here.
public enum LZW {
    static let clear = 256
    static let end = 257
    static let maxWidth = 12

    public enum Failure: Error, Sendable, Hashable, CustomStringConvertible {
        case invalidCode(Int, atCode: Int)
        case missingEnd
        case tooLarge(limit: Int)

        public var description: String {
            switch self {
            case .invalidCode(let code, let index): "LZW: invalid code \(code) (code #\(index))"
            case .missingEnd: "LZW: the stream ends without its end code"
            case .tooLarge(let limit): "LZW: expands beyond \(limit) bytes"
            }
        }
    }

    /// Expands `input`, refusing more than `limit` bytes of output (a decompression bomb).
    public static func decompress(_ input: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(min(limit, input.count * 3))
        var prefix = [UInt16](repeating: 0, count: 1 << maxWidth)
        var suffix = [UInt8](repeating: 0, count: 1 << maxWidth)
        var scratch = [UInt8](repeating: 0, count: 1 << maxWidth)
        var width = 9
        var high = end
        var overflow = 1 << width
        var last = -1
        var bits: UInt32 = 0
        var bitCount = 0
        var index = 0
        var codeNumber = 0
        while true {
            while bitCount < width {
                guard index < input.count else { throw .missingEnd }
                bits |= UInt32(input[index]) << UInt32(bitCount)
                index += 1
                bitCount += 8
            }
            let code = Int(bits & (UInt32(1) << UInt32(width) - 1))
            bits >>= UInt32(width)
            bitCount -= width
            codeNumber += 1
            if code < clear {
                guard output.count < limit else { throw .tooLarge(limit: limit) }
                output.append(UInt8(code))
                if last >= 0 {
                    suffix[high] = UInt8(code)
                    prefix[high] = UInt16(last)
                }
            } else if code == clear {
                width = 9
                high = end
                overflow = 1 << width
                last = -1
                continue
            } else if code == end {
                return output
            } else if code <= high {
                var cursor = scratch.count - 1
                var walk = code
                if code == high {
                    // The KwKwK case: the last string followed by its own first byte.
                    guard last >= 0 else { throw .invalidCode(code, atCode: codeNumber) }
                    walk = last
                    while walk >= clear { walk = Int(prefix[walk]) }
                    scratch[cursor] = UInt8(walk)
                    cursor -= 1
                    walk = last
                }
                while walk >= clear {
                    scratch[cursor] = suffix[walk]
                    cursor -= 1
                    walk = Int(prefix[walk])
                }
                scratch[cursor] = UInt8(walk)
                let length = scratch.count - cursor
                guard output.count + length <= limit else { throw .tooLarge(limit: limit) }
                output.append(contentsOf: scratch[cursor...])
                if last >= 0 {
                    suffix[high] = UInt8(walk)
                    prefix[high] = UInt16(last)
                }
            } else {
                throw .invalidCode(code, atCode: codeNumber)
            }
            last = code
            high += 1
            if high >= overflow {
                if width == maxWidth {
                    last = -1
                    high -= 1
                } else {
                    width += 1
                    overflow = 1 << width
                }
            }
        }
    }

    /// Compresses `input` into a stream Go's reader (and ``decompress(_:limit:)``) expands.
    public static func compress(_ input: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(input.count / 2 + 8)
        var bits: UInt32 = 0
        var bitCount = 0
        var width = 9
        var high = end
        var overflow = 1 << width
        var table: [UInt32: UInt16] = [:]

        func write(_ code: Int) {
            bits |= UInt32(code) << UInt32(bitCount)
            bitCount += width
            while bitCount >= 8 {
                output.append(UInt8(truncatingIfNeeded: bits))
                bits >>= 8
                bitCount -= 8
            }
        }
        // Mirrors the reader: every code but clear advances `high`; the width grows with it.
        func emit(_ code: Int) {
            write(code)
            high += 1
            if high >= overflow {
                width += 1
                overflow = 1 << width
            }
        }
        func reset() {
            width = 9
            high = end
            overflow = 1 << width
            table.removeAll(keepingCapacity: true)
        }

        write(clear)
        if var current = input.first.map(Int.init) {
            for byte in input.dropFirst() {
                let key = UInt32(current) << 8 | UInt32(byte)
                if let code = table[key] {
                    current = Int(code)
                    continue
                }
                emit(current)
                if high >= (1 << maxWidth) - 2 {
                    // Table full: start afresh well before the reader's 12-bit limit.
                    write(clear)
                    reset()
                } else {
                    table[key] = UInt16(high)
                }
                current = Int(byte)
            }
            emit(current)
        }
        write(end)
        if bitCount > 0 { output.append(UInt8(truncatingIfNeeded: bits)) }
        return output
    }
}

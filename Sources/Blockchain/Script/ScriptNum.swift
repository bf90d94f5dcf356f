/// Script numbers (Core's `CScriptNum`): little-endian magnitude with the sign in the top bit of
/// the last byte; operands at most 4 bytes, results may be longer.
public enum ScriptNum {
    public static func decode(_ bytes: [UInt8], requireMinimal: Bool, maxSize: Int = 4) throws(ScriptError)
        -> Int64
    {
        guard bytes.count <= maxSize else { throw .numberOverflow }
        guard !bytes.isEmpty else { return 0 }
        if requireMinimal, bytes[bytes.count - 1] & 0x7f == 0 {
            if bytes.count <= 1 || bytes[bytes.count - 2] & 0x80 == 0 { throw .nonMinimalNumber }
        }
        var value: Int64 = 0
        for (index, byte) in bytes.enumerated() { value |= Int64(byte) << (8 * Int64(index)) }
        let last = bytes[bytes.count - 1]
        if last & 0x80 != 0 {
            value &= ~(Int64(0x80) << (8 * Int64(bytes.count - 1)))
            return -value
        }
        return value
    }

    public static func encode(_ value: Int64) -> [UInt8] {
        guard value != 0 else { return [] }
        let negative = value < 0
        var magnitude = value.magnitude
        var out: [UInt8] = []
        while magnitude > 0 {
            out.append(UInt8(magnitude & 0xff))
            magnitude >>= 8
        }
        if out[out.count - 1] & 0x80 != 0 {
            out.append(negative ? 0x80 : 0)
        } else if negative {
            out[out.count - 1] |= 0x80
        }
        return out
    }

    /// Script truth: any non-zero byte, except a lone sign bit at the end (negative zero).
    public static func isTrue(_ bytes: [UInt8]) -> Bool {
        for (index, byte) in bytes.enumerated() where byte != 0 {
            return !(index == bytes.count - 1 && byte == 0x80)
        }
        return false
    }
}

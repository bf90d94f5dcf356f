/// URL percent-encoding (RFC 3986 section 2.1), shared by magnet links, tracker queries and
/// the tracker server's query parser.

/// Percent-encodes raw bytes (RFC 3986): everything but the unreserved characters. Used for
/// magnet links and tracker queries alike.
package func percentEncoded(_ bytes: [UInt8]) -> String {
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    for byte in bytes {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
            UInt8(ascii: "~"):
            out.append(byte)
        default:
            out += [UInt8(ascii: "%"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// Percent-decodes `bytes`; `+` becomes a space when `plusIsSpace` (form encoding). Nil when a
/// `%` is not followed by two hexadecimal digits.
package func percentDecoded(_ bytes: some Collection<UInt8>, plusIsSpace: Bool) -> [UInt8]? {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var iterator = bytes.makeIterator()
    while let byte = iterator.next() {
        if byte == UInt8(ascii: "%") {
            guard let first = iterator.next(), let second = iterator.next(), let high = Hex.value(first),
                let low = Hex.value(second)
            else { return nil }
            out.append(high << 4 | low)
        } else {
            out.append(plusIsSpace && byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
        }
    }
    return out
}

/// The bytes a string of hex digits spells (known-answer vectors); traps on a bad digit, which
/// only a broken test would contain.
public func hex(_ text: String) -> [UInt8] {
    let digits = Array(text.utf8)
    precondition(digits.count.isMultiple(of: 2), "an odd number of hex digits")
    return stride(from: 0, to: digits.count, by: 2).map {
        UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)!
    }
}

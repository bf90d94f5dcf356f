/// BEP 42 node IDs bound to the node's external IP: the first 21 bits of the ID are the first 21
/// bits of CRC32-C over the masked IP (its top three bits replaced by `r & 7`), and the last byte
/// is `r`. A node that lies about its ID cannot pick where in the key space it sits, so it cannot
/// take over a key's neighbourhood from one address.
public enum SecureNodeID {
    private static let mask4: [UInt8] = [0x03, 0x0F, 0x3F, 0xFF]
    private static let mask6: [UInt8] = [0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF]

    /// The CRC over `ip` (4 or 16 bytes) and the random byte `r`, as BEP 42 defines it.
    static func crc(ip: [UInt8], r: UInt8) -> UInt32 {
        let mask = ip.count == 4 ? mask4 : mask6
        var masked = zip(ip.prefix(mask.count), mask).map { $0 & $1 }
        masked[0] |= (r & 7) << 5
        return CRC32C.checksum(masked)
    }

    /// An ID for a node at `ip`: `r` becomes the last byte; `random` fills the free bits.
    public static func make(ip: [UInt8], r: UInt8, random: [UInt8]) -> NodeID? {
        guard ip.count == 4 || ip.count == 16, random.count >= 20 else { return nil }
        let crc = crc(ip: ip, r: r)
        var bytes = Array(random.prefix(20))
        bytes[0] = UInt8(truncatingIfNeeded: crc >> 24)
        bytes[1] = UInt8(truncatingIfNeeded: crc >> 16)
        bytes[2] = UInt8(truncatingIfNeeded: crc >> 8) & 0xF8 | bytes[2] & 0x07
        bytes[19] = r
        return NodeID(bytes: bytes)
    }

    /// Whether `id` is a valid BEP 42 ID for a node at `ip`. Addresses BEP 42 exempts (loopback,
    /// private and link-local ranges) always pass.
    public static func isValid(_ id: NodeID, ip: [UInt8]) -> Bool {
        if isExempt(ip) { return true }
        let bytes = id.bytes
        let crc = crc(ip: ip, r: bytes[19])
        return bytes[0] == UInt8(truncatingIfNeeded: crc >> 24)
            && bytes[1] == UInt8(truncatingIfNeeded: crc >> 16)
            && bytes[2] & 0xF8 == UInt8(truncatingIfNeeded: crc >> 8) & 0xF8
    }

    /// Local addresses, for which BEP 42 does not apply: 10/8, 172.16/12, 192.168/16,
    /// 169.254/16, 127/8 and, for IPv6, loopback, link-local and unique-local.
    public static func isExempt(_ ip: [UInt8]) -> Bool {
        if ip.count == 4 {
            return ip[0] == 10 || ip[0] == 127 || (ip[0] == 172 && ip[1] & 0xF0 == 16)
                || (ip[0] == 192 && ip[1] == 168) || (ip[0] == 169 && ip[1] == 254)
        }
        guard ip.count == 16 else { return true }
        return ip == [UInt8](repeating: 0, count: 15) + [1] || (ip[0] == 0xFE && ip[1] & 0xC0 == 0x80)
            || ip[0] & 0xFE == 0xFC
    }
}

/// CRC32-C (Castagnoli, reflected polynomial 0x82F63B78), the checksum BEP 42 uses.
enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { index in
        var crc = UInt32(index)
        for _ in 0..<8 { crc = crc & 1 == 1 ? crc >> 1 ^ 0x82F6_3B78 : crc >> 1 }
        return crc
    }

    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ crc >> 8 }
        return ~crc
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IPv4 or IPv6 address held inline (two words, no heap storage), so addresses are cheap to
/// copy, hash and keep by the hundred thousand (routing tables, rate limits, tracker swarms).
///
/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, RFC 4291 §2.5.5.2), as a dual-stack socket
/// reports IPv4 peers, *is* the IPv4 address here: the two compare equal and print alike, so a
/// peer is never counted twice and gets the compact 6-byte form (BEP 23).
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The first 64 bits of an IPv6 address; 0 for IPv4.
    public let high: UInt64
    /// The last 64 bits of an IPv6 address; an IPv4 address in the low 32 bits.
    public let low: UInt64
    public let isIPv6: Bool

    /// An IPv4 address from its 32-bit value (`0x7F000001` is 127.0.0.1).
    public init(v4 value: UInt32) {
        high = 0
        low = UInt64(value)
        isIPv6 = false
    }

    /// An IPv6 address from its two halves; an IPv4-mapped one becomes IPv4.
    public init(v6High high: UInt64, low: UInt64) {
        if high == 0 && low >> 32 == 0xFFFF {
            self.init(v4: UInt32(truncatingIfNeeded: low))
        } else {
            self.init(unmappedHigh: high, low: low)
        }
    }

    private init(unmappedHigh high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
        isIPv6 = true
    }

    /// 4 (IPv4) or 16 (IPv6) network-order bytes; nil for any other length.
    public init?(bytes: some Collection<UInt8>) {
        var high: UInt64 = 0
        var low: UInt64 = 0
        var index = 0
        switch bytes.count {
        case 4:
            for byte in bytes { low = low << 8 | UInt64(byte) }
            self.init(v4: UInt32(truncatingIfNeeded: low))
        case 16:
            for byte in bytes {
                if index < 8 { high = high << 8 | UInt64(byte) } else { low = low << 8 | UInt64(byte) }
                index += 1
            }
            self.init(v6High: high, low: low)
        default:
            return nil
        }
    }

    /// Parses `192.0.2.1` (four decimal octets, no leading zeros) or an IPv6 address in any RFC
    /// 4291 §2.2 form (`2001:db8::1`, `::ffff:192.0.2.1`), without brackets or zone.
    public init(parsing text: some StringProtocol) throws(AddressError) {
        let string = String(text)
        guard !string.isEmpty else { throw AddressError.empty }
        guard string.utf8.count <= 45, !string.utf8.contains(0) else {
            throw AddressError.notAnAddress(string)
        }
        if string.contains(":") {
            var raw = in6_addr()
            guard inet_pton(AF_INET6, string, &raw) == 1 else { throw AddressError.invalidIPv6(string) }
            self = withUnsafeBytes(of: raw) { IPAddress(bytes: $0)! }  // 16 bytes
        } else if string.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || (48...57).contains($0) }) {
            var raw = in_addr()
            guard inet_pton(AF_INET, string, &raw) == 1 else { throw AddressError.invalidIPv4(string) }
            self.init(v4: UInt32(bigEndian: raw.s_addr))
        } else {
            throw AddressError.notAnAddress(string)
        }
    }

    /// Nil unless `text` is an IP address literal (see ``init(parsing:)``).
    public init?(_ text: some StringProtocol) {
        guard let address = try? IPAddress(parsing: text) else { return nil }
        self = address
    }

    public static let anyV4 = IPAddress(v4: 0)
    public static let anyV6 = IPAddress(v6High: 0, low: 0)
    public static let loopbackV4 = IPAddress(v4: 0x7F00_0001)
    public static let loopbackV6 = IPAddress(v6High: 0, low: 1)

    /// The 32-bit value of an IPv4 address.
    public var v4: UInt32? { isIPv6 ? nil : UInt32(truncatingIfNeeded: low) }

    /// The address bytes: 4 or 16, network order.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        appendBytes(to: &out)
        return out
    }

    /// Appends the 4 or 16 network-order bytes (the compact forms of BEP 23 and BEP 5).
    public func appendBytes(to out: inout [UInt8]) {
        if isIPv6 {
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: high >> shift))
            }
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: low >> shift))
            }
        } else {
            for shift in stride(from: 24, through: 0, by: -8) {
                out.append(UInt8(truncatingIfNeeded: low >> shift))
            }
        }
    }

    /// 16 bytes: IPv6 as it is, IPv4 mapped (`::ffff:a.b.c.d`), as Bitcoin's `addr` carries it.
    public var mappedBytes: [UInt8] {
        isIPv6 ? bytes : [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF] + bytes
    }

    /// The unspecified address (0.0.0.0 or ::).
    public var isUnspecified: Bool { high == 0 && low == 0 }

    /// 127.0.0.0/8 or ::1.
    public var isLoopback: Bool { isIPv6 ? (high == 0 && low == 1) : (low >> 24 == 127) }

    /// Reachable across the Internet: not unspecified, loopback, private (RFC 1918, RFC 4193),
    /// link-local, carrier-grade NAT (RFC 6598), documentation (RFC 5737, RFC 3849), multicast
    /// or reserved — the addresses Bitcoin Core's `IsRoutable` lets into gossip.
    public var isPublic: Bool {
        if isUnspecified || isLoopback { return false }
        if let v4 {
            let a = v4 >> 24
            let b = (v4 >> 16) & 0xFF
            switch a {
            case 0, 10, 127: return false
            case 100 where (64...127).contains(b): return false  // RFC 6598
            case 169 where b == 254: return false  // link-local
            case 172 where (16...31).contains(b): return false
            case 192 where b == 168: return false
            case 192 where b == 0 && (v4 >> 8) & 0xFF == 2: return false  // TEST-NET-1
            case 198 where b == 18 || b == 19: return false  // RFC 2544
            case 198 where b == 51 && (v4 >> 8) & 0xFF == 100: return false  // TEST-NET-2
            case 203 where b == 0 && (v4 >> 8) & 0xFF == 113: return false  // TEST-NET-3
            case 224...255: return false  // multicast, reserved, broadcast
            default: return true
            }
        }
        let first = UInt16(truncatingIfNeeded: high >> 48)
        if first & 0xFE00 == 0xFC00 { return false }  // unique local
        if first & 0xFFC0 == 0xFE80 { return false }  // link-local
        if first & 0xFF00 == 0xFF00 { return false }  // multicast
        if high >> 32 == 0x2001_0DB8 { return false }  // documentation
        return true
    }

    /// Text as RFC 5952 writes it (`192.0.2.1`, `2001:db8::1`), without brackets.
    public var description: String {
        var text = [CChar](repeating: 0, count: 48)
        if isIPv6 {
            var raw = in6_addr()
            withUnsafeMutableBytes(of: &raw) { buffer in
                for (index, byte) in bytes.enumerated() { buffer[index] = byte }
            }
            _ = inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
        } else {
            var raw = in_addr(s_addr: UInt32(truncatingIfNeeded: low).bigEndian)
            _ = inet_ntop(AF_INET, &raw, &text, socklen_t(text.count))
        }
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// IPv4 before IPv6, then by value.
    public static func < (lhs: IPAddress, rhs: IPAddress) -> Bool {
        (lhs.isIPv6 ? 1 : 0, lhs.high, lhs.low) < (rhs.isIPv6 ? 1 : 0, rhs.high, rhs.low)
    }
}

#if canImport(Glibc)
    import Glibc
#endif

/// A multiaddr: a path of protocols and their values, such as `/ip4/127.0.0.1/tcp/4001/p2p/Qm…`,
/// in text and in its binary form (protocol codes as varints, then each value).
public struct Multiaddr: Hashable, Sendable, CustomStringConvertible {
    public enum Component: Hashable, Sendable {
        case ip4([UInt8])
        case ip6([UInt8])
        case tcp(UInt16)
        case udp(UInt16)
        case quicV1
        /// A peer ID: the multihash bytes of its key.
        case p2p([UInt8])
        case dns(String)
        case dns4(String)
        case dns6(String)
    }

    public var components: [Component]

    public init(_ components: [Component]) { self.components = components }

    // Codes from the multicodec table.
    private static let codes: [String: UInt64] = [
        "ip4": 4, "tcp": 6, "udp": 273, "ip6": 41, "dns": 53, "dns4": 54, "dns6": 55, "quic-v1": 0x01CD,
        "p2p": 421, "ipfs": 421,
    ]
    /// Longest DNS name or peer ID accepted.
    public static let maxValueLength = 255

    /// Parses the text form.
    public init(_ text: String) throws(MultiformatError) {
        guard text.hasPrefix("/") else { throw .invalid("a multiaddr starts with '/'") }
        var parts = text.split(separator: "/", omittingEmptySubsequences: false).dropFirst()
        if parts.last == "" { parts = parts.dropLast() }
        var components: [Component] = []
        while let name = parts.first {
            parts = parts.dropFirst()
            if name == "quic-v1" {
                components.append(.quicV1)
                continue
            }
            guard Self.codes[String(name)] != nil else { throw .unknownProtocol(String(name)) }
            guard let value = parts.first else { throw .invalid("/\(name) needs a value") }
            parts = parts.dropFirst()
            components.append(try Self.component(String(name), String(value)))
        }
        self.components = components
    }

    private static func component(_ name: String, _ value: String) throws(MultiformatError) -> Component {
        switch name {
        case "ip4":
            guard let bytes = parseIPv4(value) else {
                throw .invalid("'\(value.prefix(40))' is not an IPv4 address")
            }
            return .ip4(bytes)
        case "ip6":
            guard let bytes = parseIPv6(value) else {
                throw .invalid("'\(value.prefix(60))' is not an IPv6 address")
            }
            return .ip6(bytes)
        case "tcp", "udp":
            guard let port = UInt16(value) else { throw .invalid("'\(value.prefix(10))' is not a port") }
            return name == "tcp" ? .tcp(port) : .udp(port)
        case "p2p", "ipfs":
            guard value.utf8.count <= 128 else { throw .badLength("peer ID", offset: 0) }
            let bytes: [UInt8]
            if value.hasPrefix("Qm") || value.hasPrefix("1") {
                bytes = try Multibase.base58btc.decode(digits: Array(value.utf8))
            } else {
                bytes = try CID(value).multihash.bytes  // a CIDv1 of a libp2p key
            }
            try Self.checkPeerID(bytes)
            return .p2p(bytes)
        default:  // dns, dns4, dns6
            guard !value.isEmpty, value.utf8.count <= maxValueLength else {
                throw .badLength("DNS name", offset: 0)
            }
            return name == "dns" ? .dns(value) : name == "dns4" ? .dns4(value) : .dns6(value)
        }
    }

    /// The text form ("/" for no components).
    public var description: String {
        guard !components.isEmpty else { return "/" }
        return components.map { component -> String in
            switch component {
            case .ip4(let bytes): return "/ip4/" + bytes.map(String.init).joined(separator: ".")
            case .ip6(let bytes): return "/ip6/" + Self.formatIPv6(bytes)
            case .tcp(let port): return "/tcp/\(port)"
            case .udp(let port): return "/udp/\(port)"
            case .quicV1: return "/quic-v1"
            case .p2p(let bytes):
                return "/p2p/" + String(decoding: Multibase.base58btc.digits(of: bytes), as: UTF8.self)
            case .dns(let name): return "/dns/" + name
            case .dns4(let name): return "/dns4/" + name
            case .dns6(let name): return "/dns6/" + name
            }
        }.joined()
    }

    /// A `/p2p/` value must be a peer ID's multihash (the peer-ids spec): identity (an inlined
    /// key) or SHA-256. Any other multihash would print in base58 as no peer ID does, and not
    /// read back.
    static func checkPeerID(_ bytes: [UInt8]) throws(MultiformatError) {
        let multihash = try Multihash(bytes: bytes)
        switch multihash.code {
        case Multihash.Function.identity.rawValue: return
        case Multihash.Function.sha256.rawValue where multihash.digest.count == 32: return
        default: throw .invalid("a /p2p/ value that is not a peer ID (multihash code \(multihash.code))")
        }
    }

    /// The binary form.
    public var bytes: [UInt8] {
        var out: [UInt8] = []
        for component in components {
            switch component {
            case .ip4(let bytes): out += Varint.encode(4) + bytes
            case .ip6(let bytes): out += Varint.encode(41) + bytes
            case .tcp(let port): out += Varint.encode(6) + [UInt8(port >> 8), UInt8(port & 0xFF)]
            case .udp(let port): out += Varint.encode(273) + [UInt8(port >> 8), UInt8(port & 0xFF)]
            case .quicV1: out += Varint.encode(0x01CD)
            case .p2p(let bytes): out += Varint.encode(421) + Varint.encode(UInt64(bytes.count)) + bytes
            case .dns(let name), .dns4(let name), .dns6(let name):
                let code: UInt64
                if case .dns = component {
                    code = 53
                } else if case .dns4 = component {
                    code = 54
                } else {
                    code = 55
                }
                let utf8 = Array(name.utf8)
                out += Varint.encode(code) + Varint.encode(UInt64(utf8.count)) + utf8
            }
        }
        return out
    }

    /// Reads the binary form.
    public init(bytes: [UInt8]) throws(MultiformatError) {
        var offset = 0
        var components: [Component] = []
        func take(_ count: Int) throws(MultiformatError) -> [UInt8] {
            guard count >= 0, offset + count <= bytes.count else {
                throw .badLength("multiaddr value", offset: offset)
            }
            defer { offset += count }
            return Array(bytes[offset..<offset + count])
        }
        func sized() throws(MultiformatError) -> [UInt8] {
            let start = offset
            let length = try Varint.decode(bytes, at: &offset)
            guard length <= UInt64(Self.maxValueLength) else {
                throw .badLength("multiaddr value", offset: start)
            }
            return try take(Int(length))
        }
        while offset < bytes.count {
            let code = try Varint.decode(bytes, at: &offset)
            switch code {
            case 4: components.append(.ip4(try take(4)))
            case 41: components.append(.ip6(try take(16)))
            case 6, 273:
                let port = try take(2)
                let value = UInt16(port[0]) << 8 | UInt16(port[1])
                components.append(code == 6 ? .tcp(value) : .udp(value))
            case 0x01CD: components.append(.quicV1)
            case 421:
                let id = try sized()
                try Self.checkPeerID(id)
                components.append(.p2p(id))
            case 53, 54, 55:
                let start = offset
                let raw = try sized()
                guard !raw.isEmpty, !raw.contains(UInt8(ascii: "/")),
                    let name = String(validating: raw, as: UTF8.self)
                else {
                    throw .invalid(
                        "a DNS name in a multiaddr must be non-empty UTF-8 without '/' (byte \(start))")
                }
                components.append(code == 53 ? .dns(name) : code == 54 ? .dns4(name) : .dns6(name))
            default:
                throw .unknownCodec(code)
            }
        }
        self.components = components
    }

    // The address literals are read and written by the C library (inet_pton/inet_ntop, as
    // PeerNet's IPAddress does; this module sits below PeerNet and cannot use it): four decimal
    // octets without leading zeros, any RFC 4291 §2.2 IPv6 form in, RFC 5952 text out.

    static func parseIPv4(_ text: String) -> [UInt8]? {
        guard text.utf8.count <= 15,
            text.utf8.allSatisfy({ $0 == UInt8(ascii: ".") || (48...57).contains($0) })
        else { return nil }
        var raw = in_addr()
        guard inet_pton(AF_INET, text, &raw) == 1 else { return nil }
        return withUnsafeBytes(of: raw) { Array($0) }
    }

    static func parseIPv6(_ text: String) -> [UInt8]? {
        guard text.utf8.count <= 45, !text.utf8.contains(0) else { return nil }
        var raw = in6_addr()
        guard inet_pton(AF_INET6, text, &raw) == 1 else { return nil }
        return withUnsafeBytes(of: raw) { Array($0) }
    }

    static func formatIPv6(_ bytes: [UInt8]) -> String {
        var raw = in6_addr()
        withUnsafeMutableBytes(of: &raw) { buffer in
            for (index, byte) in bytes.prefix(16).enumerated() { buffer[index] = byte }
        }
        var text = [CChar](repeating: 0, count: 48)
        _ = inet_ntop(AF_INET6, &raw, &text, socklen_t(text.count))
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

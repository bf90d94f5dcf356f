import NIOCore

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// An IP address and port: where a peer, tracker or node is reached. The one endpoint type of
/// every PeerStack module; compact wire forms (BEP 23, BEP 5, Bitcoin's `addr`) live in each
/// protocol's codec and are built on it.
public struct Endpoint: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var ip: IPAddress
    public var port: UInt16

    public init(ip: IPAddress, port: UInt16) {
        self.ip = ip
        self.port = port
    }

    /// 4 or 16 network-order address bytes and a port; nil for any other length.
    public init?(ip bytes: some Collection<UInt8>, port: UInt16) {
        guard let ip = IPAddress(bytes: bytes) else { return nil }
        self.init(ip: ip, port: port)
    }

    /// Parses `192.0.2.1:6881`, `[2001:db8::1]:6881`, or, with a `defaultPort`, a bare address
    /// (`192.0.2.1`, `2001:db8::1`, `[2001:db8::1]`). Names are refused: see ``HostPort``.
    public init(parsing text: some StringProtocol, defaultPort: UInt16? = nil) throws(AddressError) {
        let parts = try HostPort.split(String(text), defaultPort: defaultPort)
        self.init(ip: try IPAddress(parsing: parts.host), port: parts.port)
    }

    /// Nil unless `text` parses (see ``init(parsing:defaultPort:)``).
    public init?(_ text: some StringProtocol) {
        guard let endpoint = try? Endpoint(parsing: text) else { return nil }
        self = endpoint
    }

    public var isIPv6: Bool { ip.isIPv6 }

    /// The address bytes, then the port big-endian: 6 or 18 bytes (BEP 23, BEP 5, BEP 32).
    public var compact: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(18)
        ip.appendBytes(to: &out)
        out.append(UInt8(port >> 8))
        out.append(UInt8(port & 0xFF))
        return out
    }

    /// Reads one 6- or 18-byte compact endpoint; nil for any other length.
    public init?(compact bytes: some Collection<UInt8>) {
        guard bytes.count == 6 || bytes.count == 18 else { return nil }
        let array = Array(bytes)
        let port = UInt16(array[array.count - 2]) << 8 | UInt16(array[array.count - 1])
        self.init(ip: array.dropLast(2), port: port)
    }

    /// Reads a run of compact endpoints of `ipLength` + 2 bytes each (BEP 23 `peers`, BEP 11
    /// `added`); a trailing partial entry is ignored.
    public static func parseCompact(_ bytes: some Collection<UInt8>, ipLength: Int) -> [Endpoint] {
        guard ipLength == 4 || ipLength == 16 else { return [] }
        let array = Array(bytes)
        let stride = ipLength + 2
        var result: [Endpoint] = []
        result.reserveCapacity(array.count / stride)
        var index = 0
        while index + stride <= array.count {
            let port = UInt16(array[index + ipLength]) << 8 | UInt16(array[index + ipLength + 1])
            if let endpoint = Endpoint(ip: array[index..<index + ipLength], port: port) {
                result.append(endpoint)
            }
            index += stride
        }
        return result
    }

    /// `192.0.2.1:6881` or `[2001:db8::1]:6881`.
    public var description: String { ip.isIPv6 ? "[\(ip)]:\(port)" : "\(ip):\(port)" }

    public static func < (lhs: Endpoint, rhs: Endpoint) -> Bool { (lhs.ip, lhs.port) < (rhs.ip, rhs.port) }
}

// MARK: NIO socket addresses (written once, here)

extension IPAddress {
    /// The IP of a NIO socket address (an IPv4-mapped IPv6 address becomes IPv4); nil for a
    /// Unix socket.
    public init?(_ address: SocketAddress) {
        switch address {
        case .v4(let v4):
            self.init(v4: UInt32(bigEndian: v4.address.sin_addr.s_addr))
        case .v6(let v6):
            guard let ip = withUnsafeBytes(of: v6.address.sin6_addr, { IPAddress(bytes: $0) }) else {
                return nil
            }
            self = ip
        case .unixDomainSocket:
            return nil
        }
    }
}

extension Endpoint {
    /// The IP and port of a NIO socket address (IPv4-mapped IPv6 becomes IPv4).
    public init?(_ address: SocketAddress) {
        guard let ip = IPAddress(address), let port = address.port, let port16 = UInt16(exactly: port) else {
            return nil
        }
        self.init(ip: ip, port: port16)
    }

    /// The NIO socket address to bind, connect or send to.
    public var socketAddress: SocketAddress {
        if ip.isIPv6 {
            var raw = sockaddr_in6()
            raw.sin6_family = sa_family_t(AF_INET6)
            raw.sin6_port = port.bigEndian
            withUnsafeMutableBytes(of: &raw.sin6_addr) { buffer in
                for (index, byte) in ip.bytes.enumerated() { buffer[index] = byte }
            }
            return SocketAddress(raw, host: ip.description)
        }
        var raw = sockaddr_in()
        raw.sin_family = sa_family_t(AF_INET)
        raw.sin_port = port.bigEndian
        raw.sin_addr = in_addr(s_addr: (ip.v4 ?? 0).bigEndian)
        return SocketAddress(raw, host: ip.description)
    }
}

extension SocketAddress {
    /// The endpoint of an IP socket address, or a typed error for a Unix socket.
    public func endpoint() throws(AddressError) -> Endpoint {
        guard let endpoint = Endpoint(self) else { throw AddressError.notAnIPSocket(description) }
        return endpoint
    }
}

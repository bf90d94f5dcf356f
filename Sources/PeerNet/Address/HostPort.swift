import NIOCore
import NIOPosix

/// A host that may be a name (`tracker.example:6969`) or an address literal, with a port, as
/// people type it and as trackers' URLs and `--bootstrap` carry it. ``resolve(on:)`` turns it
/// into endpoints without blocking an event loop.
public struct HostPort: Hashable, Sendable, CustomStringConvertible {
    /// A DNS name or an address literal (no brackets).
    public var host: String
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host
        self.port = port
    }

    /// Parses `name:port`, `1.2.3.4:port` or `[v6]:port` (a bare host with `defaultPort`).
    public init(parsing text: some StringProtocol, defaultPort: UInt16? = nil) throws(AddressError) {
        let parts = try Self.split(String(text), defaultPort: defaultPort)
        if IPAddress(parts.host) == nil {
            guard parts.host.utf8.count <= 253, !parts.host.hasPrefix("-"), !parts.host.hasPrefix("."),
                parts.host.utf8.allSatisfy({ byte in
                    (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte)
                        || byte == UInt8(ascii: "-") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_")
                }),
                parts.host.contains(where: { !$0.isNumber && $0 != "." })
            else {
                throw parts.host.contains(":")
                    ? AddressError.invalidIPv6(parts.host)
                    : parts.host.allSatisfy({ $0.isNumber || $0 == "." })
                        ? AddressError.invalidIPv4(parts.host) : AddressError.invalidHostName(parts.host)
            }
        }
        self.init(host: parts.host, port: parts.port)
    }

    /// The literal's endpoint when the host is an address (no resolution needed).
    public var endpoint: Endpoint? { IPAddress(host).map { Endpoint(ip: $0, port: port) } }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The endpoints the host names: the literal itself, or what `getaddrinfo` returns, looked
    /// up on NIO's blocking-I/O thread pool so no event loop waits for DNS.
    public func resolve(pool: NIOThreadPool = .singleton) async throws -> [Endpoint] {
        if let endpoint { return [endpoint] }
        let host = self.host
        let port = Int(self.port)
        return try await pool.runIfActive {
            let addresses = try resolveBlocking(host: host, port: port)
            var seen = Set<Endpoint>()
            return addresses.filter { seen.insert($0).inserted }
        }
    }

    /// Splits `host:port`, `[v6]:port`, or a bare host (`defaultPort`). An unbracketed text with
    /// several colons is a bare IPv6 address.
    static func split(_ text: String, defaultPort: UInt16?) throws(AddressError) -> (
        host: String, port: UInt16
    ) {
        guard !text.isEmpty else { throw AddressError.empty }
        let host: Substring
        var portText: Substring?
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { throw AddressError.badBrackets(text) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            if !rest.isEmpty {
                guard rest.hasPrefix(":") else { throw AddressError.badBrackets(text) }
                portText = rest.dropFirst()
            }
            guard host.contains(":") else { throw AddressError.invalidIPv6(String(host)) }
        } else if let colon = text.firstIndex(of: ":") {
            if text[text.index(after: colon)...].contains(":") {
                // Several colons: an IPv6 address, which cannot carry a port without brackets.
                guard defaultPort != nil else {
                    throw IPAddress(text) == nil
                        ? AddressError.invalidIPv6(text) : AddressError.unbracketedIPv6(text)
                }
                host = text[...]
            } else {
                host = text[..<colon]
                portText = text[text.index(after: colon)...]
            }
        } else {
            host = text[...]
        }
        guard !host.isEmpty else { throw AddressError.empty }
        guard let portText else {
            guard let defaultPort else { throw AddressError.missingPort(text) }
            return (String(host), defaultPort)
        }
        guard !portText.isEmpty, portText.count <= 5, portText.allSatisfy({ $0.isASCII && $0.isNumber }),
            let port = UInt16(portText)
        else { throw AddressError.invalidPort(String(portText)) }
        return (String(host), port)
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// getaddrinfo for TCP/UDP endpoints of `host` (blocking; run it on a thread pool).
private func resolveBlocking(host: String, port: Int) throws -> [Endpoint] {
    var hints = addrinfo()
    hints.ai_family = AF_UNSPEC
    #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    #else
        hints.ai_socktype = SOCK_STREAM
    #endif
    var result: UnsafeMutablePointer<addrinfo>?
    let status = getaddrinfo(host, String(port), &hints, &result)
    guard status == 0, let first = result else { throw ResolutionError(host: host, code: status) }
    defer { freeaddrinfo(first) }
    var endpoints: [Endpoint] = []
    var cursor: UnsafeMutablePointer<addrinfo>? = first
    while let entry = cursor {
        if let address = entry.pointee.ai_addr {
            switch Int32(address.pointee.sa_family) {
            case AF_INET:
                let v4 = address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee }
                endpoints.append(
                    Endpoint(ip: IPAddress(v4: UInt32(bigEndian: v4.sin_addr.s_addr)), port: UInt16(port)))
            case AF_INET6:
                let v6 = address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee }
                if let ip = withUnsafeBytes(of: v6.sin6_addr, { IPAddress(bytes: $0) }) {
                    endpoints.append(Endpoint(ip: ip, port: UInt16(port)))
                }
            default: break
            }
        }
        cursor = entry.pointee.ai_next
    }
    return endpoints
}

/// A host name that could not be resolved.
public struct ResolutionError: Error, CustomStringConvertible, Sendable {
    public let host: String
    public let code: Int32
    public var description: String {
        "cannot resolve '\(host)': \(String(cString: gai_strerror(code)))"
    }
}

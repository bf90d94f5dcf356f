/// A peer's IP address and port, as trackers, PEX and the DHT exchange them.
public struct PeerAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    public let ip: [UInt8]
    public let port: UInt16

    public init?(ip: [UInt8], port: UInt16) {
        guard ip.count == 4 || ip.count == 16 else { return nil }
        self.ip = ip
        self.port = port
    }

    /// Parses `1.2.3.4:6881` or `[::1]:6881`.
    public init?(_ text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
        }
        guard let port = UInt16(portText), let ip = Self.parseIP(String(host)) else { return nil }
        self.ip = ip
        self.port = port
    }

    public var isIPv6: Bool { ip.count == 16 }

    /// The address in text, without the port.
    public var host: String {
        if ip.count == 4 { return ip.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for index in stride(from: 0, to: 16, by: 2) {
            groups.append(String(UInt16(ip[index]) << 8 | UInt16(ip[index + 1]), radix: 16))
        }
        return groups.joined(separator: ":")
    }

    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// BEP 23 / BEP 7 compact form: the address bytes then the port, big-endian.
    public var compact: [UInt8] { ip + [UInt8(port >> 8), UInt8(port & 0xFF)] }

    /// Reads a run of compact addresses of `ipLength` + 2 bytes each; a trailing partial entry
    /// is ignored.
    public static func parseCompact(_ bytes: some Collection<UInt8>, ipLength: Int) -> [PeerAddress] {
        let array = Array(bytes)
        let stride = ipLength + 2
        var result: [PeerAddress] = []
        var index = 0
        while index + stride <= array.count {
            let port = UInt16(array[index + ipLength]) << 8 | UInt16(array[index + ipLength + 1])
            if let address = PeerAddress(ip: Array(array[index..<index + ipLength]), port: port) {
                result.append(address)
            }
            index += stride
        }
        return result
    }

    static func parseIP(_ text: String) -> [UInt8]? {
        if text.contains(":") { return parseIPv6(text) }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count <= 3, let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    private static func parseIPv6(_ text: String) -> [UInt8]? {
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard group.count <= 4, let value = UInt16(group, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all += [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

/// One step of the Gnutella 0.6 handshake (section 2.2.4): a start line (`GNUTELLA CONNECT/0.6`
/// or `GNUTELLA/0.6 200 OK`), HTTP-style headers, and an empty line. Header names compare
/// without case; a line starting with a space or tab continues the previous header.
public struct HandshakeMessage: Sendable, Equatable {
    public var startLine: String
    /// In order, names as sent.
    public var headers: [(name: String, value: String)]

    /// Bounds on what a peer may send before the handshake is done.
    public static let maxBytes = 16 * 1024
    public static let maxHeaders = 64

    public static let connectLine = "GNUTELLA CONNECT/0.6"

    public init(startLine: String, headers: [(name: String, value: String)] = []) {
        self.startLine = startLine
        self.headers = headers
    }

    /// A response: `GNUTELLA/0.6 <code> <reason>`.
    public init(code: Int, reason: String, headers: [(name: String, value: String)] = []) {
        self.init(startLine: "GNUTELLA/0.6 \(code) \(reason)", headers: headers)
    }

    public static func == (lhs: HandshakeMessage, rhs: HandshakeMessage) -> Bool {
        lhs.startLine == rhs.startLine && lhs.headers.elementsEqual(rhs.headers) { $0 == $1 }
    }

    /// The first header named `name` (any case), trimmed.
    public subscript(name: String) -> String? {
        let key = name.lowercased()
        return headers.first { $0.name.lowercased() == key }?.value
    }

    /// A header's comma-separated values, trimmed, lower-cased (`Accept-Encoding: deflate`).
    public func tokens(_ name: String) -> [String] {
        (self[name] ?? "").split(separator: ",").map { $0.trimmingSpaces().lowercased() }.filter {
            !$0.isEmpty
        }
    }

    /// The response code of a response's start line (`GNUTELLA/0.6 200 OK` → 200).
    public var code: Int? {
        let parts = startLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("GNUTELLA/") else { return nil }
        return Int(parts[1])
    }

    public var isConnectRequest: Bool { startLine.hasPrefix("GNUTELLA CONNECT/") }

    public func encoded() -> [UInt8] {
        var text = startLine + "\r\n"
        for (name, value) in headers { text += "\(name): \(value)\r\n" }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// Parses one message from the front of `bytes`: nil while its empty line has not arrived
    /// (an error once `maxBytes` have without one), else the message and the bytes it took.
    public static func parse(_ bytes: [UInt8]) throws(GnutellaError) -> (HandshakeMessage, Int)? {
        guard let end = headerEnd(bytes) else {
            if bytes.count > maxBytes {
                throw .tooLarge(field: "handshake headers", size: bytes.count, limit: maxBytes)
            }
            return nil
        }
        guard end <= maxBytes else { throw .tooLarge(field: "handshake headers", size: end, limit: maxBytes) }
        var lines = bytes[0..<end].split(separator: 0x0A, omittingEmptySubsequences: false).map {
            String(decoding: $0.last == 0x0D ? $0.dropLast() : $0, as: UTF8.self)
        }
        while lines.last?.isEmpty == true { lines.removeLast() }
        guard let start = lines.first, !start.isEmpty else {
            throw .invalid(field: "handshake start line", offset: 0, reason: "empty")
        }
        guard start.hasPrefix("GNUTELLA") else {
            throw .handshake("not a Gnutella handshake: \(start.prefix(40))")
        }
        var headers: [(name: String, value: String)] = []
        var offset = start.utf8.count + 2
        for line in lines.dropFirst() {
            defer { offset += line.utf8.count + 2 }
            if let first = line.first, first == " " || first == "\t" {
                guard !headers.isEmpty else {
                    throw .invalid(
                        field: "handshake header", offset: offset, reason: "continuation before any header")
                }
                let more = line.trimmingSpaces()
                if !more.isEmpty {
                    let value = headers[headers.count - 1].value
                    headers[headers.count - 1].value = value.isEmpty ? more : value + " " + more
                }
                continue
            }
            guard let colon = line.firstIndex(of: ":") else {
                throw .invalid(field: "handshake header", offset: offset, reason: "no colon")
            }
            let name = String(line[..<colon]).trimmingSpaces()
            guard !name.isEmpty else {
                throw .invalid(field: "handshake header", offset: offset, reason: "empty name")
            }
            headers.append((name, String(line[line.index(after: colon)...]).trimmingSpaces()))
            guard headers.count <= maxHeaders else {
                throw .tooLarge(field: "handshake headers", size: headers.count, limit: maxHeaders)
            }
        }
        return (HandshakeMessage(startLine: start, headers: headers), end)
    }

    /// The index just past the first blank line (CRLF CRLF, or LF LF from lax servents).
    static func headerEnd(_ bytes: [UInt8]) -> Int? {
        var index = 0
        let limit = min(bytes.count, maxBytes + 4)
        while index < limit {
            if bytes[index] == 0x0A {
                if index + 1 < bytes.count, bytes[index + 1] == 0x0A { return index + 2 }
                if index + 2 < bytes.count, bytes[index + 1] == 0x0D, bytes[index + 2] == 0x0A {
                    return index + 3
                }
            }
            index += 1
        }
        return nil
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs, counted as Unicode scalars: as characters, a
    /// tab or space followed by a combining mark is one grapheme and would stay or go with it
    /// (the fuzzer found a header that changed on re-encoding that way).
    func trimmingSpaces() -> String {
        let scalars = Array(unicodeScalars)
        let isSpace: (Unicode.Scalar) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
            let last = scalars.lastIndex(where: { !isSpace($0) })
        else { return "" }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: scalars[first...last])
        return String(out)
    }
}

import PeerNet

/// What was wrong with an ed2k link, and where.
public struct ED2KLinkError: Error, Sendable, Equatable, CustomStringConvertible {
    public let field: String
    public let reason: String
    public var description: String { "ed2k link: \(field): \(reason)" }
}

/// An ed2k link: `ed2k://|file|<name>|<size>|<md4 hex>|[h=<AICH base32>|][/|sources,<ip:port>,…|]/`,
/// `ed2k://|server|<host>|<port>|/`, or `ed2k://|serverlist|<url>|/`. Names are percent-decoded
/// (eMule writes `%20` and friends); the `|` separators never appear inside a field.
public enum ED2KLink: Sendable, Equatable, CustomStringConvertible {
    case file(name: String, size: UInt64, hash: [UInt8], aich: String?, sources: [Endpoint])
    case server(host: String, port: UInt16)
    case serverList(url: String)

    /// Largest file size eDonkey can describe (eMule's large-file limit, 256 GB).
    public static let maxFileSize: UInt64 = 256_000_000_000

    public init(parsing text: String) throws(ED2KLinkError) {
        let trimmed = text.trimmingCharacters(whereSpace: true)
        guard trimmed.lowercased().hasPrefix("ed2k://|") else {
            throw ED2KLinkError(field: "scheme", reason: "not ed2k://|…")
        }
        guard trimmed.utf8.count <= 8_192 else { throw ED2KLinkError(field: "link", reason: "over 8 KiB") }
        var fields = trimmed.dropFirst("ed2k://|".count).split(
            separator: "|", omittingEmptySubsequences: false
        )
        .map(String.init)
        // A well-formed link ends "|/" (or "|" alone, as ed2k_hash prints it).
        while let last = fields.last, last.isEmpty || last == "/" { fields.removeLast() }
        guard let kind = fields.first?.lowercased() else {
            throw ED2KLinkError(field: "type", reason: "missing")
        }
        switch kind {
        case "file":
            guard fields.count >= 4 else {
                throw ED2KLinkError(field: "file", reason: "needs name, size and hash")
            }
            let name = Self.percentDecoded(fields[1])
            guard !name.isEmpty else { throw ED2KLinkError(field: "name", reason: "empty") }
            guard let size = UInt64(fields[2]), size > 0, size <= Self.maxFileSize else {
                throw ED2KLinkError(field: "size", reason: "\(fields[2].prefix(30)) is not 1 to 256 GB")
            }
            guard let hash = [UInt8](hex: fields[3]), hash.count == 16 else {
                throw ED2KLinkError(field: "hash", reason: "\(fields[3].prefix(40)) is not 32 hex digits")
            }
            var aich: String?
            var sources: [Endpoint] = []
            for extra in fields.dropFirst(4) {
                if extra.lowercased().hasPrefix("h=") {
                    let value = String(extra.dropFirst(2))
                    guard value.count == 32,
                        value.uppercased().allSatisfy({ $0.isLetter || ("2"..."7").contains($0) })
                    else { throw ED2KLinkError(field: "h=", reason: "not a 32-character base32 AICH hash") }
                    aich = value.uppercased()
                } else if extra.lowercased().hasPrefix("sources,") {
                    sources += extra.dropFirst("sources,".count).split(separator: ",").prefix(100).compactMap
                    {
                        Endpoint($0)
                    }
                } else if extra.lowercased().hasPrefix("p=") || extra == "/" {
                    continue  // part hashes and the separator before sources: not needed to fetch
                }
            }
            self = .file(name: name, size: size, hash: hash, aich: aich, sources: sources)
        case "server":
            guard fields.count >= 3, !fields[1].isEmpty, let port = UInt16(fields[2]), port > 0 else {
                throw ED2KLinkError(field: "server", reason: "needs host and port")
            }
            self = .server(host: fields[1], port: port)
        case "serverlist":
            guard fields.count >= 2, !fields[1].isEmpty else {
                throw ED2KLinkError(field: "serverlist", reason: "needs a URL")
            }
            self = .serverList(url: fields[1])
        default:
            throw ED2KLinkError(field: "type", reason: "\(kind.prefix(20)) is not file, server or serverlist")
        }
    }

    /// The link as eMule and aMule write it.
    public var description: String {
        switch self {
        case .file(let name, let size, let hash, let aich, let sources):
            var text = "ed2k://|file|\(Self.percentEncoded(name))|\(size)|\(hash.hexString.uppercased())|"
            if let aich { text += "h=\(aich)|" }
            if !sources.isEmpty {
                text += "/|sources," + sources.map(\.description).joined(separator: ",") + "|"
            }
            return text + "/"
        case .server(let host, let port): return "ed2k://|server|\(host)|\(port)|/"
        case .serverList(let url): return "ed2k://|serverlist|\(url)|/"
        }
    }

    /// Only what cannot stand in a link is escaped: `|`, `%`, and control characters.
    static func percentEncoded(_ text: String) -> String {
        var out: [UInt8] = []
        for byte in text.utf8 {
            if byte == 0x7C || byte == 0x25 || byte < 0x20 || byte == 0x7F {
                out += Array(("%" + String(byte, radix: 16, uppercase: true).leftPadded(2)).utf8)
            } else {
                out.append(byte)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func percentDecoded(_ text: String) -> String {
        var bytes: [UInt8] = []
        var rest = Array(text.utf8)[...]
        while let byte = rest.popFirst() {
            if byte == 0x25, rest.count >= 2,
                let value = UInt8(String(decoding: rest.prefix(2), as: UTF8.self), radix: 16)
            {
                bytes.append(value)
                rest = rest.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }

    func trimmingCharacters(whereSpace: Bool) -> String {
        String(drop { $0.isWhitespace }.reversed().drop { $0.isWhitespace }.reversed())
    }
}

import Multiformats
import PeerNet

/// A Ping (0x00): empty, or a GGEP block (e.g. "SCP", asking for pongs of ultrapeers).
public struct Ping: Sendable, Equatable {
    public var ggep: GGEPBlock?

    public init(ggep: GGEPBlock? = nil) { self.ggep = ggep }

    public init(parsing bytes: [UInt8]) throws(GnutellaError) {
        ggep = bytes.isEmpty ? nil : try GGEPBlock(parsing: bytes)
    }

    public func encoded() -> [UInt8] { ggep?.encoded() ?? [] }
}

/// A Pong (0x01): where a servent listens and what it shares, then an optional GGEP block
/// ("DU" uptime, "UP" ultrapeer slots, "IPP" packed addresses…). Port little-endian, address
/// in network order (0.6, section 2.2.3).
public struct Pong: Sendable, Equatable {
    public var endpoint: Endpoint
    public var files: UInt32
    public var kilobytes: UInt32
    public var ggep: GGEPBlock?

    public init(endpoint: Endpoint, files: UInt32, kilobytes: UInt32, ggep: GGEPBlock? = nil) {
        self.endpoint = endpoint
        self.files = files
        self.kilobytes = kilobytes
        self.ggep = ggep
    }

    public init(parsing bytes: [UInt8]) throws(GnutellaError) {
        var reader = PayloadReader(bytes)
        let port = try reader.uint16LE("pong port")
        endpoint = try readIPv4(&reader, port: port, "pong address")
        files = try reader.uint32LE("pong shared files")
        kilobytes = try reader.uint32LE("pong shared kilobytes")
        ggep = try optionalGGEP(&reader, "pong")
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(endpoint.port)
        out += ipv4Bytes(endpoint)
        out.appendLE(files)
        out.appendLE(kilobytes)
        return out + (ggep?.encoded() ?? [])
    }
}

/// A Bye (0x02): a code (200 for a plain close, 4xx/5xx for errors) and a reason, sent with
/// TTL 1 before a servent closes the connection.
public struct Bye: Sendable, Equatable {
    public var code: UInt16
    public var message: String

    public init(code: UInt16, message: String) {
        self.code = code
        self.message = message
    }

    public init(parsing bytes: [UInt8]) throws(GnutellaError) {
        var reader = PayloadReader(bytes)
        code = try reader.uint16LE("bye code")
        let rest = reader.rest()
        let text = rest.firstIndex(of: 0).map { Array(rest[..<$0]) } ?? rest
        message = String(decoding: text, as: UTF8.self)
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(code)
        return out + Array(message.utf8.filter { $0 != 0 }) + [0]
    }
}

/// A Push (0x40): asks the firewalled servent `servent` to connect to `endpoint` and upload its
/// file `index` (it answers with `GIV`). Routed by servent GUID along the path its hit came.
public struct Push: Sendable, Equatable {
    public var servent: GUID
    public var index: UInt32
    public var endpoint: Endpoint
    public var ggep: GGEPBlock?

    public init(servent: GUID, index: UInt32, endpoint: Endpoint, ggep: GGEPBlock? = nil) {
        self.servent = servent
        self.index = index
        self.endpoint = endpoint
        self.ggep = ggep
    }

    public init(parsing bytes: [UInt8]) throws(GnutellaError) {
        var reader = PayloadReader(bytes)
        guard let guid = GUID(try reader.take(16, "push servent GUID")) else {
            throw .truncated(field: "push servent GUID", offset: 0)
        }
        servent = guid
        index = try reader.uint32LE("push file index")
        let ip = try reader.take(4, "push address")
        let port = try reader.uint16LE("push port")
        guard let endpoint = Endpoint(ip: ip, port: port) else {
            throw .invalid(field: "push address", offset: 20, reason: "not IPv4")
        }
        self.endpoint = endpoint
        ggep = try optionalGGEP(&reader, "push")
    }

    public func encoded() -> [UInt8] {
        var out = servent.bytes
        out.appendLE(index)
        out += ipv4Bytes(endpoint)
        out.appendLE(endpoint.port)
        return out + (ggep?.encoded() ?? [])
    }
}

/// The extensions after a query's text or a hit's name: HUGE URNs (`urn:sha1:BASE32`), a GGEP
/// block, and anything else (XML, unknown), separated by 0x1C (HUGE 0.94, GGEP 0.51).
public struct ExtensionBlock: Sendable, Equatable {
    public var urns: [String]
    public var ggep: GGEPBlock?
    /// Items that are neither (rich XML metadata, unknown), kept as they came.
    public var other: [[UInt8]]

    public init(urns: [String] = [], ggep: GGEPBlock? = nil, other: [[UInt8]] = []) {
        self.urns = urns
        self.ggep = ggep
        self.other = other
    }

    public var isEmpty: Bool { urns.isEmpty && ggep == nil && other.isEmpty }

    /// The SHA-1 URN's 20 bytes, if one is present and well formed.
    public var sha1: [UInt8]? {
        for urn in urns { if let hash = SHA1URN.parse(urn) { return hash } }
        return nil
    }

    /// Reads items until the reader's end or a NUL (consumed) when `stopAtNul`.
    static func parse(_ reader: inout PayloadReader, stopAtNul: Bool) throws(GnutellaError) -> ExtensionBlock
    {
        var block = ExtensionBlock()
        var items = 0
        while !reader.isAtEnd {
            let first = reader.bytes[reader.offset]
            if first == 0 {
                _ = try reader.byte("extension end")
                if stopAtNul { return block }
                continue
            }
            if first == 0x1C {
                _ = try reader.byte("extension separator")
                continue
            }
            items += 1
            guard items <= 64 else { throw .tooLarge(field: "extension items", size: items, limit: 64) }
            if first == GGEPBlock.magic {
                let at = reader.offset
                let ggep = try GGEPBlock.parse(&reader)
                guard block.ggep == nil else {
                    throw .invalid(field: "extension block", offset: at, reason: "two GGEP blocks")
                }
                block.ggep = ggep
                continue
            }
            var item: [UInt8] = []
            while !reader.isAtEnd, reader.bytes[reader.offset] != 0x1C, reader.bytes[reader.offset] != 0 {
                item.append(try reader.byte("extension"))
            }
            if item.count > 4, item[0..<4].map({ $0 | 0x20 }) == Array("urn:".utf8) {
                block.urns.append(String(decoding: item, as: UTF8.self))
            } else {
                block.other.append(item)
            }
        }
        guard !stopAtNul else { throw .truncated(field: "extension block (no NUL)", offset: reader.offset) }
        return block
    }

    func encoded() -> [UInt8] {
        var items: [[UInt8]] = urns.map { Array($0.utf8.filter { $0 != 0 && $0 != 0x1C }) }
        items += other.map { $0.filter { $0 != 0 && $0 != 0x1C } }.filter { !$0.isEmpty }
        if let ggep, !ggep.extensions.isEmpty { items.append(ggep.encoded()) }
        var out: [UInt8] = []
        for (index, item) in items.enumerated() {
            if index > 0 { out.append(0x1C) }
            out += item
        }
        return out
    }
}

/// A Query (0x80): the flags word (0.6: bit 15 marks flags, bit 14 firewalled, bit 13 XML,
/// bit 12 leaf-guided, bit 11 GGEP "H", bit 10 out-of-band), the search text, then extensions.
public struct Query: Sendable, Equatable {
    public var flags: UInt16
    public var text: String
    public var extensions: ExtensionBlock

    public static let flagsPresent: UInt16 = 0x8000
    public static let firewalled: UInt16 = 0x4000
    public static let wantsXML: UInt16 = 0x2000
    public static let leafGuided: UInt16 = 0x1000
    public static let ggepH: UInt16 = 0x0800
    public static let outOfBand: UInt16 = 0x0400

    public init(
        text: String, flags: UInt16 = Query.flagsPresent, extensions: ExtensionBlock = ExtensionBlock()
    ) {
        self.flags = flags
        self.text = text
        self.extensions = extensions
    }

    public init(parsing bytes: [UInt8]) throws(GnutellaError) {
        var reader = PayloadReader(bytes)
        flags = try reader.uint16LE("query flags")
        let textAt = reader.offset
        let text = try reader.nulTerminated("query text")
        guard let decoded = String(validating: text, as: UTF8.self) else {
            throw .invalid(field: "query text", offset: textAt, reason: "not UTF-8")
        }
        self.text = decoded
        extensions = try ExtensionBlock.parse(&reader, stopAtNul: false)
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.appendLE(flags)
        out += Array(text.utf8.filter { $0 != 0 }) + [0]
        return out + extensions.encoded()
    }
}

/// A QueryHit (0x81): where the responder is, its results, an optional trailer (the query hit
/// descriptor: vendor code, the push/busy/uploaded/speed/GGEP flags, private data) and the
/// responding servent's GUID, which a Push to it is routed by.
public struct QueryHit: Sendable, Equatable {
    public struct Result: Sendable, Equatable {
        public var index: UInt32
        public var size: UInt32
        public var name: String
        public var extensions: ExtensionBlock

        public init(index: UInt32, size: UInt32, name: String, extensions: ExtensionBlock = ExtensionBlock())
        {
            self.index = index
            self.size = size
            self.name = name
            self.extensions = extensions
        }
    }

    /// The query hit descriptor (0.6, section 2.2.7.3). Its two open-data bytes mark which flags
    /// are meaningful in LimeWire's order: the push flag's value is in the first byte and its
    /// "meaningful" bit in the second; for busy, uploaded, speed and GGEP it is the reverse.
    public struct Trailer: Sendable, Equatable {
        public var vendor: [UInt8]
        public var push: Bool?
        public var busy: Bool?
        public var uploaded: Bool?
        public var measuredSpeed: Bool?
        public var ggep: GGEPBlock?
        public var privateData: [UInt8]

        public init(
            vendor: String = "PSTK", push: Bool? = nil, busy: Bool? = nil, uploaded: Bool? = nil,
            measuredSpeed: Bool? = nil, ggep: GGEPBlock? = nil, privateData: [UInt8] = []
        ) {
            self.vendor =
                Array(vendor.utf8.prefix(4)) + [UInt8](repeating: 0x20, count: max(0, 4 - vendor.utf8.count))
            self.push = push
            self.busy = busy
            self.uploaded = uploaded
            self.measuredSpeed = measuredSpeed
            self.ggep = ggep
            self.privateData = privateData
        }
    }

    public var endpoint: Endpoint
    /// Upload speed in kbit/s.
    public var speed: UInt32
    public var results: [Result]
    public var trailer: Trailer?
    public var servent: GUID

    public static let maxResults = 255

    public init(endpoint: Endpoint, speed: UInt32, results: [Result], trailer: Trailer?, servent: GUID) {
        self.endpoint = endpoint
        self.speed = speed
        self.results = results
        self.trailer = trailer
        self.servent = servent
    }

    public init(parsing bytes: [UInt8]) throws(GnutellaError) {
        guard bytes.count >= 11 + 16 else { throw .truncated(field: "query hit", offset: bytes.count) }
        var reader = PayloadReader(bytes, to: bytes.count - 16)
        let count = Int(try reader.byte("number of hits"))
        let port = try reader.uint16LE("query hit port")
        endpoint = try readIPv4(&reader, port: port, "query hit address")
        speed = try reader.uint32LE("query hit speed")
        var results: [Result] = []
        for n in 0..<count {
            let index = try reader.uint32LE("result \(n) index")
            let size = try reader.uint32LE("result \(n) size")
            let nameAt = reader.offset
            let name = try reader.nulTerminated("result \(n) name")
            guard let decoded = String(validating: name, as: UTF8.self) else {
                throw .invalid(field: "result \(n) name", offset: nameAt, reason: "not UTF-8")
            }
            let extensions = try ExtensionBlock.parse(&reader, stopAtNul: true)
            results.append(Result(index: index, size: size, name: decoded, extensions: extensions))
        }
        self.results = results
        trailer = reader.isAtEnd ? nil : try Self.parseTrailer(&reader)
        guard let servent = GUID(Array(bytes[(bytes.count - 16)...])) else {
            throw .truncated(field: "servent GUID", offset: bytes.count)
        }
        self.servent = servent
    }

    private static func parseTrailer(_ reader: inout PayloadReader) throws(GnutellaError) -> Trailer {
        var trailer = Trailer()
        trailer.vendor = try reader.take(4, "vendor code")
        let openSize = Int(try reader.byte("open data size"))
        let open = try reader.take(openSize, "open data")
        var hasGGEP = false
        if open.count >= 2 {
            let (first, second) = (open[0], open[1])
            if second & 0x01 != 0 { trailer.push = first & 0x01 != 0 }
            if first & 0x04 != 0 { trailer.busy = second & 0x04 != 0 }
            if first & 0x08 != 0 { trailer.uploaded = second & 0x08 != 0 }
            if first & 0x10 != 0 { trailer.measuredSpeed = second & 0x10 != 0 }
            hasGGEP = first & 0x20 != 0 && second & 0x20 != 0
        } else if open.count == 1 {
            trailer.push = open[0] & 0x01 != 0
        }
        if hasGGEP, !reader.isAtEnd, reader.bytes[reader.offset] == GGEPBlock.magic {
            trailer.ggep = try GGEPBlock.parse(&reader)
        }
        trailer.privateData = reader.rest()
        return trailer
    }

    public func encoded() -> [UInt8] {
        var out: [UInt8] = [UInt8(min(results.count, Self.maxResults))]
        out.appendLE(endpoint.port)
        out += ipv4Bytes(endpoint)
        out.appendLE(speed)
        for result in results.prefix(Self.maxResults) {
            out.appendLE(result.index)
            out.appendLE(result.size)
            out += Array(result.name.utf8.filter { $0 != 0 }) + [0]
            out += result.extensions.encoded() + [0]
        }
        if let trailer {
            out += trailer.vendor.prefix(4)
            var first: UInt8 = 0
            var second: UInt8 = 0
            if let push = trailer.push {
                second |= 0x01
                if push { first |= 0x01 }
            }
            for (flag, bit) in [
                (trailer.busy, UInt8(0x04)), (trailer.uploaded, 0x08), (trailer.measuredSpeed, 0x10),
            ] {
                if let flag {
                    first |= bit
                    if flag { second |= bit }
                }
            }
            let ggep = trailer.ggep.map { $0.encoded() } ?? []
            if !ggep.isEmpty {
                first |= 0x20
                second |= 0x20
            }
            out += [2, first, second] + ggep + trailer.privateData
        }
        return out + servent.bytes
    }
}

/// `urn:sha1:` + 32 characters of RFC 4648 base32 (HUGE 0.94), the SHA-1 of a whole file.
public enum SHA1URN {
    public static func string(_ hash: [UInt8]) -> String {
        "urn:sha1:" + String(decoding: Multibase.base32Upper.digits(of: hash), as: UTF8.self)
    }

    /// The 20 bytes of a `urn:sha1:` URN (case-insensitive), nil for anything else.
    public static func parse(_ urn: String) -> [UInt8]? {
        let text = Array(urn.utf8)
        guard text.count == 41, text[0..<9].map({ $0 | 0x20 }) == Array("urn:sha1:".utf8),
            let hash = try? Multibase.base32Upper.decode(digits: Array(text[9...])), hash.count == 20
        else { return nil }
        return hash
    }
}

private func readIPv4(_ reader: inout PayloadReader, port: UInt16, _ field: String) throws(GnutellaError)
    -> Endpoint
{
    let at = reader.offset
    guard let endpoint = Endpoint(ip: try reader.take(4, field), port: port) else {
        throw .invalid(field: field, offset: at, reason: "not IPv4")
    }
    return endpoint
}

private func ipv4Bytes(_ endpoint: Endpoint) -> [UInt8] {
    let bytes = endpoint.ip.bytes
    return bytes.count == 4 ? bytes : [0, 0, 0, 0]
}

private func optionalGGEP(_ reader: inout PayloadReader, _ what: String) throws(GnutellaError) -> GGEPBlock? {
    guard !reader.isAtEnd else { return nil }
    let at = reader.offset
    guard reader.bytes[at] == GGEPBlock.magic else {
        throw .invalid(field: "\(what) extension", offset: at, reason: "not a GGEP block")
    }
    let block = try GGEPBlock.parse(&reader)
    guard reader.isAtEnd else {
        throw .invalid(field: "\(what) payload", offset: reader.offset, reason: "bytes after the GGEP block")
    }
    return block
}

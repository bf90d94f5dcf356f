import Multiformats

/// Why multistream-select failed.
public enum MultistreamError: Error, Sendable, Hashable, CustomStringConvertible {
    /// A message longer than the limit (`length` as announced).
    case lineTooLong(Int)
    /// A message without its trailing newline, or with a bad length varint.
    case malformed(String)
    /// The peer does not speak multistream-select 1.0 (it sent this header).
    case wrongHeader(String)
    /// None of the protocols offered is supported by the other side.
    case noProtocol([String])
    /// More messages than a negotiation may take.
    case tooManyMessages

    public var description: String {
        switch self {
        case .lineTooLong(let length):
            return "a multistream message of \(length) bytes (at most \(Multistream.maxLine))"
        case .malformed(let why): return "a malformed multistream message: \(why)"
        case .wrongHeader(let header):
            return "the peer speaks '\(header.prefix(64))', not \(Multistream.header)"
        case .noProtocol(let offered): return "the peer supports none of \(offered.joined(separator: ", "))"
        case .tooManyMessages: return "the peer sent too many multistream messages"
        }
    }
}

/// multistream-select 1.0's wire format (multistream-select spec): each message is a varint
/// length, the UTF-8 text and a newline (the length counts the newline).
public enum Multistream {
    public static let header = "/multistream/1.0.0"
    /// Longest message accepted (go-multistream's limit is 1,024 bytes for one protocol ID; an
    /// `ls` answer holds several, so it may be longer).
    public static let maxLine = 1_024
    public static let maxListing = 64 << 10

    /// One message: `varint(len + 1) ‖ text ‖ "\n"`.
    public static func encode(_ line: String) -> [UInt8] {
        let bytes = Array(line.utf8)
        return Varint.encode(UInt64(bytes.count + 1)) + bytes + [0x0A]
    }

    /// The answer to `ls`: one message holding each protocol as its own message.
    public static func encodeListing(_ protocols: [String]) -> [UInt8] {
        let inner = protocols.flatMap { encode($0) }
        return Varint.encode(UInt64(inner.count + 1)) + inner + [0x0A]
    }
}

/// Cuts a byte stream into multistream messages, with the length bounded before buffering.
public struct MultistreamReader: Sendable {
    var buffer: [UInt8] = []
    let limit: Int

    public init(limit: Int = Multistream.maxLine) { self.limit = limit }

    /// Bytes left over after the last whole message (what follows the negotiation).
    public var remainder: [UInt8] { buffer }

    /// Adds bytes; returns the whole messages now available, without their newlines.
    public mutating func feed(_ bytes: [UInt8]) throws(MultistreamError) -> [String] {
        append(bytes)
        var lines: [String] = []
        while let line = try next() { lines.append(line) }
        return lines
    }

    /// Adds bytes without parsing them.
    public mutating func append(_ bytes: [UInt8]) { buffer += bytes }

    /// The next whole message, or nil until it has all come. Bytes after it stay unparsed (they
    /// may be the negotiated protocol's, not multistream's).
    public mutating func next() throws(MultistreamError) -> String? {
        guard !buffer.isEmpty else { return nil }
        var offset = 0
        let length: UInt64
        do {
            length = try Varint.decode(buffer, at: &offset)
        } catch {
            // Every byte so far continues the varint: the rest has not come yet (and a
            // length over the limit needs at most 2 bytes, so this waits on little).
            if buffer.count < 3, buffer.allSatisfy({ $0 & 0x80 != 0 }) { return nil }
            throw .malformed("a bad length varint")
        }
        guard length <= UInt64(limit) else { throw .lineTooLong(Int(clamping: length)) }
        guard length >= 1 else { throw .malformed("an empty message (no newline)") }
        guard buffer.count - offset >= Int(length) else { return nil }
        let body = buffer[offset..<offset + Int(length)]
        guard body.last == 0x0A else { throw .malformed("no trailing newline") }
        guard let line = String(validating: body.dropLast(), as: UTF8.self) else {
            throw .malformed("not UTF-8")
        }
        buffer.removeFirst(offset + Int(length))
        return line
    }
}

/// The dialler's side of multistream-select 1.0 (sans I/O): sends the header and its first
/// choice at once, then the next choice after each `na`, until one is echoed.
public struct MultistreamDialer: Sendable {
    public enum Event: Sendable, Equatable {
        /// Send these bytes.
        case send([UInt8])
        /// The protocol is agreed; the stream is the protocol's from here on.
        case selected(String)
    }

    let protocols: [String]
    var next = 0
    var headerSeen = false
    var reader = MultistreamReader()
    var messages = 0

    /// `protocols` in order of preference.
    public init(protocols: [String]) { self.protocols = protocols }

    /// What to send first: the header and the first proposal.
    public mutating func start() -> [UInt8] {
        Multistream.encode(Multistream.header) + Multistream.encode(protocols.first ?? "")
    }

    /// Bytes from the listener; returns what to do.
    public mutating func receive(_ bytes: [UInt8]) throws(MultistreamError) -> [Event] {
        var events: [Event] = []
        reader.append(bytes)
        while let line = try reader.next() {
            messages += 1
            guard messages <= protocols.count + 2 else { throw .tooManyMessages }
            if !headerSeen {
                guard line == Multistream.header else { throw .wrongHeader(line) }
                headerSeen = true
                continue
            }
            if line == protocols[next] {
                events.append(.selected(line))
                return events
            }
            guard line == "na" else { throw .malformed("'\(line.prefix(64))' answers '\(protocols[next])'") }
            next += 1
            guard next < protocols.count else { throw .noProtocol(protocols) }
            events.append(.send(Multistream.encode(protocols[next])))
        }
        return events
    }

    /// Bytes that came after the listener's echo (the protocol's first bytes).
    public var remainder: [UInt8] { reader.remainder }
}

/// The listener's side: answers the header, echoes a supported protocol, says `na` to others,
/// lists its protocols on `ls`.
public struct MultistreamListener: Sendable {
    public enum Event: Sendable, Equatable {
        case send([UInt8])
        case selected(String)
    }

    let supported: [String]
    var headerSeen = false
    var reader = MultistreamReader()
    var messages = 0
    /// Most proposals a dialler may make before it is dropped.
    public static let maxProposals = 32

    public init(supported: [String]) { self.supported = supported }

    public mutating func receive(_ bytes: [UInt8]) throws(MultistreamError) -> [Event] {
        var events: [Event] = []
        reader.append(bytes)
        while let line = try reader.next() {
            messages += 1
            guard messages <= Self.maxProposals + 1 else { throw .tooManyMessages }
            if !headerSeen {
                guard line == Multistream.header else { throw .wrongHeader(line) }
                headerSeen = true
                events.append(.send(Multistream.encode(Multistream.header)))
                continue
            }
            if line == "ls" {
                events.append(.send(Multistream.encodeListing(supported)))
            } else if supported.contains(line) {
                events.append(.send(Multistream.encode(line)))
                events.append(.selected(line))
                return events
            } else {
                events.append(.send(Multistream.encode("na")))
            }
        }
        return events
    }

    public var remainder: [UInt8] { reader.remainder }
}

/// Either side of a negotiation, for code that runs both the same way (the connection upgrade).
public enum MultistreamNegotiation: Sendable {
    case dialer(MultistreamDialer)
    case listener(MultistreamListener)

    /// Bytes from the other side: the messages to send back, and the protocol once agreed.
    public mutating func receive(_ bytes: [UInt8]) throws(MultistreamError) -> (
        send: [[UInt8]], selected: String?
    ) {
        var out: [[UInt8]] = []
        switch self {
        case .dialer(var dialer):
            let events = try dialer.receive(bytes)
            self = .dialer(dialer)
            for event in events {
                switch event {
                case .send(let bytes): out.append(bytes)
                case .selected(let name): return (out, name)
                }
            }
        case .listener(var listener):
            let events = try listener.receive(bytes)
            self = .listener(listener)
            for event in events {
                switch event {
                case .send(let bytes): out.append(bytes)
                case .selected(let name): return (out, name)
                }
            }
        }
        return (out, nil)
    }

    /// Bytes after the agreed protocol's name.
    public var remainder: [UInt8] {
        switch self {
        case .dialer(let dialer): return dialer.remainder
        case .listener(let listener): return listener.remainder
        }
    }
}

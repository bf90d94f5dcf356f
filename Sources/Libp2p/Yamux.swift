/// Why a yamux session ended or a frame was refused.
public enum YamuxError: Error, Sendable, Hashable, CustomStringConvertible {
    case badVersion(UInt8)
    case badType(UInt8)
    /// A data frame longer than the stream's receive window allows.
    case windowExceeded(stream: UInt32, length: UInt32, window: UInt32)
    /// A window update that would take the send window past 2³² − 1.
    case windowOverflow(stream: UInt32)
    /// A stream ID of the wrong parity, reused, or zero where a stream is needed.
    case badStreamID(UInt32)
    /// More inbound streams than allowed (in all, or not yet acknowledged).
    case tooManyStreams(Int)
    case goneAway(code: UInt32)
    /// Fewer than 12 bytes where a header was expected.
    case truncatedHeader(Int)

    public var description: String {
        switch self {
        case .badVersion(let version): return "yamux version \(version) (only 0 exists)"
        case .badType(let type): return "yamux frame type \(type)"
        case .windowExceeded(let stream, let length, let window):
            return "stream \(stream) sent \(length) bytes into a window of \(window)"
        case .windowOverflow(let stream): return "a window update overflows stream \(stream)'s window"
        case .badStreamID(let id): return "stream ID \(id) is not valid here"
        case .tooManyStreams(let count): return "more than \(count) inbound streams"
        case .goneAway(let code): return "the session went away (code \(code))"
        case .truncatedHeader(let count): return "a yamux header of \(count) bytes (12 needed)"
        }
    }
}

/// A yamux frame (yamux spec, "Framing"): a 12-byte header — version 0, type, flags, stream
/// ID and length, big-endian — and, for data frames, `length` bytes of payload.
public struct YamuxFrame: Sendable, Hashable {
    public enum Kind: UInt8, Sendable {
        case data = 0
        case windowUpdate = 1
        case ping = 2
        case goAway = 3
    }

    public struct Flags: OptionSet, Sendable, Hashable {
        public let rawValue: UInt16
        public init(rawValue: UInt16) { self.rawValue = rawValue }
        public static let syn = Flags(rawValue: 1)
        public static let ack = Flags(rawValue: 2)
        public static let fin = Flags(rawValue: 4)
        public static let rst = Flags(rawValue: 8)
    }

    public static let headerLength = 12

    public var kind: Kind
    public var flags: Flags
    public var stream: UInt32
    /// Data: the payload's length; window update: the delta; ping: the opaque value; go away:
    /// the code.
    public var length: UInt32
    public var payload: [UInt8]

    public init(
        _ kind: Kind, flags: Flags = [], stream: UInt32 = 0, length: UInt32 = 0, payload: [UInt8] = []
    ) {
        self.kind = kind
        self.flags = flags
        self.stream = stream
        self.length = kind == .data ? UInt32(payload.count) : length
        self.payload = payload
    }

    /// A header as read: the length as the peer wrote it (a data frame's payload comes after).
    init(header kind: Kind, flags: Flags, stream: UInt32, length: UInt32) {
        self.kind = kind
        self.flags = flags
        self.stream = stream
        self.length = length
        self.payload = []
    }

    public var bytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(Self.headerLength + payload.count)
        Self.writeHeader(kind, flags: flags, stream: stream, length: length, into: &out)
        return out + payload
    }

    /// Appends a 12-byte header to `out`.
    static func writeHeader(
        _ kind: Kind, flags: Flags = [], stream: UInt32, length: UInt32, into out: inout [UInt8]
    ) {
        out += [0, kind.rawValue, UInt8(flags.rawValue >> 8), UInt8(flags.rawValue & 0xFF)]
        for shift in stride(from: 24, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: stream >> shift))
        }
        for shift in stride(from: 24, through: 0, by: -8) {
            out.append(UInt8(truncatingIfNeeded: length >> shift))
        }
    }

    /// Reads a header (the first 12 bytes); the payload, if any, follows it.
    public static func header(_ bytes: some RandomAccessCollection<UInt8>) throws(YamuxError) -> YamuxFrame {
        let b = Array(bytes.prefix(headerLength))
        guard b.count == headerLength else { throw .truncatedHeader(b.count) }
        guard b[0] == 0 else { throw .badVersion(b[0]) }
        guard let kind = Kind(rawValue: b[1]) else { throw .badType(b[1]) }
        let flags = Flags(rawValue: UInt16(b[2]) << 8 | UInt16(b[3]))
        let stream = b[4..<8].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let length = b[8..<12].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        return YamuxFrame(header: kind, flags: flags, stream: stream, length: length)
    }
}

/// A yamux session's rules (yamux spec), sans I/O: streams opened by either side (the client's
/// odd, the server's even), each with a receive window starting at 256 KiB and grown by window
/// updates as the application consumes data, pings answered, go-away honoured. A peer that
/// overruns a window, overflows one, opens streams without end or never acknowledges them is
/// cut off with a go-away (protocol error).
public struct YamuxSession: Sendable {
    public enum Role: Sendable { case client, server }

    public struct Limits: Sendable, Hashable {
        /// Each stream's starting window (the spec's 256 KiB) and largest window it grows to.
        public var initialWindow: UInt32 = 256 << 10
        public var maxWindow: UInt32 = 16 << 20
        /// Most window, over all streams, grown past their initial windows: what a connection
        /// whose application reads fast may hold unread at worst, beyond the initial windows.
        public var maxGrownWindows: Int = 32 << 20
        /// Most streams at once, and most inbound streams not yet accepted by the application.
        public var maxStreams = 1_024
        public var maxUnacknowledged = 256
        public init() {}
    }

    public enum Event: Sendable, Equatable {
        /// Send these bytes to the peer.
        case send([UInt8])
        /// The peer opened a stream (answer by ``accept(_:)``).
        case opened(UInt32)
        case data(UInt32, [UInt8])
        /// The peer will send no more on the stream (FIN).
        case remoteClosed(UInt32)
        case reset(UInt32)
        /// The stream's send window grew: more may be written.
        case writable(UInt32)
        /// The session is over (the peer's go-away, or ours after a protocol error).
        case goAway(UInt32)
    }

    struct Stream: Sendable {
        /// What the peer may still send, and the window it is kept at (grown from the initial
        /// window while the peer is held back by it).
        var receiveWindow: UInt32
        var windowSize: UInt32 = 0
        /// Bytes received and consumed since the last window update we sent.
        var consumed: UInt32 = 0
        var sendWindow: UInt32
        var acknowledged: Bool
        var localClosed = false
        var remoteClosed = false
    }

    public let role: Role
    public let limits: Limits
    var streams: [UInt32: Stream] = [:]
    var nextID: UInt32
    var unacknowledged = 0
    /// Streams refused because the accept backlog was full.
    public private(set) var refused = 0
    public private(set) var isClosed = false

    public init(role: Role, limits: Limits = Limits()) {
        self.role = role
        self.limits = limits
        nextID = role == .client ? 1 : 2
    }

    public var streamCount: Int { streams.count }

    /// Opens a stream: its ID and the window update with SYN that announces it.
    public mutating func open() throws(YamuxError) -> (UInt32, [UInt8]) {
        guard !isClosed else { throw .goneAway(code: 0) }
        guard streams.count < limits.maxStreams else { throw .tooManyStreams(limits.maxStreams) }
        let id = nextID
        nextID &+= 2
        streams[id] = Stream(
            receiveWindow: limits.initialWindow, sendWindow: limits.initialWindow, acknowledged: true)
        return (id, YamuxFrame(.windowUpdate, flags: .syn, stream: id, length: 0).bytes)
    }

    /// Accepts a stream the peer opened (sends the ACK).
    public mutating func accept(_ id: UInt32) -> [UInt8] {
        guard var stream = streams[id], !stream.acknowledged else { return [] }
        stream.acknowledged = true
        streams[id] = stream
        unacknowledged -= 1
        return YamuxFrame(.windowUpdate, flags: .ack, stream: id, length: 0).bytes
    }

    /// Data for a stream, cut to what its send window allows; the rest waits for `.writable`.
    /// Returns the frames and how many bytes they carry.
    public mutating func write(_ data: ArraySlice<UInt8>, on id: UInt32) -> (
        bytes: [UInt8], written: Int
    ) {
        guard var stream = streams[id], !stream.localClosed, !isClosed else { return ([], 0) }
        let count = min(data.count, Int(stream.sendWindow))
        guard count > 0 else { return ([], 0) }
        stream.sendWindow -= UInt32(count)
        streams[id] = stream
        // At most 64 KiB a frame, so one stream cannot hold the connection for long.
        let frameSize = 64 << 10
        var out: [UInt8] = []
        out.reserveCapacity(count + (count + frameSize - 1) / frameSize * YamuxFrame.headerLength)
        var offset = 0
        while offset < count {
            let length = min(frameSize, count - offset)
            YamuxFrame.writeHeader(.data, stream: id, length: UInt32(length), into: &out)
            let start = data.startIndex + offset
            out += data[start..<start + length]
            offset += length
        }
        return (out, count)
    }

    public mutating func write(_ data: [UInt8], on id: UInt32) -> (bytes: [UInt8], written: Int) {
        write(data[...], on: id)
    }

    /// Half-closes a stream (FIN).
    public mutating func close(_ id: UInt32) -> [UInt8] {
        guard var stream = streams[id], !stream.localClosed else { return [] }
        stream.localClosed = true
        streams[id] = stream.remoteClosed ? nil : stream
        return YamuxFrame(.windowUpdate, flags: .fin, stream: id, length: 0).bytes
    }

    /// The application read `count` bytes of a stream: restore the peer's window when half of it
    /// has been used. When the peer had used three quarters of it by then, the window held it
    /// back: double it (auto-tuning, as go-yamux does), up to `maxWindow` and while the
    /// connection's grown windows stay within `maxGrownWindows`. The window grows only as the
    /// application reads, so a peer cannot grow what it makes us buffer.
    public mutating func consumed(_ count: Int, on id: UInt32) -> [UInt8] {
        guard var stream = streams[id] else { return [] }
        if stream.windowSize == 0 { stream.windowSize = limits.initialWindow }
        stream.consumed += UInt32(clamping: count)
        guard stream.consumed >= stream.windowSize / 2 else {
            streams[id] = stream
            return []
        }
        var delta = stream.consumed
        if stream.receiveWindow <= stream.windowSize / 4, stream.windowSize < limits.maxWindow {
            let grown = streams.values.reduce(0) {
                $0 + Int(max($1.windowSize, limits.initialWindow) - limits.initialWindow)
            }
            let step = min(stream.windowSize, limits.maxWindow - stream.windowSize)
            if grown + Int(step) <= limits.maxGrownWindows {
                stream.windowSize += step
                delta += step
            }
        }
        stream.receiveWindow += delta
        stream.consumed = 0
        streams[id] = stream
        return YamuxFrame(.windowUpdate, stream: id, length: delta).bytes
    }

    mutating func protocolError(_ error: YamuxError) -> (events: [Event], error: YamuxError) {
        isClosed = true
        return ([.send(YamuxFrame(.goAway, length: 1).bytes), .goAway(1)], error)
    }

    /// A whole frame from the peer (header and payload). A protocol error returns the go-away
    /// to send and ends the session.
    public mutating func receive(_ frame: YamuxFrame) -> (events: [Event], error: YamuxError?) {
        guard !isClosed else { return ([], .goneAway(code: 0)) }
        switch frame.kind {
        case .ping:
            if frame.flags.contains(.syn) {
                return ([.send(YamuxFrame(.ping, flags: .ack, length: frame.length).bytes)], nil)
            }
            return ([], nil)
        case .goAway:
            isClosed = true
            return ([.goAway(frame.length)], nil)
        case .data, .windowUpdate:
            break
        }
        let id = frame.stream
        guard id != 0 else { return protocolError(.badStreamID(0)) }
        var events: [Event] = []
        if frame.flags.contains(.syn) {
            // The peer's streams have the other parity; a SYN for a known ID is a reuse.
            let theirs = (id % 2 == 1) == (role == .server)
            guard theirs, streams[id] == nil else { return protocolError(.badStreamID(id)) }
            guard streams.count < limits.maxStreams else {
                return protocolError(.tooManyStreams(limits.maxStreams))
            }
            guard unacknowledged < limits.maxUnacknowledged else {
                // The accept backlog is full: refuse this stream (RST), as go-yamux does, and
                // keep the session; a peer that opens streams faster than they are accepted
                // is slowed, not served.
                refused += 1
                return ([.send(YamuxFrame(.windowUpdate, flags: .rst, stream: id, length: 0).bytes)], nil)
            }
            streams[id] = Stream(
                receiveWindow: limits.initialWindow, sendWindow: limits.initialWindow, acknowledged: false)
            unacknowledged += 1
            events.append(.opened(id))
        }
        guard var stream = streams[id] else {
            // A frame for a stream already gone (a late one after a reset): ignore it.
            return (events, nil)
        }
        if frame.flags.contains(.rst) {
            streams[id] = nil
            if !stream.acknowledged { unacknowledged -= 1 }
            events.append(.reset(id))
            return (events, nil)
        }
        switch frame.kind {
        case .data:
            guard frame.length <= stream.receiveWindow else {
                return protocolError(
                    .windowExceeded(stream: id, length: frame.length, window: stream.receiveWindow))
            }
            stream.receiveWindow -= frame.length
            if !frame.payload.isEmpty { events.append(.data(id, frame.payload)) }
        default:
            if frame.length > 0 {
                let (sum, overflow) = stream.sendWindow.addingReportingOverflow(frame.length)
                guard !overflow else { return protocolError(.windowOverflow(stream: id)) }
                stream.sendWindow = sum
                events.append(.writable(id))
            }
        }
        if frame.flags.contains(.fin) {
            stream.remoteClosed = true
            events.append(.remoteClosed(id))
        }
        if stream.localClosed && stream.remoteClosed {
            streams[id] = nil
        } else {
            streams[id] = stream
        }
        return (events, nil)
    }

    /// The largest data payload a frame from the peer may carry on `id` right now (what a
    /// driver checks before buffering the payload).
    public func receiveWindow(_ id: UInt32) -> UInt32 { streams[id]?.receiveWindow ?? limits.initialWindow }
}

/// Cuts a yamux session's byte stream into frames. A data frame's length is checked against the
/// stream's receive window from its header, before any payload is buffered, so a peer cannot
/// make the reader hold more than one window and one header.
public struct YamuxFrameReader: Sendable {
    var queue = ByteQueue()
    var header: YamuxFrame?

    public init() {}

    public var buffered: Int { queue.count }

    public mutating func feed(_ bytes: some Collection<UInt8>) { queue.append(bytes) }

    /// The next whole frame, or nil until it has come; `session` bounds data payloads.
    public mutating func next(for session: YamuxSession) throws(YamuxError) -> YamuxFrame? {
        if header == nil {
            guard queue.count >= YamuxFrame.headerLength else { return nil }
            let frame = try YamuxFrame.header(queue.peek(YamuxFrame.headerLength))
            if frame.kind == .data {
                let window = session.receiveWindow(frame.stream)
                guard frame.length <= window else {
                    throw .windowExceeded(stream: frame.stream, length: frame.length, window: window)
                }
            }
            _ = queue.take(YamuxFrame.headerLength)
            header = frame
        }
        guard var frame = header else { return nil }
        if frame.kind == .data {
            guard queue.count >= Int(frame.length) else { return nil }
            frame.payload = Array(queue.take(Int(frame.length)))
        }
        header = nil
        return frame
    }
}

extension YamuxSession {
    /// Bytes from the peer: every whole frame is read and handled in order. A protocol error
    /// (including a frame too large for its window) returns the go-away to send.
    public mutating func receive(
        bytes: some Collection<UInt8>, reader: inout YamuxFrameReader
    ) -> (events: [Event], error: YamuxError?) {
        reader.feed(bytes)
        var events: [Event] = []
        while true {
            let frame: YamuxFrame?
            do {
                frame = try reader.next(for: self)
            } catch {
                let (failure, reason) = protocolError(error)
                return (events + failure, reason)
            }
            guard let frame else { return (events, nil) }
            let (more, error) = receive(frame)
            events += more
            if let error { return (events, error) }
            if isClosed { return (events, nil) }
        }
    }
}

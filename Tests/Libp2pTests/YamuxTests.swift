import Libp2p
import Testing

@Suite("yamux")
struct YamuxTests {
    /// Feeds `bytes` (whole frames) to `session`; returns its events.
    static func deliver(_ bytes: [UInt8], to session: inout YamuxSession) throws -> [YamuxSession.Event] {
        var events: [YamuxSession.Event] = []
        var offset = 0
        while offset < bytes.count {
            var frame = try YamuxFrame.header(bytes[offset..<offset + YamuxFrame.headerLength])
            offset += YamuxFrame.headerLength
            if frame.kind == .data {
                frame.payload = Array(bytes[offset..<offset + Int(frame.length)])
                offset += Int(frame.length)
            }
            #expect(frame.kind != .data || frame.payload.count == Int(frame.length))
            let (more, error) = session.receive(frame)
            events += more
            if let error { throw error }
        }
        return events
    }

    @Test("the 12-byte header as the spec lays it out, both ways")
    func header() throws {
        let frame = YamuxFrame(.windowUpdate, flags: .syn, stream: 1, length: 0)
        #expect(frame.bytes == [0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0])
        let data = YamuxFrame(.data, flags: [.fin], stream: 0x0102_0304, payload: [9, 9, 9])
        #expect(data.bytes == [0, 0, 0, 4, 1, 2, 3, 4, 0, 0, 0, 3, 9, 9, 9])
        let read = try YamuxFrame.header(data.bytes.prefix(12))
        #expect(read.kind == .data && read.flags == .fin && read.stream == 0x0102_0304 && read.length == 3)
        #expect(throws: YamuxError.badVersion(1)) {
            try YamuxFrame.header([1] + [UInt8](repeating: 0, count: 11))
        }
        #expect(throws: YamuxError.truncatedHeader(5)) { try YamuxFrame.header([0, 0, 0, 0, 0]) }
        #expect(throws: YamuxError.badType(4)) {
            try YamuxFrame.header([0, 4] + [UInt8](repeating: 0, count: 10))
        }
    }

    @Test("a stream opens, carries data within its window, grows the window as data is read, and closes")
    func streams() throws {
        var client = YamuxSession(role: .client)
        var server = YamuxSession(role: .server)
        let (id, syn) = try client.open()
        #expect(id == 1)
        #expect(try Self.deliver(syn, to: &server) == [.opened(1)])
        _ = try Self.deliver(server.accept(1), to: &client)
        // 300 KiB offered: 256 KiB fit the window, the rest waits.
        let payload = [UInt8](repeating: 7, count: 300 << 10)
        let (frames, written) = client.write(payload, on: 1)
        #expect(written == 256 << 10)
        let received = try Self.deliver(frames, to: &server)
        #expect(
            received.reduce(0) { if case .data(_, let bytes) = $1 { $0 + bytes.count } else { $0 } }
                == written)
        #expect(client.write(payload, on: 1).written == 0)
        // The server's application reads it all: a window update frees the client.
        let update = server.consumed(written, on: 1)
        #expect(try Self.deliver(update, to: &client) == [.writable(1)])
        #expect(client.write(Array(payload[written...]), on: 1).written == payload.count - written)
        // Pings are answered; FIN both ways ends the stream.
        let pong = try Self.deliver(YamuxFrame(.ping, flags: .syn, length: 42).bytes, to: &server)
        #expect(pong == [.send(YamuxFrame(.ping, flags: .ack, length: 42).bytes)])
        #expect(try Self.deliver(client.close(1), to: &server) == [.remoteClosed(1)])
        _ = try Self.deliver(server.close(1), to: &client)
        #expect(client.streamCount == 0 && server.streamCount == 0)
    }

    /// The client writes `size` bytes in `chunk`-byte writes, the server's application reads
    /// each at once and its window updates go back; returns the largest window the server gave.
    static func transfer(
        _ size: Int, chunk: Int, client: inout YamuxSession, server: inout YamuxSession, on id: UInt32
    ) throws -> UInt32 {
        var sent = 0
        var largest = server.receiveWindow(id)
        while sent < size {
            let (frames, written) = client.write(
                [UInt8](repeating: 1, count: min(chunk, size - sent)), on: id)
            #expect(written > 0, "the sender stalled at \(sent) bytes")
            if written == 0 { break }
            sent += written
            _ = try deliver(frames, to: &server)
            _ = try deliver(server.consumed(written, on: id), to: &client)
            largest = max(largest, server.receiveWindow(id))
        }
        return largest
    }

    @Test(
        "a window grows while the sender fills it and the application keeps up, to its cap and within the connection's, and not for a sender that never fills it"
    )
    func windowGrowth() throws {
        var client = YamuxSession(role: .client)
        var server = YamuxSession(role: .server)
        let (id, syn) = try client.open()
        _ = try Self.deliver(syn, to: &server)
        _ = try Self.deliver(server.accept(id), to: &client)
        // 64 KiB at a time never uses three quarters of the window: it stays at 256 KiB.
        #expect(
            try Self.transfer(4 << 20, chunk: 64 << 10, client: &client, server: &server, on: id) == 256 << 10
        )
        // Writes as large as the window allows: it doubles each round, up to 16 MiB.
        #expect(
            try Self.transfer(64 << 20, chunk: 32 << 20, client: &client, server: &server, on: id) == 16 << 20
        )

        var limits = YamuxSession.Limits()
        limits.maxGrownWindows = 768 << 10
        var small = YamuxSession(role: .server, limits: limits)
        var dialer = YamuxSession(role: .client)
        let (first, hello) = try dialer.open()
        _ = try Self.deliver(hello, to: &small)
        _ = try Self.deliver(small.accept(first), to: &dialer)
        // 256 KiB → 512 KiB → 1 MiB grows 768 KiB; the next doubling would pass the cap.
        #expect(
            try Self.transfer(16 << 20, chunk: 32 << 20, client: &dialer, server: &small, on: first) == 1
                << 20)
    }

    @Test(
        "a peer that overruns a window, overflows one, opens more streams than the cap or reuses an ID is cut off with a go-away"
    )
    func hostile() throws {
        var server = YamuxSession(role: .server)
        _ = try Self.deliver(YamuxFrame(.windowUpdate, flags: .syn, stream: 1).bytes, to: &server)
        let overrun = YamuxFrame(.data, stream: 1, payload: [UInt8](repeating: 0, count: (256 << 10) + 1))
        #expect(throws: YamuxError.windowExceeded(stream: 1, length: (256 << 10) + 1, window: 256 << 10)) {
            try Self.deliver(overrun.bytes, to: &server)
        }
        #expect(server.isClosed)

        var overflow = YamuxSession(role: .client)
        let (id, _) = try overflow.open()
        #expect(throws: YamuxError.windowOverflow(stream: id)) {
            try Self.deliver(YamuxFrame(.windowUpdate, stream: id, length: UInt32.max).bytes, to: &overflow)
        }

        // Past the accept backlog a new stream is refused with RST and the session goes on.
        var flooded = YamuxSession(role: .server)
        var refusals: [YamuxSession.Event] = []
        for stream in stride(from: UInt32(1), through: 1_001, by: 2) {
            refusals = try Self.deliver(
                YamuxFrame(.windowUpdate, flags: .syn, stream: stream).bytes, to: &flooded)
        }
        #expect(flooded.streamCount == 256 && flooded.refused == 501 - 256 && !flooded.isClosed)
        #expect(refusals == [.send(YamuxFrame(.windowUpdate, flags: .rst, stream: 1_001, length: 0).bytes)])
        // Streams over the cap in all (here 4, each accepted) end the session.
        var limits = YamuxSession.Limits()
        limits.maxStreams = 4
        var capped = YamuxSession(role: .server, limits: limits)
        #expect(throws: YamuxError.tooManyStreams(4)) {
            for stream in stride(from: UInt32(1), through: 9, by: 2) {
                _ = try Self.deliver(
                    YamuxFrame(.windowUpdate, flags: .syn, stream: stream).bytes, to: &capped)
                _ = capped.accept(stream)
            }
        }

        var reused = YamuxSession(role: .server)
        _ = try Self.deliver(YamuxFrame(.windowUpdate, flags: .syn, stream: 3).bytes, to: &reused)
        #expect(throws: YamuxError.badStreamID(3)) {
            try Self.deliver(YamuxFrame(.windowUpdate, flags: .syn, stream: 3).bytes, to: &reused)
        }
        var parity = YamuxSession(role: .server)
        #expect(throws: YamuxError.badStreamID(2)) {
            try Self.deliver(YamuxFrame(.windowUpdate, flags: .syn, stream: 2).bytes, to: &parity)
        }
    }
}

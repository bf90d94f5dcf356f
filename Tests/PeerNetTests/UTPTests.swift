import NIOCore
import TestSupport
import Testing

@testable import PeerNet

@Suite("uTP packets (BEP 29)")
struct UTPPacketTests {
    /// libtorrent 2.0.8's SYN, and its first DATA packet after our STATE (seq 1000) answered
    /// it, captured on loopback.
    static let libtorrentSYN = hex("4100526c596d87eb0000000000000000d1620000")
    static let libtorrentData = hex("0100526d596d8db3596d595500100000d16303e7") + [0xB9, 0xC8, 0x55]

    @Test("libtorrent's SYN and DATA read field by field, and write back byte for byte")
    func knownAnswers() throws {
        let syn = try UTPPacket(decoding: ByteBuffer(bytes: Self.libtorrentSYN))
        #expect(syn.kind == .syn)
        #expect(syn.connectionID == 0x526C)
        #expect(syn.timestamp == 0x596D_87EB)
        #expect(syn.windowSize == 0)
        #expect(syn.sequenceNumber == 0xD162)
        #expect(syn.ackNumber == 0)
        #expect(Array(syn.encoded().readableBytesView) == Self.libtorrentSYN)
        let data = try UTPPacket(decoding: ByteBuffer(bytes: Self.libtorrentData))
        #expect(data.kind == .data)
        // The peer sends with the SYN's ID + 1, the sequence after its SYN, and acks our
        // STATE's sequence number − 1.
        #expect(data.connectionID == syn.connectionID &+ 1)
        #expect(data.sequenceNumber == syn.sequenceNumber &+ 1)
        #expect(data.ackNumber == 999)
        #expect(data.windowSize == 1 << 20)
        #expect(Array(data.payload.readableBytesView) == [0xB9, 0xC8, 0x55])
        #expect(Array(data.encoded().readableBytesView) == Self.libtorrentData)
    }

    @Test("a selective ack is read and written; an unknown extension is skipped")
    func extensions() throws {
        let packet = UTPPacket(
            kind: .state, connectionID: 7, sequenceNumber: 1, ackNumber: 2, selectiveAck: [0x05, 0, 0, 0x80])
        let wire = Array(packet.encoded().readableBytesView)
        #expect(wire[1] == 1)  // extension 1 follows the header
        #expect(Array(wire[20...]) == [0, 4, 0x05, 0, 0, 0x80])
        #expect(try UTPPacket(decoding: ByteBuffer(bytes: wire)) == packet)
        #expect(packet.encodedLength == wire.count)
        // Extension 2 (libtorrent's close reason, say) then the selective ack, then payload.
        var header = Array(wire[0..<20])
        header[1] = 2
        let chained = header + [1, 2, 0xAA, 0xBB] + [0, 4, 1, 0, 0, 0] + Array("hi".utf8)
        let read = try UTPPacket(decoding: ByteBuffer(bytes: chained))
        #expect(read.selectiveAck == [1, 0, 0, 0])
        #expect(Array(read.payload.readableBytesView) == Array("hi".utf8))
    }

    @Test("refused with the field named: short, wrong version, unknown type, cut extension, too many")
    func refusals() throws {
        let good = UTPPacketTests.libtorrentSYN
        #expect(throws: UTPError.truncated(field: "header", offset: 0)) {
            try UTPPacket(decoding: ByteBuffer(bytes: good.prefix(19)))
        }
        var wrong = good
        wrong[0] = 0x42
        #expect(throws: UTPError.badVersion(2)) { try UTPPacket(decoding: ByteBuffer(bytes: wrong)) }
        wrong[0] = 0x51
        #expect(throws: UTPError.badType(5)) { try UTPPacket(decoding: ByteBuffer(bytes: wrong)) }
        var sack = good
        sack[1] = 1
        // A bitmask whose length is not a multiple of 4, as libtorrent sends them, is read.
        #expect(
            try UTPPacket(decoding: ByteBuffer(bytes: sack + [0, 3, 1, 2, 3])).selectiveAck == [1, 2, 3]
                as [UInt8]?)
        #expect(throws: UTPError.truncated(field: "extension 1", offset: 20)) {
            try UTPPacket(decoding: ByteBuffer(bytes: sack + [0, 8, 1]))
        }
        // A chain of extensions longer than the limit.
        var chain = good
        chain[1] = 9
        let links: [UInt8] = (0..<10).flatMap { _ -> [UInt8] in [9, 0] }
        #expect(throws: UTPError.tooManyExtensions(limit: 8)) {
            try UTPPacket(decoding: ByteBuffer(bytes: chain + links))
        }
    }

    @Test("uTP and a DHT message on one port are told apart by the first byte")
    func demultiplexing() {
        #expect(UTPPacket.isUTP(ByteBuffer(bytes: UTPPacketTests.libtorrentSYN)))
        #expect(
            !UTPPacket.isUTP(ByteBuffer(string: "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")))
        #expect(!UTPPacket.isUTP(ByteBuffer(bytes: [0x41, 0])))
    }
}

/// Two connections joined by a simulated link in virtual time: delay, loss, reordering.
struct UTPLink {
    struct Flight: Comparable {
        var at: UInt64
        var order: Int
        var toB: Bool
        var datagram: ByteBuffer
        static func < (a: Flight, b: Flight) -> Bool { (a.at, a.order) < (b.at, b.order) }
        static func == (a: Flight, b: Flight) -> Bool { a.at == b.at && a.order == b.order }
    }

    var a: UTPConnection
    var b: UTPConnection?
    var now: UInt64 = 1_000_000
    var flights: [Flight] = []
    var order = 0
    var random: SplitMix64
    /// One-way delay, its random extra (reordering), and the loss rate.
    var delay: UInt64 = 10_000
    var jitter: UInt64 = 0
    var loss = 0.0
    var received: [Bool: [UInt8]] = [true: [], false: []]  // true: what B received
    var events: [Bool: [UTPEvent]] = [true: [], false: []]
    var packetsSent = 0

    init(seed: UInt64, configuration: UTPConfiguration = .init()) {
        random = SplitMix64(seed: seed)
        a = UTPConnection(connecting: 0x1234, sequenceNumber: 1, now: now, configuration: configuration)
        self.configuration = configuration
    }
    let configuration: UTPConfiguration

    mutating func send(_ packets: [UTPPacket], toB: Bool) {
        for packet in packets {
            packetsSent += 1
            if loss > 0, Double(random.next() % 1_000_000) / 1_000_000 < loss { continue }
            let extra = jitter > 0 ? random.next() % jitter : 0
            order += 1
            flights.append(
                Flight(at: now + delay + extra, order: order, toB: toB, datagram: packet.encoded()))
        }
    }

    mutating func handle(_ new: [UTPEvent], atB: Bool) {
        for event in new {
            if case .deliver(let buffer) = event {
                received[atB, default: []] += buffer.readableBytesView
            } else {
                events[atB, default: []].append(event)
            }
        }
    }

    mutating func pump() {
        send(a.outgoing(now: now), toB: true)
        if var side = b {
            send(side.outgoing(now: now), toB: false)
            b = side
        }
    }

    /// Runs until `done` or `limit` microseconds of virtual time pass; false on the limit.
    mutating func run(for limit: UInt64, until done: (UTPLink) -> Bool) throws -> Bool {
        let end = now + limit
        pump()
        while !done(self) {
            let nextFlight = flights.min()
            let deadlines = [a.deadline, b?.deadline].compactMap { $0 }
            let nextTimer = deadlines.min()
            guard let next = [nextFlight?.at, nextTimer].compactMap({ $0 }).min(), next <= end else {
                return false
            }
            now = max(now, next)
            if let flight = nextFlight, flight.at <= now {
                flights.removeAll { $0 == flight }
                let packet = try UTPPacket(decoding: flight.datagram)
                if flight.toB {
                    if b == nil {
                        b = UTPConnection(
                            accepting: packet, sequenceNumber: 40_000, now: now, configuration: configuration)
                    } else if var side = b {
                        let new = side.received(packet, now: now)
                        b = side
                        handle(new, atB: true)
                    }
                } else {
                    handle(a.received(packet, now: now), atB: false)
                }
            }
            if let at = a.deadline, at <= now { handle(a.timerFired(now: now), atB: false) }
            if var side = b, let at = side.deadline, at <= now {
                let new = side.timerFired(now: now)
                b = side
                handle(new, atB: true)
            }
            pump()
        }
        return true
    }
}

@Suite("uTP connections (BEP 29) over a simulated link")
struct UTPConnectionTests {
    static func payload(_ count: Int, seed: UInt64) -> [UInt8] {
        var random = SplitMix64(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    static func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int {
        (0..<min(a.count, b.count)).first { a[$0] != b[$0] } ?? min(a.count, b.count)
    }

    @Test("the handshake: IDs and sequence numbers as BEP 29 gives them")
    func handshake() throws {
        var link = UTPLink(seed: 1)
        #expect(try link.run(for: 1_000_000) { $0.a.isConnected && $0.b != nil })
        let b = try #require(link.b)
        #expect(link.a.sendID == link.a.receiveID &+ 1)
        #expect(b.receiveID == link.a.sendID)
        #expect(b.sendID == link.a.receiveID)
        #expect(link.events[false] == [.connected])
    }

    @Test(
        "a stream each way arrives whole and in order, then both close cleanly",
        arguments: [
            (0.0, UInt64(0)), (0.05, 0), (0.05, 30_000), (0.0, 40_000),
        ])
    func transfer(loss: Double, jitter: UInt64) throws {
        var link = UTPLink(seed: 7)
        link.loss = loss
        link.jitter = jitter
        let up = Self.payload(600_000, seed: 1)
        let down = Self.payload(150_000, seed: 2)
        #expect(try link.run(for: 5_000_000) { $0.a.isConnected && $0.b != nil })
        link.a.write(ByteBuffer(bytes: up))
        link.b?.write(ByteBuffer(bytes: down))
        link.a.close()
        link.b?.close()
        let finished = try link.run(for: 300_000_000) { $0.a.isClosed && $0.b?.isClosed == true }
        #expect(finished, "at \(link.now): \(link.a) | \(link.b.map(String.init(describing:)) ?? "no B")")
        let gotUp = link.received[true] ?? []
        let gotDown = link.received[false] ?? []
        #expect(
            gotUp == up,
            "B got \(gotUp.count) of \(up.count) bytes, first difference at \(Self.firstDifference(gotUp, up))"
        )
        #expect(
            gotDown == down,
            "A got \(gotDown.count) of \(down.count) bytes, first difference at \(Self.firstDifference(gotDown, down))"
        )
        #expect(link.events[true]?.contains(.endOfStream) == true, "B: \(link.events[true] ?? [])")
        #expect(link.events[true]?.last == .closed(nil), "B: \(link.events[true] ?? [])")
        #expect(link.events[false]?.last == .closed(nil))
        if loss > 0 { #expect(link.a.retransmissions > 0) }
    }

    @Test("a SYN nobody answers gives up after three tries a second apart, as libtorrent does")
    func synTimeout() throws {
        var link = UTPLink(seed: 3)
        link.loss = 1
        _ = try link.run(for: 20_000_000) { $0.a.isClosed }
        #expect(link.a.isClosed)
        #expect(link.packetsSent == 3)
        #expect(link.now == 1_000_000 + 3_000_000)
        #expect(link.events[false] == [.closed(.timedOut("waiting for the peer to answer our SYN"))])
    }

    @Test("a RESET ends the connection; later packets are ignored")
    func reset() throws {
        var link = UTPLink(seed: 4)
        #expect(try link.run(for: 1_000_000) { $0.a.isConnected && $0.b != nil })
        var b = try #require(link.b)
        let aborted = b.abort()
        let reset = try #require(aborted)
        #expect(reset.kind == .reset && reset.connectionID == link.a.receiveID)
        #expect(link.a.received(reset, now: link.now) == [.closed(.reset)])
        #expect(link.a.received(reset, now: link.now).isEmpty)
        #expect(link.a.outgoing(now: link.now).isEmpty)
    }

    @Test("a hole is acked selectively and resent after three packets past it, before any timeout")
    func selectiveAckAndFastResend() throws {
        // B gets every packet of a burst but the first; its acks name the others selectively.
        var a = UTPConnection(connecting: 9, sequenceNumber: 100, now: 0)
        let syn = try #require(a.outgoing(now: 0).first)
        var bb = try #require(UTPConnection(accepting: syn, sequenceNumber: 500, now: 0))
        _ = a.received(try #require(bb.outgoing(now: 0).first), now: 0)
        a.write(ByteBuffer(bytes: Self.payload(1_400 * 2, seed: 1)))
        // Two packets (the starting window), acked, so the window opens to four and more.
        for round in 0..<3 {
            let packets = a.outgoing(now: UInt64(round) * 1_000)
            for packet in packets { _ = bb.received(packet, now: UInt64(round) * 1_000) }
            for packet in bb.outgoing(now: UInt64(round) * 1_000) {
                _ = a.received(packet, now: UInt64(round) * 1_000)
            }
            a.write(ByteBuffer(bytes: Self.payload(1_400 * 4, seed: UInt64(round))))
        }
        let burst = a.outgoing(now: 10_000)
        #expect(burst.count >= 4)
        var acks: [UTPPacket] = []
        for (index, packet) in burst.enumerated() where index != 0 {
            _ = bb.received(packet, now: 10_000)
            acks += bb.outgoing(now: 10_000)
        }
        let last = try #require(acks.last)
        #expect(last.ackNumber == burst[0].sequenceNumber &- 1)
        #expect(last.selectiveAck?.first == UInt8((1 << (burst.count - 1)) - 1))
        var resent: [UTPPacket] = []
        for packet in acks {
            _ = a.received(packet, now: 11_000)
            resent += a.outgoing(now: 11_000)
        }
        #expect(resent.contains { $0.sequenceNumber == burst[0].sequenceNumber })
        #expect(a.retransmissions == 1)
    }

    @Test("LEDBAT: the window grows while the delay is under target and shrinks when it is over")
    func ledbat() throws {
        var a = UTPConnection(connecting: 9, sequenceNumber: 100, now: 0)
        let syn = try #require(a.outgoing(now: 0).first)
        var b = try #require(UTPConnection(accepting: syn, sequenceNumber: 500, now: 0))
        _ = a.received(try #require(b.outgoing(now: 0).first), now: 0)
        var now: UInt64 = 0
        /// Sends a window's worth and acks it with `delay` as the measured one-way delay.
        func round(delay: UInt32) {
            now += 20_000
            a.write(ByteBuffer(repeating: 1, count: a.congestionWindow + 1_400 * 4))
            for packet in a.outgoing(now: now) {
                _ = b.received(packet, now: now)
                for var reply in b.outgoing(now: now) {
                    reply.timestampDifference = delay
                    _ = a.received(reply, now: now + 10_000)
                }
            }
        }
        for _ in 0..<3 { round(delay: 50_000) }  // base delay 50 ms
        let grown = a.congestionWindow
        for _ in 0..<20 { round(delay: 60_000) }  // 10 ms over base: under the 100 ms target
        #expect(a.congestionWindow > grown)
        let high = a.congestionWindow
        for _ in 0..<20 { round(delay: 350_000) }  // 300 ms over base: over target
        #expect(a.congestionWindow < high)
    }
}

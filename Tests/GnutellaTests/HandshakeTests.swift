import Gnutella
import PeerNet
import Testing

@Suite("The 0.6 handshake state machine")
struct HandshakeTests {
    static func configuration(ultrapeer: Bool, deflate: Bool = true) -> ServentConfiguration {
        var configuration = ServentConfiguration()
        configuration.ultrapeer = ultrapeer
        configuration.deflate = deflate
        configuration.listen = Endpoint("127.0.0.1:\(ultrapeer ? 6346 : 6347)")
        return configuration
    }

    /// Runs both sides to the end, feeding each the other's bytes `cut` bytes at a time.
    static func run(_ initiator: inout Handshake, _ responder: inout Handshake, cut: Int = 1 << 20) throws
        -> (Handshake.Step, Handshake.Step)
    {
        func feed(_ side: inout Handshake, _ bytes: [UInt8]) throws -> Handshake.Step {
            var step = Handshake.Step.waiting
            var index = 0
            repeat {
                step = try side.received(Array(bytes[index..<min(index + cut, bytes.count)]))
                index += cut
            } while index < bytes.count && step == .waiting
            return step
        }
        let answer = try feed(&responder, initiator.request())
        guard case .send(let response) = answer else { return (.waiting, answer) }
        let confirmed = try feed(&initiator, response)
        guard case .open(let reply, _, _) = confirmed else { return (confirmed, answer) }
        return (confirmed, try feed(&responder, reply))
    }

    @Test("a leaf joins an ultrapeer; both directions deflated", arguments: [1, 7, 1 << 20])
    func leafToUltrapeer(cut: Int) throws {
        var leaf = Handshake(role: .initiator, configuration: Self.configuration(ultrapeer: false))
        var ultrapeer = Handshake(role: .responder, configuration: Self.configuration(ultrapeer: true))
        let (leafSide, ultrapeerSide) = try Self.run(&leaf, &ultrapeer, cut: cut)
        guard case .open(_, let leafResult, _) = leafSide, case .open(_, let upResult, _) = ultrapeerSide
        else {
            Issue.record("not open: \(leafSide) / \(ultrapeerSide)")
            return
        }
        #expect(leafResult.kind == .leafToUltrapeer && leafResult.peerIsUltrapeer)
        #expect(upResult.kind == .ultrapeerToLeaf && !upResult.peerIsUltrapeer)
        #expect(leafResult.deflateOutgoing && leafResult.deflateIncoming)
        #expect(upResult.deflateOutgoing && upResult.deflateIncoming)
        #expect(upResult.peerListen == Endpoint("127.0.0.1:6347"))
        #expect(leafResult.userAgent == "PeerStack/0.1")
    }

    @Test("deflate only where the receiver accepts it")
    func oneSidedDeflate() throws {
        var a = Handshake(
            role: .initiator, configuration: Self.configuration(ultrapeer: true, deflate: false))
        var b = Handshake(role: .responder, configuration: Self.configuration(ultrapeer: true))
        let (aSide, bSide) = try Self.run(&a, &b)
        guard case .open(_, let aResult, _) = aSide, case .open(_, let bResult, _) = bSide else {
            Issue.record("not open")
            return
        }
        #expect(aResult.kind == .ultrapeerToUltrapeer && bResult.kind == .ultrapeerToUltrapeer)
        #expect(!aResult.deflateOutgoing && !aResult.deflateIncoming)
        #expect(!bResult.deflateOutgoing && !bResult.deflateIncoming)
    }

    @Test("a full ultrapeer answers 503 and names other ultrapeers")
    func full() throws {
        var leaf = Handshake(role: .initiator, configuration: Self.configuration(ultrapeer: false))
        var ultrapeer = Handshake(
            role: .responder, configuration: Self.configuration(ultrapeer: true),
            slots: .init(ultrapeers: 3, leaves: 0),
            alternatives: [Endpoint("10.0.0.2:6346")!, Endpoint("10.0.0.3:6346")!])
        guard case .refused(let reply, 503, _, _) = try ultrapeer.received(leaf.request()) else {
            Issue.record("not refused")
            return
        }
        guard case .refused(_, 503, let reason, let tries) = try leaf.received(reply) else {
            Issue.record("leaf did not see the refusal")
            return
        }
        #expect(reason == "No leaf slots")
        #expect(tries == [Endpoint("10.0.0.2:6346")!, Endpoint("10.0.0.3:6346")!])
    }

    @Test("a leaf refuses incoming connections; two leaves never connect")
    func leaves() throws {
        var initiator = Handshake(role: .initiator, configuration: Self.configuration(ultrapeer: false))
        var leaf = Handshake(role: .responder, configuration: Self.configuration(ultrapeer: false))
        guard case .refused(_, 503, "I am a leaf", _) = try leaf.received(initiator.request()) else {
            Issue.record("leaf accepted")
            return
        }
        let answer = HandshakeMessage(code: 200, reason: "OK", headers: [("X-Ultrapeer", "False")])
        guard case .refused(let reply, 503, _, _) = try initiator.received(answer.encoded()) else {
            Issue.record("two leaves connected")
            return
        }
        #expect(try HandshakeMessage.parse(reply)?.0.code == 503)
    }

    @Test("an answer in another servent's words (LimeWire-style headers, bytes after it kept)")
    func foreignAnswer() throws {
        var leaf = Handshake(role: .initiator, configuration: Self.configuration(ultrapeer: false))
        _ = leaf.request()
        let text =
            "GNUTELLA/0.6 200 OK\r\nUser-Agent: LimeWire/4.18.8\r\nX-Ultrapeer: True\r\nX-Degree: 32\r\n"
            + "X-Query-Routing: 0.1\r\nX-Ultrapeer-Query-Routing: 0.1\r\nAccept-Encoding: deflate\r\n"
            + "Content-Encoding: deflate\r\nX-Try-Ultrapeers: 1.2.3.4:6346,bogus,5.6.7.8:6348\r\n\r\n"
        guard case .open(let reply, let result, let leftover) = try leaf.received(Array(text.utf8) + [0x78])
        else {
            Issue.record("not open")
            return
        }
        #expect(result.userAgent == "LimeWire/4.18.8")
        #expect(result.tryUltrapeers == [Endpoint("1.2.3.4:6346")!, Endpoint("5.6.7.8:6348")!])
        #expect(result.deflateIncoming && result.deflateOutgoing)
        #expect(leftover == [0x78])
        #expect(try HandshakeMessage.parse(reply)?.0["Content-Encoding"] == "deflate")
    }

    @Test("a handshake found by the fuzzer re-encodes to itself")
    func fuzzerFoundHandshake() throws {
        let bytes: [UInt8] = [
            0x47, 0x4E, 0x55, 0x54, 0x45, 0x4C, 0x4C, 0x41, 0x54, 0x2F, 0x55, 0x2D, 0x2E, 0x0A, 0x36, 0x38,
            0x58, 0x20, 0x00, 0x72, 0x61, 0x72, 0x3A, 0x09, 0x09, 0x09, 0x09, 0x09, 0x09, 0x09, 0x09, 0x09,
            0xCC, 0x96, 0x3D, 0x3A, 0x0D, 0x0A, 0x20, 0x09, 0x09, 0x09, 0x09, 0x02, 0x0A, 0x09, 0x09, 0x09,
            0x09, 0x72, 0x65, 0x64, 0x14, 0x0A, 0x0D, 0x0A,
        ]
        let (message, _) = try #require(try HandshakeMessage.parse(bytes))
        let again = try #require(try HandshakeMessage.parse(message.encoded()))
        #expect(again.0 == message, "\(Array(message.encoded())) vs \(again.0.headers) vs \(message.headers)")
    }
}

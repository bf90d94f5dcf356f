import Libp2p
import Multiformats
import PeerCrypto
import Testing

@Suite("identify")
struct IdentifyTests {
    @Test(
        "a message round-trips; unknown fields and unknown transports are skipped; the key is checked against the peer"
    )
    func roundTrip() throws {
        let key = try PrivateKey.generate()
        let message = Identify(
            agentVersion: "peerstack/0.1.0", publicKey: key.publicKey.encoded.bytes,
            listenAddresses: [
                try Multiaddr("/ip4/127.0.0.1/tcp/4001"), try Multiaddr("/ip6/::1/udp/4001/quic-v1"),
            ],
            observedAddress: try Multiaddr("/ip4/127.0.0.1/tcp/50000"),
            protocols: [Identify.protocolID, Ping.protocolID])
        let decoded = try Identify(bytes: message.bytes)
        #expect(decoded == message)
        #expect(decoded.key(matching: key.publicKey.peerID) == key.publicKey)
        #expect(decoded.key(matching: try PrivateKey.generate().publicKey.peerID) == nil)
        // An unknown field (7) and a listen address of an unknown protocol (code 0x1ff) are skipped.
        let extra = Protobuf.field(7, [1, 2, 3]) + Protobuf.field(2, [0xff, 0x03, 0x00]) + message.bytes
        #expect(try Identify(bytes: extra).listenAddresses == message.listenAddresses)
    }

    @Test("hostile identify messages get typed errors; any bytes never trap")
    func hostile() throws {
        #expect(throws: IdentifyError.self) { try Identify(bytes: [0x2a, 0x05, 0x61]) }  // cut short
        // An agent version that is not UTF-8.
        #expect(throws: IdentifyError.self) { try Identify(bytes: Protobuf.field(6, [0xff, 0xfe])) }
        #expect(throws: IdentifyError.tooLarge(70_000)) {
            try Identify(bytes: [UInt8](repeating: 0, count: 70_000))
        }
        let many = (0..<1_000).flatMap { Protobuf.field(3, Array("/p/\($0)".utf8)) }
        #expect(try Identify(bytes: many).protocols.count == Identify.maxEntries)
        var random = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            _ = try? Identify(
                bytes: (0..<Int.random(in: 0...64, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                })
        }
    }
}

import Blockchain
import Testing

@Suite struct P2PCodecTests {
    let magic = ChainParameters.regtest.magic

    @Test func framingNeedsWholeMessages() throws {
        let bytes = P2PCodec.encode(.ping(7), magic: magic)
        #expect(try P2PCodec.decode(ArraySlice(bytes.prefix(23)), magic: magic) == nil)
        #expect(try P2PCodec.decode(ArraySlice(bytes.dropLast()), magic: magic) == nil)
        let two = bytes + P2PCodec.encode(.verack, magic: magic)
        let (first, used) = try #require(try P2PCodec.decode(ArraySlice(two), magic: magic))
        #expect(first == .ping(7) && used == bytes.count)
        #expect(try P2PCodec.decode(two[used...], magic: magic)?.0 == .verack)
    }

    @Test("hostile frames are refused with the reason")
    func hostile() {
        var bytes = P2PCodec.encode(.ping(7), magic: magic)
        bytes[bytes.count - 1] ^= 1
        #expect(throws: P2PCodec.FrameError.badChecksum("ping")) {
            try P2PCodec.decode(ArraySlice(bytes), magic: magic)
        }
        #expect(throws: P2PCodec.FrameError.self) {
            try P2PCodec.decode(
                ArraySlice(P2PCodec.encode(.ping(7), magic: ChainParameters.mainnet.magic)), magic: magic)
        }
        var huge = P2PCodec.encode(.verack, magic: magic)
        huge[16] = 0xff
        huge[17] = 0xff
        huge[18] = 0xff
        #expect(throws: P2PCodec.FrameError.self) { try P2PCodec.decode(ArraySlice(huge), magic: magic) }
        // An inv claiming 50,001 entries.
        let inv = P2PCodec.encode(
            .unknown(command: "inv", payload: [0xfe, 0x51, 0xc3, 0x00, 0x00]), magic: magic)
        #expect(throws: P2PCodec.FrameError.self) { try P2PCodec.decode(ArraySlice(inv), magic: magic) }
        // A ping with a byte too many.
        let long = P2PCodec.encode(
            .unknown(command: "ping", payload: [UInt8](repeating: 1, count: 9)), magic: magic)
        #expect(throws: P2PCodec.FrameError.self) { try P2PCodec.decode(ArraySlice(long), magic: magic) }
    }
}

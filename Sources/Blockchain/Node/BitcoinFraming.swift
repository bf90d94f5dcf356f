import NIOCore
import PeerNet

/// Bitcoin's message framing (magic, command, length, checksum) as a PeerNet ``FrameFormat``:
/// the header is checked before the payload is buffered, so a peer cannot make a connection
/// hold more than one maximal message.
struct BitcoinFrameFormat: FrameFormat {
    let magic: [UInt8]

    var headerLength: Int { P2PCodec.headerSize }

    func bodyLength(header: ByteBuffer) throws -> Int {
        try P2PCodec.payloadLength(header: header.readableBytesView, magic: magic)
    }
}

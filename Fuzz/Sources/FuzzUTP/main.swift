import FuzzSupport
import NIOCore
import PeerNet

/// uTP (BEP 29) packets from hostile bytes. The input is cut into datagrams (a length byte,
/// then that many bytes); each is decoded (a packet or a typed error, never a trap; an accepted
/// packet encodes to bytes that decode to the same packet) and fed to a connection that accepted
/// a SYN and has data to send, with the timer fired between datagrams. Whatever arrives, the
/// connection keeps its books straight (never negative bytes outstanding) and never delivers
/// more than was sent.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzUTP(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    let syn = UTPPacket(kind: .syn, connectionID: 100, timestamp: 5, sequenceNumber: 1, ackNumber: 0)
    guard var connection = UTPConnection(accepting: syn, sequenceNumber: 1_000, now: 1_000) else { return 0 }
    connection.write(ByteBuffer(repeating: 7, count: 50_000))
    var now: UInt64 = 1_000
    _ = connection.outgoing(now: now)
    var rest = bytes[...]
    var delivered = 0
    while let length = rest.first {
        rest = rest.dropFirst()
        let datagram = ByteBuffer(bytes: rest.prefix(Int(length)))
        rest = rest.dropFirst(Int(length))
        now += 50_000
        guard let packet = try? UTPPacket(decoding: datagram) else { continue }
        let again = try? UTPPacket(decoding: packet.encoded())
        precondition(
            again?.kind == packet.kind && again?.payload == packet.payload, "re-encoding changed the packet")
        for event in connection.received(packet, now: now) {
            if case .deliver(let buffer) = event { delivered += buffer.readableBytes }
        }
        _ = connection.outgoing(now: now)
        _ = connection.timerFired(now: now)
        _ = connection.outgoing(now: now)
        precondition(connection.unacknowledgedBytes >= 0 && connection.unacknowledgedBytes <= 50_000)
    }
    precondition(delivered <= bytes.count)
    return 0
}

runFuzzer(fuzzUTP)

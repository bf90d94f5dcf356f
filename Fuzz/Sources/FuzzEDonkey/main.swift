import EDonkey
import FuzzSupport

/// eDonkey packets from hostile bytes, cut into reads of the first byte's size and framed (0xE3,
/// 0xC5 and zlib-packed 0xD4, bounded); each packet parsed as a server and as a client message,
/// and an accepted message encodes to a packet that parses to the same message. The rest is also read as a
/// server UDP datagram (re-encoded the same way), a tag list and an ed2k link. Any input ends in a value or a typed error, never a trap.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzEDonkey(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    guard let first = bytes.first else { return 0 }
    let stream = Array(bytes.dropFirst())
    let step = max(1, Int(first))
    var framer = EDonkeyFramer()
    var index = 0
    while index < stream.count {
        framer.append(Array(stream[index..<min(index + step, stream.count)]))
        index += step
        while true {
            guard let packet = try? framer.next() else { break }
            if let message = try? ClientMessage(packet) {
                precondition(
                    (try? ClientMessage(message.packet())) == message, "re-encoding changed a client message")
            }
            if let message = try? ServerMessage(packet) {
                precondition(
                    (try? ServerMessage(message.packet())) == message, "re-encoding changed a message")
            }
        }
    }
    if let datagram = try? ServerUDPMessage(datagram: stream) {
        precondition(
            (try? ServerUDPMessage(datagram: datagram.encoded())) == datagram,
            "re-encoding changed a datagram")
    }
    var reader = EDonkeyReader(stream)
    _ = try? EDonkey.Tag.parseList(&reader)
    _ = try? ED2KLink(parsing: String(decoding: stream, as: UTF8.self))
    return 0
}

runFuzzer(fuzzEDonkey)

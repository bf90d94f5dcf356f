import FuzzSupport
import Gnutella

/// Gnutella 0.6 from hostile bytes. The first byte picks what the rest is: 0 a descriptor
/// stream (framed, cut into reads of the second byte's size), 1 a GGEP block, 2 a handshake
/// message, 3 route table updates fed to an ultrapeer's table receiver (a length byte, then that
/// many bytes, each). Everything ends in a value or a typed error, never a trap; every accepted
/// descriptor and GGEP block encodes to bytes that decode to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzGnutella(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = fuzzInput(data, size)
    guard let mode = bytes.first else { return 0 }
    let rest = Array(bytes.dropFirst())
    switch mode % 4 {
    case 0:
        var framer = DescriptorFramer()
        let step = max(1, Int(rest.first ?? 1))
        let stream = Array(rest.dropFirst())
        var index = 0
        while index < stream.count {
            framer.append(Array(stream[index..<min(index + step, stream.count)]))
            index += step
            while true {
                guard let descriptor = try? framer.next() else { break }
                let again = try? Descriptor(parsing: descriptor.encoded())
                precondition(again?.payload == descriptor.payload, "re-encoding changed \(descriptor)")
            }
        }
        precondition(framer.buffered <= stream.count)
    case 1:
        if let block = try? GGEPBlock(parsing: rest) {
            precondition(
                (try? GGEPBlock(parsing: block.encoded())) == block, "re-encoding changed a GGEP block")
        }
    case 2:
        if let (message, used) = try? HandshakeMessage.parse(rest) {
            precondition(used <= rest.count)
            precondition((try? HandshakeMessage.parse(message.encoded()))??.0 == message)
        }
    default:
        var receiver = QueryRouteTableReceiver()
        var slice = rest[...]
        while let length = slice.first {
            slice = slice.dropFirst()
            let chunk = Array(slice.prefix(Int(length)))
            slice = slice.dropFirst(Int(length))
            guard let update = try? RouteTableUpdate(parsing: chunk) else { continue }
            try? receiver.apply(update)
            if let table = receiver.table { precondition(table.filledSlots <= table.length) }
        }
    }
    return 0
}

runFuzzer(fuzzGnutella)

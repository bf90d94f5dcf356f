import Multiformats

/// The few protobuf rules libp2p's messages need (handshake payloads, identify): length-delimited
/// fields read in order, unknown varint and bytes fields skipped as proto3 readers do, other wire
/// types refused, every length checked against what is left before anything is copied.
public enum Protobuf {
    public struct Failure: Error, Sendable, Hashable {
        public let what: String
        public let offset: Int
    }

    /// A length-delimited field: key, length, bytes.
    public static func field(_ number: UInt64, _ bytes: [UInt8]) -> [UInt8] {
        Varint.encode(number << 3 | 2) + Varint.encode(UInt64(bytes.count)) + bytes
    }

    /// The length-delimited fields of a message, in order (varint fields skipped).
    public static func fields(_ bytes: [UInt8]) throws(Failure) -> [(UInt64, [UInt8])] {
        var out: [(UInt64, [UInt8])] = []
        var offset = 0
        while offset < bytes.count {
            let start = offset
            let key: UInt64
            do {
                key = try Varint.decode(bytes, at: &offset)
            } catch {
                throw Failure(what: "a field key", offset: start)
            }
            switch key & 7 {
            case 0:
                do {
                    _ = try Varint.decode(bytes, at: &offset)
                } catch {
                    throw Failure(what: "a varint field", offset: start)
                }
            case 2:
                let length: UInt64
                do {
                    length = try Varint.decode(bytes, at: &offset)
                } catch {
                    throw Failure(what: "a field length", offset: start)
                }
                guard length <= UInt64(bytes.count - offset) else {
                    throw Failure(what: "field \(key >> 3) runs past the end", offset: start)
                }
                out.append((key >> 3, Array(bytes[offset..<offset + Int(length)])))
                offset += Int(length)
            default:
                throw Failure(what: "wire type \(key & 7) of field \(key >> 3)", offset: start)
            }
        }
        return out
    }
}

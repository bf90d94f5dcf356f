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
        var reader = ProtobufReader(bytes)
        var out: [(UInt64, [UInt8])] = []
        while true {
            let next: ProtobufReader.Field?
            do {
                next = try reader.next()
            } catch {
                throw Failure(what: error.what, offset: error.offset)
            }
            guard let field = next else { return out }
            switch field.value {
            case .varint: continue
            case .bytes(let range): out.append((UInt64(field.number), reader.slice(range)))
            case .fixed32, .fixed64:
                throw Failure(what: "a fixed-width field \(field.number)", offset: field.offset)
            }
        }
    }
}

import PeerNet

/// zlib-format deflate as Gnutella uses it (`Content-Encoding: deflate` connections, compressed
/// QRP patches, GGEP's compressed extensions): PeerNet's ``Zlib``, with Gnutella's errors.
enum Deflate {
    static func compress(_ bytes: [UInt8]) -> [UInt8] { Zlib.compress(bytes) }

    static func decompress(_ bytes: [UInt8], limit: Int) throws(GnutellaError) -> [UInt8] {
        do {
            return try Zlib.decompress(bytes, limit: limit)
        } catch {
            throw GnutellaError(error)
        }
    }
}

extension GnutellaError {
    init(_ error: ZlibError) {
        switch error {
        case .tooLarge(let size, let limit):
            self = .tooLarge(field: "inflated data", size: size, limit: limit)
        default: self = .compression(error.description)
        }
    }
}

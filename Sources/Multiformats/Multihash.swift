import Crypto

/// A multihash: the hash function's code, then the digest (both length-prefixed as varints).
/// Digests of unknown functions are kept as they are, so they can be passed on and compared.
public struct Multihash: Hashable, Sendable, CustomStringConvertible {
    /// Hash functions from the multicodec table that this library computes.
    public enum Function: UInt64, Sendable, CaseIterable {
        case identity = 0x00
        case sha1 = 0x11
        case sha256 = 0x12
        case sha512 = 0x13

        public var name: String {
            switch self {
            case .identity: return "identity"
            case .sha1: return "sha1"
            case .sha256: return "sha2-256"
            case .sha512: return "sha2-512"
            }
        }
    }

    /// Longest digest accepted (identity hashes of small keys and inline blocks fit easily).
    public static let maxDigestLength = 256

    public let code: UInt64
    public let digest: [UInt8]

    public init(code: UInt64, digest: [UInt8]) {
        self.code = code
        self.digest = digest
    }

    /// Hashes `data` with `function`.
    public static func hash(_ data: some Sequence<UInt8>, with function: Function = .sha256) -> Multihash {
        let bytes = Array(data)
        switch function {
        case .identity: return Multihash(code: function.rawValue, digest: bytes)
        case .sha1: return Multihash(code: function.rawValue, digest: Array(Insecure.SHA1.hash(data: bytes)))
        case .sha256: return Multihash(code: function.rawValue, digest: Array(SHA256.hash(data: bytes)))
        case .sha512: return Multihash(code: function.rawValue, digest: Array(SHA512.hash(data: bytes)))
        }
    }

    public var function: Function? { Function(rawValue: code) }

    /// Whether `data` hashes to this multihash (false for functions this library cannot compute).
    public func matches(_ data: some Sequence<UInt8>) -> Bool {
        guard let function else { return false }
        return Self.hash(data, with: function) == self
    }

    public var bytes: [UInt8] { Varint.encode(code) + Varint.encode(UInt64(digest.count)) + digest }

    /// Reads a multihash at `offset`, moving past it.
    public static func read(_ bytes: [UInt8], at offset: inout Int) throws(MultiformatError) -> Multihash {
        let code = try Varint.decode(bytes, at: &offset)
        let lengthOffset = offset
        let length = try Varint.decode(bytes, at: &offset)
        guard length <= UInt64(maxDigestLength), offset + Int(length) <= bytes.count else {
            throw .badLength("multihash digest (\(length) bytes)", offset: lengthOffset)
        }
        let digest = Array(bytes[offset..<offset + Int(length)])
        offset += Int(length)
        if let function = Function(rawValue: code) {
            let expected: Int? =
                switch function {
                case .identity: nil
                case .sha1: 20
                case .sha256: 32
                case .sha512: 64
                }
            if let expected, expected != digest.count {
                throw .badLength(
                    "\(function.name) digest (\(digest.count) bytes, want \(expected))", offset: lengthOffset)
            }
        }
        return Multihash(code: code, digest: digest)
    }

    /// A whole multihash, nothing after it.
    public init(bytes: [UInt8]) throws(MultiformatError) {
        var offset = 0
        self = try Self.read(bytes, at: &offset)
        guard offset == bytes.count else {
            throw .invalid("\(bytes.count - offset) bytes after the multihash")
        }
    }

    public var description: String {
        (function?.name ?? "0x" + String(code, radix: 16)) + ":"
            + Multibase.base16.digits(of: digest).map {
                String(UnicodeScalar($0))
            }.joined()
    }
}

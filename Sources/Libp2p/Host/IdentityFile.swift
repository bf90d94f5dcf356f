import PeerCrypto
import PeerNet
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A node's identity on disk: its private key protobuf (what go-libp2p stores), created on
/// first use with mode 0600 in a directory of mode 0700, written atomically, and refused when
/// other users may read it (as ssh refuses such a key).
public enum IdentityFile {
    /// Why the identity file could not be used.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let path: String
        public let why: String
        public var description: String { "\(path): \(why)" }
    }

    /// The key in `path`, or a new key of `type` written there when there is no file yet.
    /// `created` tells which.
    public static func loadOrCreate(
        _ path: String, type: KeyType = .ed25519
    ) throws -> (key: PrivateKey, created: Bool) {
        var status = stat()
        if stat(path, &status) == 0 {
            guard status.st_mode & 0o077 == 0 else {
                throw Failure(
                    path: path,
                    why:
                        "readable by other users (mode \(String(status.st_mode & 0o777, radix: 8))); chmod 600 it"
                )
            }
            let bytes = try SmallFile.read(FilePath(path), limit: 16 << 10)
            do {
                return (try PrivateKey(bytes: bytes), false)
            } catch {
                throw Failure(path: path, why: "not a libp2p private key: \(error)")
            }
        }
        let directory = FilePath(path).removingLastComponent()
        if !directory.isEmpty { _ = mkdir(directory.string, 0o700) }
        let key = try PrivateKey.generate(type)
        try SmallFile.writeAtomically(key.bytes, to: FilePath(path), permissions: [.ownerReadWrite])
        return (key, true)
    }
}

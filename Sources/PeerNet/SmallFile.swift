import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Whole-file reads and crash-safe writes of small state files (resume state, routing tables):
/// a read refuses a file larger than its limit, a write goes to a temporary file that is fsynced
/// and renamed over the old one, so a crash leaves either the old file or the new one.
public enum SmallFile {
    public struct TooLarge: Error, CustomStringConvertible, Sendable {
        public let path: String
        public let size: Int64
        public let limit: Int
        public var description: String { "\(path): \(size) bytes, larger than \(limit)" }
    }

    /// Reads all of `path`, refusing a file larger than `limit` bytes.
    public static func read(_ path: FilePath, limit: Int) throws -> [UInt8] {
        let descriptor = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
        defer { try? descriptor.close() }
        let size = try descriptor.seek(offset: 0, from: .end)
        guard size <= Int64(limit) else { throw TooLarge(path: path.string, size: size, limit: limit) }
        var buffer = [UInt8](repeating: 0, count: Int(size))
        var count = 0
        while count < buffer.count {
            let read = try buffer.withUnsafeMutableBytes {
                try descriptor.read(
                    fromAbsoluteOffset: Int64(count),
                    into: UnsafeMutableRawBufferPointer(rebasing: $0[count...]))
            }
            if read == 0 { break }
            count += read
        }
        return Array(buffer.prefix(count))
    }

    /// Permissions of a new file unless the caller asks for others: 0644.
    public static let defaultPermissions: FilePermissions = [.ownerReadWrite, .groupRead, .otherRead]

    /// Writes `bytes` to `path` atomically: a temporary file beside it, fsync, rename, fsync of
    /// the directory, so a crash at any point leaves the old content or the new, never a mix.
    /// The file gets `permissions` (0600 for secrets such as keys) from its first byte on.
    public static func writeAtomically(
        _ bytes: [UInt8], to path: FilePath, permissions: FilePermissions = defaultPermissions
    ) throws {
        try writeAtomically(to: path, durable: true, permissions: permissions) { descriptor in
            _ = try descriptor.writeAll(bytes)
        }
    }

    /// Streams a file of any size under a temporary name (`<path>.partial`) and renames it into
    /// place only when `body` has written all of it: the name never shows a partial file. When
    /// `durable`, the data is fsynced before the rename and the directory after it, so the new
    /// content survives a power loss once this returns. On an error the temporary file is
    /// removed, the old file is left as it was, and the error rethrown.
    public static func writeAtomically(
        to path: FilePath, durable: Bool = true, permissions: FilePermissions = defaultPermissions,
        _ body: (FileDescriptor) throws -> Void
    ) throws {
        let temporary = FilePath(path.string + ".partial")
        // A leftover temporary file keeps its old mode under O_CREAT: remove it first.
        _ = unlink(temporary.string)
        let descriptor = try FileDescriptor.open(
            temporary, .writeOnly, options: [.create, .exclusiveCreate, .closeOnExec],
            permissions: permissions)
        do {
            try body(descriptor)
            if durable, fsync(descriptor.rawValue) != 0 { throw Errno(rawValue: errno) }
            try descriptor.close()
        } catch {
            try? descriptor.close()
            _ = unlink(temporary.string)
            throw error
        }
        guard rename(temporary.string, path.string) == 0 else {
            let error = Errno(rawValue: errno)
            _ = unlink(temporary.string)
            throw error
        }
        if durable {
            let directory = path.removingLastComponent()
            if let handle = try? FileDescriptor.open(
                directory.isEmpty ? "." : directory, .readOnly, options: [.closeOnExec])
            {
                _ = fsync(handle.rawValue)
                try? handle.close()
            }
        }
    }

    /// A path that exists already (``writeNew(to:permissions:_:)`` never replaces one).
    public struct Exists: Error, CustomStringConvertible, Sendable {
        public let path: String
        public var description: String { "\(path) exists already" }
    }

    /// Streams a new file to `path`, which must not exist (not even as a dangling symlink): the
    /// bytes go to a temporary file beside it with an unpredictable name, created with
    /// `O_EXCL|O_NOFOLLOW` (so nothing already there, and no symlink planted under a guessable
    /// name, is written through), and are linked into place only when `body` has written all of
    /// it, by `link(2)`, which fails rather than replace. Not fsynced: for exports, which can be
    /// made again. On any error nothing is left behind.
    public static func writeNew(
        to path: FilePath, permissions: FilePermissions = defaultPermissions,
        _ body: (FileDescriptor) throws -> Void
    ) throws {
        var probe = stat()
        guard lstat(path.string, &probe) != 0 else { throw Exists(path: path.string) }
        let directory = path.removingLastComponent()
        let name = path.lastComponent?.string ?? "file"
        var random = SystemRandomNumberGenerator()
        let suffix = String(random.next() as UInt64, radix: 36)
        let temporary = (directory.isEmpty ? FilePath(".") : directory).appending(
            ".\(name).\(suffix).partial")
        let descriptor = try FileDescriptor.open(
            temporary, .writeOnly, options: [.create, .exclusiveCreate, .noFollow, .closeOnExec],
            permissions: permissions)
        defer { _ = unlink(temporary.string) }
        do {
            try body(descriptor)
            try descriptor.close()
        } catch {
            try? descriptor.close()
            throw error
        }
        guard link(temporary.string, path.string) == 0 else {
            if errno == EEXIST { throw Exists(path: path.string) }
            throw Errno(rawValue: errno)
        }
    }
}

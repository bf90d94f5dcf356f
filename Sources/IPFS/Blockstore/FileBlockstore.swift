import Multiformats
import PeerNet
import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// A repository's blocks on disk, one file per block, addressed by multihash as Kubo's flatfs
/// does: `blocks/<shard>/<KEY>.data`, KEY the multihash in unpadded upper-case base32, shard the
/// two characters before KEY's last. A block is written to a temporary file, fsynced and renamed
/// into place, so a crash leaves the block whole or absent; `sync()` then fsyncs the shard
/// directories written since the last call. The codec is not stored (it travels in the CIDs
/// that link to a block).
public final class FileBlockstore: BlockSink, BlockSource {
    public let root: FilePath
    public let blocksDirectory: FilePath
    /// Whether each block is fsynced before it is renamed into place.
    public let durable: Bool
    private let touched = Mutex<Set<String>>([])
    private let counter = Atomic<UInt64>(0)

    /// Opens (creating when missing) the repository at `root`.
    public init(root: FilePath, durable: Bool = true) throws {
        self.root = root
        self.blocksDirectory = root.appending("blocks")
        self.durable = durable
        try Self.makeDirectory(root)
        try Self.makeDirectory(blocksDirectory)
    }

    static func makeDirectory(_ path: FilePath) throws {
        if mkdir(path.string, 0o755) != 0 && errno != EEXIST { throw Errno(rawValue: errno) }
    }

    public static func key(_ multihash: Multihash) -> String {
        String(decoding: Multibase.base32Upper.digits(of: multihash.bytes), as: UTF8.self)
    }

    static func shard(_ key: String) -> String {
        let characters = Array(key.utf8)
        guard characters.count >= 3 else { return "_" }
        return String(decoding: characters[characters.count - 3..<characters.count - 1], as: UTF8.self)
    }

    public func path(_ multihash: Multihash) -> FilePath {
        let key = Self.key(multihash)
        return blocksDirectory.appending(Self.shard(key)).appending(key + ".data")
    }

    public func has(_ cid: CID) -> Bool {
        var info = stat()
        return stat(path(cid.multihash).string, &info) == 0
    }

    public func block(_ cid: CID) throws -> [UInt8] {
        do {
            return try SmallFile.read(path(cid.multihash), limit: DagPBNode.maxBlockSize)
        } catch let error as Errno where error == .noSuchFileOrDirectory {
            throw IPFSError.missingBlock(cid)
        } catch is SmallFile.TooLarge {
            throw IPFSError.blockTooLarge(cid, size: DagPBNode.maxBlockSize + 1)
        }
    }

    public func put(_ cid: CID, _ bytes: [UInt8]) throws {
        guard cid.multihash.code != Multihash.Function.identity.rawValue else { return }
        let key = Self.key(cid.multihash)
        let shard = Self.shard(key)
        let directory = blocksDirectory.appending(shard)
        let final = directory.appending(key + ".data")
        var info = stat()
        if stat(final.string, &info) == 0 && Int(info.st_size) == bytes.count { return }
        let fresh = touched.withLock { $0.insert(shard).inserted }
        if fresh { try Self.makeDirectory(directory) }
        let serial = counter.wrappingAdd(1, ordering: .relaxed).newValue
        let temporary = directory.appending(".\(key).\(getpid()).\(serial).tmp")
        let descriptor = try FileDescriptor.open(
            temporary, .writeOnly, options: [.create, .truncate, .closeOnExec],
            permissions: [.ownerReadWrite, .groupRead, .otherRead])
        do {
            _ = try descriptor.writeAll(bytes)
            if durable, fsync(descriptor.rawValue) != 0 { throw Errno(rawValue: errno) }
            try descriptor.close()
        } catch {
            try? descriptor.close()
            _ = unlink(temporary.string)
            throw error
        }
        guard rename(temporary.string, final.string) == 0 else {
            let error = Errno(rawValue: errno)
            _ = unlink(temporary.string)
            throw error
        }
    }

    /// Fsyncs the shard directories written since the last call, making the renames durable.
    public func sync() {
        let shards = touched.withLock { shards in
            defer { shards.removeAll() }
            return shards
        }
        for shard in shards.sorted() + [""] {
            let directory = shard.isEmpty ? blocksDirectory : blocksDirectory.appending(shard)
            if let handle = try? FileDescriptor.open(directory, .readOnly) {
                _ = fsync(handle.rawValue)
                try? handle.close()
            }
        }
    }

    /// Every stored block's multihash, with the file it is in; files whose names are not keys
    /// (temporary files of an interrupted write) are reported as `nil` multihashes.
    public func allBlocks() throws -> [(multihash: Multihash?, path: FilePath)] {
        var result: [(Multihash?, FilePath)] = []
        for shard in try Self.list(blocksDirectory) {
            let directory = blocksDirectory.appending(shard)
            var info = stat()
            guard stat(directory.string, &info) == 0, info.st_mode & S_IFMT == S_IFDIR else { continue }
            for name in try Self.list(directory) {
                let file = directory.appending(name)
                guard name.hasSuffix(".data"), !name.hasPrefix(".") else {
                    result.append((nil, file))
                    continue
                }
                let key = String(name.dropLast(5))
                let multihash = try? Multihash(bytes: Multibase.base32Upper.decode(digits: Array(key.utf8)))
                result.append((multihash, file))
            }
        }
        return result
    }

    static func list(_ directory: FilePath) throws -> [String] {
        guard let handle = opendir(directory.string) else { throw Errno(rawValue: errno) }
        defer { closedir(handle) }
        var names: [String] = []
        while let entry = readdir(handle) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The result of ``verify(progress:)``.
    public struct VerifyReport: Sendable {
        public var checked = 0
        public var corrupt: [FilePath] = []
        /// Leftovers that are not blocks (temporary files of interrupted writes).
        public var strays: [FilePath] = []
    }

    /// Re-hashes every block and reports those whose bytes no longer match their key.
    public func verify(progress: ((Int, Int) -> Void)? = nil) throws -> VerifyReport {
        var report = VerifyReport()
        let blocks = try allBlocks()
        for (index, entry) in blocks.enumerated() {
            progress?(index, blocks.count)
            guard let multihash = entry.multihash else {
                report.strays.append(entry.path)
                continue
            }
            report.checked += 1
            guard let function = multihash.function,
                let bytes = try? SmallFile.read(entry.path, limit: DagPBNode.maxBlockSize),
                Multihash.hash(bytes, with: function) == multihash
            else {
                report.corrupt.append(entry.path)
                continue
            }
        }
        progress?(blocks.count, blocks.count)
        return report
    }

    /// Removes a block (missing is fine).
    public func remove(_ multihash: Multihash) {
        _ = unlink(path(multihash).string)
    }

    // MARK: - Roots

    /// The roots that `add` and `import` recorded, which garbage collection keeps.
    public var rootsFile: FilePath { root.appending("roots") }

    public func roots() throws -> [CID] {
        let bytes: [UInt8]
        do {
            bytes = try SmallFile.read(rootsFile, limit: 64 << 20)
        } catch let error as Errno where error == .noSuchFileOrDirectory {
            return []
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").compactMap {
            try? CID(String($0))
        }
    }

    /// Records `cids` as roots (kept by garbage collection).
    public func addRoots(_ cids: [CID]) throws {
        var current = try roots()
        for cid in cids where !current.contains(cid) { current.append(cid) }
        try SmallFile.writeAtomically(Array(current.map { "\($0)\n" }.joined().utf8), to: rootsFile)
    }

    /// Replaces the recorded roots.
    public func setRoots(_ cids: [CID]) throws {
        try SmallFile.writeAtomically(Array(cids.map { "\($0)\n" }.joined().utf8), to: rootsFile)
    }
}

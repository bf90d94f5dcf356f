import Dispatch
import Multiformats
import PeerNet
import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc

    /// Linux `syncfs(2)` (glibc declares it only under _GNU_SOURCE, which the Glibc module lacks).
    @_silgen_name("syncfs")
    private func syncfs(_ descriptor: Int32) -> Int32
#endif

/// A repository's blocks on disk, one file per block, addressed by multihash as Kubo's flatfs
/// does: `blocks/<shard>/<KEY>.data`, KEY the multihash in unpadded upper-case base32, shard the
/// two characters before KEY's last. The codec is not stored (it travels in the CIDs that link
/// to a block).
///
/// Crash safety: a block is written to a temporary file, and only renamed to its name once its
/// bytes are on disk, so a name always holds a whole block. To make that cheap, writes are
/// batched: temporary files pile up to `batchBytes`, then one `syncfs` makes them all durable
/// and they are renamed; `sync()` does the same for the rest and fsyncs the directories. A
/// crash loses at most the unsynced batch (whose temporary files `verify` reports and `gc`
/// removes), never a block that `sync()` has returned for.
public final class FileBlockstore: BlockSink, BlockSource {
    public let root: FilePath
    public let blocksDirectory: FilePath
    /// Whether each block is fsynced before it is renamed into place.
    public let durable: Bool
    private let touched = Mutex<Set<String>>([])
    private let counter = Atomic<UInt64>(0)
    /// Written but not yet renamed: the temporary file by final name; and those written since the
    /// last batch was cut, with their bytes.
    private let pending = Mutex<(files: [String: FilePath], unsynced: [String], bytes: Int)>(([:], [], 0))
    /// Batches are synced and renamed on this queue while the importer goes on writing; at most
    /// four are in flight.
    private let flushQueue = DispatchQueue(label: "peerstack.blockstore.flush")
    private let flushes = DispatchGroup()
    private let inFlight = DispatchSemaphore(value: 4)
    private let flushError = Mutex<(any Error)?>(nil)
    /// Bytes of temporary files written before they are synced and renamed.
    public let batchBytes: Int

    /// Opens (creating when missing) the repository at `root`.
    public init(root: FilePath, durable: Bool = true, batchBytes: Int = 16 << 20) throws {
        self.root = root
        self.batchBytes = batchBytes
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
        let final = path(cid.multihash)
        return stat(final.string, &info) == 0 || pending.withLock { $0.files[final.string] != nil }
    }

    public func size(_ cid: CID) -> Int? {
        let final = path(cid.multihash)
        let file = pending.withLock { $0.files[final.string] } ?? final
        var info = stat()
        return stat(file.string, &info) == 0 ? Int(info.st_size) : nil
    }

    public func block(_ cid: CID) throws -> [UInt8] {
        let final = path(cid.multihash)
        let file = pending.withLock { $0.files[final.string] } ?? final
        do {
            return try SmallFile.read(file, limit: DagPBNode.maxBlockSize)
        } catch let error as Errno where error == .noSuchFileOrDirectory {
            throw IPFSError.missingBlock(cid)
        } catch is SmallFile.TooLarge {
            throw IPFSError.blockTooLarge(cid, size: DagPBNode.maxBlockSize + 1)
        }
    }

    public func put(_ cid: CID, _ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try put(cid, parts: [$0]) }
    }

    public func put(_ cid: CID, parts: [UnsafeRawBufferPointer]) throws {
        guard cid.multihash.code != Multihash.Function.identity.rawValue else { return }
        let size = parts.reduce(0) { $0 + $1.count }
        let key = Self.key(cid.multihash)
        let shard = Self.shard(key)
        let directory = blocksDirectory.appending(shard)
        let final = directory.appending(key + ".data")
        if pending.withLock({ $0.files[final.string] != nil }) { return }
        var info = stat()
        if stat(final.string, &info) == 0 && Int(info.st_size) == size { return }
        // Under the lock, so that no thread writes into a shard another is still creating.
        try touched.withLock { shards in
            if shards.insert(shard).inserted { try Self.makeDirectory(directory) }
        }
        let serial = counter.wrappingAdd(1, ordering: .relaxed).newValue
        let temporary = directory.appending(".\(key).\(getpid()).\(serial).tmp")
        let descriptor = try FileDescriptor.open(
            temporary, .writeOnly, options: [.create, .truncate, .closeOnExec],
            permissions: [.ownerReadWrite, .groupRead, .otherRead])
        do {
            for part in parts { _ = try descriptor.writeAll(part) }
            try descriptor.close()
        } catch {
            try? descriptor.close()
            _ = unlink(temporary.string)
            throw error
        }
        let batch: [String]? = pending.withLock { state in
            if state.files[final.string] != nil {
                _ = unlink(temporary.string)
                return nil
            }
            state.files[final.string] = temporary
            state.unsynced.append(final.string)
            state.bytes += size
            guard state.bytes >= batchBytes else { return nil }
            defer {
                state.unsynced = []
                state.bytes = 0
            }
            return state.unsynced
        }
        if let batch {
            if let error = flushError.withLock({ $0 }) { throw error }
            inFlight.wait()
            flushes.enter()
            flushQueue.async {
                defer {
                    self.inFlight.signal()
                    self.flushes.leave()
                }
                do {
                    try self.commit(batch)
                } catch {
                    self.flushError.withLock { $0 = $0 ?? error }
                }
            }
        }
    }

    /// Makes a batch's temporary files durable (one `syncfs`) and renames them into place.
    private func commit(_ batch: [String]) throws {
        guard !batch.isEmpty else { return }
        if durable {
            let handle = try FileDescriptor.open(blocksDirectory, .readOnly)
            defer { try? handle.close() }
            guard syncfs(handle.rawValue) == 0 else { throw Errno(rawValue: errno) }
        }
        for final in batch {
            guard let temporary = pending.withLock({ $0.files[final] }) else { continue }
            guard rename(temporary.string, final) == 0 else {
                let error = Errno(rawValue: errno)
                _ = unlink(temporary.string)
                throw error
            }
            pending.withLock { _ = $0.files.removeValue(forKey: final) }
        }
    }

    /// Makes every block put so far durable under its name: the pending batch is synced and
    /// renamed, then the shard directories written since the last call are fsynced.
    public func sync() throws {
        flushes.wait()
        let rest = pending.withLock { state in
            defer {
                state.unsynced = []
                state.bytes = 0
            }
            return state.unsynced
        }
        try commit(rest)
        if let error = flushError.withLock({ $0 }) { throw error }
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

import Multiformats
import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// One file, directory or symlink added, as Kubo's `ipfs add` prints it (`added <cid> <path>`).
public struct ImportedEntry: Sendable, Hashable {
    public let path: String
    public let cid: CID
    /// Content bytes (files), 0 for directories and symlinks.
    public let size: UInt64
    /// The DAG's cumulative size (a parent link's Tsize).
    public let tsize: UInt64
    public let isDirectory: Bool
}

/// Bytes of file content imported so far out of all there are to import.
public struct ImportProgress: Sendable, Hashable {
    public let bytesDone: UInt64
    public let bytesTotal: UInt64
}

/// Turns files and directory trees into UnixFS DAGs with the same CIDs as Kubo's `ipfs add`
/// (go-unixfs importer, fixed-size chunker, balanced or trickle layout), storing each block in
/// `sink` (none: `--only-hash`). Leaves are hashed on `options.threads` threads.
public struct UnixFSImporter: Sendable {
    public let options: ImportOptions
    public let sink: (any BlockSink)?

    /// Deepest directory nesting followed.
    public static let maxDepth = 512

    public init(options: ImportOptions = ImportOptions(), sink: (any BlockSink)?) throws(IPFSError) {
        try options.validate()
        self.options = options
        self.sink = sink
    }

    /// Imports content from `reader` as one file.
    /// Imports content from `reader` as one file; `expectedSize` (when known) only sizes the
    /// read buffer.
    public func addFile<R: ChunkReader>(
        reading reader: R, expectedSize: UInt64? = nil, onBytes: @escaping (Int) -> Void = { _ in }
    ) throws -> FileChild {
        var source = LeafSource(
            reader: reader, options: options, kind: options.layout == .trickle ? .raw : .file, sink: sink,
            expectedSize: expectedSize, onBytes: onBytes)
        switch options.layout {
        case .balanced: return try DagBuilder.balanced(&source, options: options)
        case .trickle: return try DagBuilder.trickle(&source, options: options)
        }
    }

    /// Imports bytes held in memory as one file.
    public func addFile(bytes: [UInt8]) throws -> FileChild {
        try addFile(reading: BytesChunkReader(bytes), expectedSize: UInt64(bytes.count))
    }

    /// What is on disk to import, found before any hashing so progress has a total.
    indirect enum Plan {
        case file(FilePath, size: UInt64)
        case directory(FilePath, [(name: String, plan: Plan)])
        case symlink(FilePath, target: [UInt8])

        var bytes: UInt64 {
            switch self {
            case .file(_, let size): return size
            case .directory(_, let children): return children.reduce(0) { $0 + $1.plan.bytes }
            case .symlink: return 0
            }
        }
    }

    /// Adds `path` (a directory only when `recursive`), returning every entry in the order Kubo
    /// prints them: files as they are added, each directory after its contents, the root last.
    public func add(
        _ path: FilePath, recursive: Bool, progress: (@Sendable (ImportProgress) -> Void)? = nil
    ) throws -> [ImportedEntry] {
        let plan = try Self.plan(path, recursive: recursive, includeHidden: options.includeHidden, depth: 0)
        let total = plan.bytes
        let done = Mutex<UInt64>(0)
        let report: (Int) -> Void = { count in
            let now = done.withLock {
                $0 += UInt64(count)
                return $0
            }
            progress?(ImportProgress(bytesDone: now, bytesTotal: total))
        }
        var entries: [ImportedEntry] = []
        let name = path.lastComponent?.string ?? path.string
        _ = try run(plan, name: name, entries: &entries, report: report)
        progress?(ImportProgress(bytesDone: total, bytesTotal: total))
        return entries
    }

    private func run(
        _ plan: Plan, name: String, entries: inout [ImportedEntry], report: @escaping (Int) -> Void
    )
        throws -> FileChild
    {
        switch plan {
        case .file(let path, let size):
            let descriptor: FileDescriptor
            do {
                descriptor = try FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
            } catch {
                throw IPFSError.badInput("\(path): \(error)")
            }
            defer { try? descriptor.close() }
            let child = try addFile(reading: FileChunkReader(descriptor), expectedSize: size, onBytes: report)
            entries.append(
                ImportedEntry(
                    path: name, cid: child.cid, size: child.fileSize, tsize: child.tsize, isDirectory: false))
            return child
        case .symlink(_, let target):
            let child = try DagBuilder.symlink(target, options: options, sink: sink)
            entries.append(
                ImportedEntry(path: name, cid: child.cid, size: 0, tsize: child.tsize, isDirectory: false))
            return child
        case .directory(_, let children):
            var links: [(name: String, child: FileChild)] = []
            var directories: [ImportedEntry] = []
            for (childName, childPlan) in children {
                var sub: [ImportedEntry] = []
                let child = try run(childPlan, name: name + "/" + childName, entries: &sub, report: report)
                // Files first as they come; directories are printed after all files, as Kubo does.
                entries += sub.filter { !$0.isDirectory }
                directories += sub.filter(\.isDirectory)
                links.append((childName, child))
            }
            let node = try DagBuilder.directory(links, options: options, sink: sink)
            entries += directories
            entries.append(
                ImportedEntry(path: name, cid: node.cid, size: 0, tsize: node.tsize, isDirectory: true))
            return node
        }
    }

    static func plan(_ path: FilePath, recursive: Bool, includeHidden: Bool, depth: Int) throws -> Plan {
        guard depth <= maxDepth else {
            throw IPFSError.badInput("\(path): nested deeper than \(maxDepth) levels")
        }
        var info = stat()
        guard lstat(path.string, &info) == 0 else {
            throw IPFSError.badInput("\(path): \(Errno(rawValue: errno))")
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG:
            return .file(path, size: UInt64(info.st_size))
        case S_IFLNK:
            var target = [UInt8](repeating: 0, count: Int(PATH_MAX) + 1)
            let count = target.withUnsafeMutableBufferPointer {
                $0.withMemoryRebound(to: CChar.self) { readlink(path.string, $0.baseAddress!, $0.count) }
            }
            guard count >= 0 else { throw IPFSError.badInput("\(path): \(Errno(rawValue: errno))") }
            return .symlink(path, target: Array(target.prefix(count)))
        case S_IFDIR:
            guard recursive else {
                throw IPFSError.badInput("\(path) is a directory, use -r to add directories")
            }
            var children: [(String, Plan)] = []
            for name in try FileBlockstore.list(path) where includeHidden || !name.hasPrefix(".") {
                children.append(
                    (
                        name,
                        try plan(
                            path.appending(name), recursive: true, includeHidden: includeHidden,
                            depth: depth + 1)
                    ))
            }
            children.sort { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }
            return .directory(path, children)
        default:
            throw IPFSError.badInput("\(path): not a regular file, directory or symlink")
        }
    }
}

import Bencode
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// What goes into a new torrent besides its files.
public struct TorrentCreationOptions: Sendable {
    /// Bytes per piece; nil chooses as libtorrent does (``TorrentCreator/automaticPieceLength(forTotalLength:)``).
    public var pieceLength: Int?
    /// Tracker tiers (BEP 12). The first URL is also written as `announce`; `announce-list`
    /// is written only when there is more than one URL, as mktorrent and libtorrent do.
    public var trackerTiers: [[String]] = []
    /// BEP 19 web seeds.
    public var webSeeds: [String] = []
    /// BEP 27 private flag.
    public var isPrivate = false
    public var comment: String?
    public var createdBy: String? = "PeerStack"
    /// Seconds since 1970; nil leaves `creation date` out.
    public var creationDate: Int64?
    /// Hashing threads; defaults to the number of cores.
    public var workers: Int = Machine.coreCount
    /// v1 (BEP 3, the default), v2 or hybrid (BEP 52). A hybrid torrent's v1 file list has a
    /// pad file after each file that does not end on a piece boundary, as libtorrent writes it.
    public var version: MetaVersion = .v1

    public init() {}
}

/// Why a torrent could not be made.
public enum TorrentCreationError: Error, Hashable, Sendable, CustomStringConvertible {
    case cannotRead(path: String, reason: String)
    case noFiles(path: String)
    case empty(path: String)
    case invalidPieceLength(Int)
    case tooManyPieces(Int)
    case changedWhileHashing(path: String, reason: String)

    public var description: String {
        switch self {
        case .cannotRead(let path, let reason): return "\(path): cannot read: \(reason)"
        case .noFiles(let path): return "\(path): no files to share"
        case .empty(let path): return "\(path): every file is empty; a torrent needs at least one byte"
        case .invalidPieceLength(let length):
            return "piece length \(length) must be a power of two from 16 KiB to 256 MiB"
        case .tooManyPieces(let count): return "\(count) pieces is too many; choose a larger piece length"
        case .changedWhileHashing(let path, let reason):
            return "\(path): changed or became unreadable while hashing (\(reason))"
        }
    }
}

/// The files found under a path, in torrent order.
public struct SourceFiles: Sendable, Hashable {
    /// The torrent's `name`: the file's or directory's last path component.
    public var name: String
    /// Whether the source is a directory (a multi-file torrent).
    public var isDirectory: Bool
    /// Each file's path below the directory (for a single file: `[name]`), length and disk path.
    public var files: [(path: [String], length: Int64, diskPath: FilePath)]

    public static func == (lhs: SourceFiles, rhs: SourceFiles) -> Bool {
        lhs.name == rhs.name && lhs.isDirectory == rhs.isDirectory
            && lhs.files.map(\.path) == rhs.files.map(\.path)
            && lhs.files.map(\.length) == rhs.files.map(\.length)
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(files.map(\.path))
    }

    public var totalLength: Int64 { files.reduce(0) { $0 + $1.length } }
}

/// Makes torrents from files on disk: v1 (BEP 3), v2 or hybrid (BEP 52).
public enum TorrentCreator {
    /// The piece length libtorrent 2 chooses for `totalLength` bytes: 16 KiB doubled for each
    /// threshold the size exceeds, up to 16 MiB, so that the piece list stays near
    /// `2·sqrt(totalLength)` bytes.
    public static func automaticPieceLength(forTotalLength totalLength: Int64) -> Int {
        let thresholds: [Int64] = [
            2_684_355, 10_737_418, 42_949_673, 171_798_692, 687_194_767, 2_748_779_069, 10_995_116_278,
            43_980_465_111, 175_921_860_444, 703_687_441_777,
        ]
        let steps = thresholds.prefix { $0 < totalLength }.count
        return 16_384 << steps
    }

    /// Lists the files under `path` in a deterministic order: path components compared as
    /// raw bytes, level by level (the order of BEP 52's file tree). Symbolic links to files
    /// are followed; links to directories are not, so a loop cannot trap the walk.
    public static func scan(_ path: String) throws(TorrentCreationError) -> SourceFiles {
        let root = FilePath(path).lexicallyNormalized()
        guard let name = root.lastComponent?.string, name != "..", name != "." else {
            throw .cannotRead(path: path, reason: "no file or directory name to use as the torrent's name")
        }
        let status = try status(of: root, path: path, follow: true)
        if status.isDirectory {
            var files: [(path: [String], length: Int64, diskPath: FilePath)] = []
            try walk(root, relative: [], into: &files, display: path)
            guard !files.isEmpty else { throw .noFiles(path: path) }
            return SourceFiles(name: name, isDirectory: true, files: files)
        }
        guard status.isRegular else {
            throw .cannotRead(path: path, reason: "not a regular file or directory")
        }
        return SourceFiles(name: name, isDirectory: false, files: [([name], status.size, root)])
    }

    /// Builds the torrent for `source`, hashing every piece on `options.workers` threads.
    public static func create(
        from source: SourceFiles, options: TorrentCreationOptions,
        progress: (@Sendable (HashingProgress) -> Void)? = nil
    ) async throws(TorrentCreationError) -> Metainfo {
        let total = source.totalLength
        guard total > 0 else { throw .empty(path: source.name) }
        let pieceLength = options.pieceLength ?? automaticPieceLength(forTotalLength: total)
        guard pieceLength >= 16_384, pieceLength <= 256 << 20, pieceLength.nonzeroBitCount == 1 else {
            throw .invalidPieceLength(pieceLength)
        }
        // The v1 view: the files in order; in a hybrid torrent, each followed by a pad file up
        // to the next piece boundary (BEP 52, BEP 47 `attr` "p"), the last one too.
        var entries: [FileEntry] = []
        var diskPaths: [FilePath] = []
        var offset: Int64 = 0
        for file in source.files {
            entries.append(FileEntry(path: file.path, length: file.length, offset: offset))
            diskPaths.append(file.diskPath)
            offset += file.length
            let tail = Int(offset % Int64(pieceLength))
            if options.version == .hybrid, source.isDirectory, file.length > 0, tail != 0 {
                let pad = Int64(pieceLength - tail)
                entries.append(
                    FileEntry(path: [".pad", "\(pad)"], length: pad, offset: offset, attributes: .padding))
                diskPaths.append(file.diskPath)  // never read: padding is zeros
                offset += pad
            }
        }
        let layout = FileLayout(files: entries, pieceLength: pieceLength)
        guard layout.pieceCount <= MetainfoLimits.standard.maxPieces else {
            throw .tooManyPieces(layout.pieceCount)
        }
        var info: [[UInt8]: BencodeValue] = [
            Array("name".utf8): .string(source.name),
            Array("piece length".utf8): .integer(Int64(pieceLength)),
        ]
        if options.version.hasV1 {
            let hashed = await PieceHasher.hash(
                layout: layout, paths: diskPaths, workers: options.workers, progress: progress)
            if let failure = hashed.firstFailure {
                throw .changedWhileHashing(
                    path: diskPaths[failure.fileIndex].string,
                    reason: failure.error.map { String(describing: $0) } ?? "file is shorter than when listed"
                )
            }
            info[Array("pieces".utf8)] = .bytes(hashed.digests)
            if source.isDirectory {
                info[Array("files".utf8)] = .list(
                    entries.map { file in
                        var entry: [[UInt8]: BencodeValue] = [
                            Array("length".utf8): .integer(file.length),
                            Array("path".utf8): .list(file.path.map(BencodeValue.string)),
                        ]
                        if file.isPadding { entry[Array("attr".utf8)] = .string("p") }
                        return .dictionary(entry)
                    })
            } else {
                info[Array("length".utf8)] = .integer(total)
            }
        }
        var pieceLayers: [[UInt8]: [UInt8]] = [:]
        if options.version.hasV2 {
            let merkles: [FileMerkle?]
            do {
                merkles = try await MerkleHasher.hash(
                    paths: source.files.map(\.diskPath), lengths: source.files.map(\.length),
                    pieceLength: pieceLength, workers: options.workers,
                    progress: options.version == .v2 ? progress : nil)
            } catch {
                throw .changedWhileHashing(
                    path: source.files[error.fileIndex].diskPath.string,
                    reason: error.error.map { String(describing: $0) } ?? "file is shorter than when listed")
            }
            var tree = FileTreeBuilder()
            for (file, merkle) in zip(source.files, merkles) {
                var leaf: [[UInt8]: BencodeValue] = [Array("length".utf8): .integer(file.length)]
                if let merkle {
                    leaf[Array("pieces root".utf8)] = .bytes(merkle.root)
                    if !merkle.pieceLayer.isEmpty {
                        pieceLayers[merkle.root] = merkle.pieceLayer.flatMap { $0 }
                    }
                }
                tree.add(file.path, leaf)
            }
            info[Array("meta version".utf8)] = 2
            info[Array("file tree".utf8)] = tree.value
        }
        if options.isPrivate { info[Array("private".utf8)] = 1 }
        let infoBytes = BencodeValue.dictionary(info).encoded()
        let infoDictionary: InfoDictionary
        do {
            infoDictionary = try InfoDictionary(
                node: try BencodeDecoder(limits: MetainfoLimits.standard.bencode).decodeNode(infoBytes))
        } catch {
            // Only an unsafe file name found on disk (such as one holding a NUL) can get here.
            throw .cannotRead(path: source.name, reason: "\(error)")
        }
        let urls = options.trackerTiers.flatMap { $0 }
        return Metainfo(
            info: infoDictionary, announce: urls.first,
            announceList: urls.count > 1 ? options.trackerTiers : [],
            webSeeds: options.webSeeds, comment: options.comment, createdBy: options.createdBy,
            creationDate: options.creationDate, pieceLayers: pieceLayers)
    }

    private struct Status {
        var isDirectory: Bool
        var isRegular: Bool
        var isSymlink: Bool
        var size: Int64
    }

    private static func status(of path: FilePath, path display: String, follow: Bool)
        throws(TorrentCreationError) -> Status
    {
        var info = Glibc.stat()
        let result = path.withPlatformString { follow ? stat($0, &info) : lstat($0, &info) }
        guard result == 0 else {
            throw .cannotRead(path: display, reason: String(describing: Errno(rawValue: errno)))
        }
        let type = info.st_mode & S_IFMT
        return Status(
            isDirectory: type == S_IFDIR, isRegular: type == S_IFREG, isSymlink: type == S_IFLNK,
            size: Int64(info.st_size))
    }

    private static func walk(
        _ directory: FilePath, relative: [String],
        into files: inout [(path: [String], length: Int64, diskPath: FilePath)],
        display: String
    ) throws(TorrentCreationError) {
        guard let handle = directory.withPlatformString({ opendir($0) }) else {
            throw .cannotRead(path: directory.string, reason: String(describing: Errno(rawValue: errno)))
        }
        var names: [[UInt8]] = []
        while let entry = readdir(handle) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                Array(raw.prefix { $0 != 0 })
            }
            if name == [UInt8(ascii: ".")] || name == [UInt8(ascii: "."), UInt8(ascii: ".")] { continue }
            names.append(name)
        }
        closedir(handle)
        names.sort { $0.lexicographicallyPrecedes($1) }
        for rawName in names {
            let name = String(decoding: rawName, as: UTF8.self)
            let child = appending(rawName, to: directory)
            let own = try status(of: child, path: child.string, follow: false)
            let status = own.isSymlink ? try status(of: child, path: child.string, follow: true) : own
            if status.isDirectory {
                if own.isSymlink { continue }
                try walk(child, relative: relative + [name], into: &files, display: display)
            } else if status.isRegular {
                files.append((relative + [name], status.size, child))
            }
        }
    }
}

extension TorrentCreator {
    /// `directory/name` from the raw bytes of a name as the file system gave them, so that a
    /// name that is not valid UTF-8 is still opened by its real bytes.
    fileprivate static func appending(_ rawName: [UInt8], to directory: FilePath) -> FilePath {
        var raw: [CChar] = directory.withPlatformString {
            Array(UnsafeBufferPointer(start: $0, count: strlen($0)))
        }
        if raw.last != CChar(bitPattern: UInt8(ascii: "/")) {
            raw.append(CChar(bitPattern: UInt8(ascii: "/")))
        }
        raw += rawName.map { CChar(bitPattern: $0) }
        raw.append(0)
        return raw.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return directory }
            return FilePath(platformString: base)
        }
    }
}

/// Builds BEP 52's nested `file tree` dictionary from file paths.
private struct FileTreeBuilder {
    private final class Node {
        var children: [[UInt8]: Node] = [:]
        var file: [[UInt8]: BencodeValue]?
    }

    private let top = Node()

    mutating func add(_ path: [String], _ leaf: [[UInt8]: BencodeValue]) {
        var node = top
        for element in path {
            let key = Array(element.utf8)
            if let child = node.children[key] {
                node = child
            } else {
                let child = Node()
                node.children[key] = child
                node = child
            }
        }
        node.file = leaf
    }

    var value: BencodeValue { Self.value(top) }

    private static func value(_ node: Node) -> BencodeValue {
        var entries = node.children.mapValues { value($0) }
        if let file = node.file { entries[[]] = .dictionary(file) }
        return .dictionary(entries)
    }
}

/// Facts about this machine that defaults depend on.
public enum Machine {
    /// Number of online cores.
    public static var coreCount: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }
}

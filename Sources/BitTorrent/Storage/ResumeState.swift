import Bencode
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// What a restart may trust without re-hashing: the pieces verified and flushed to disk, and
/// each file's size and modification time when that was recorded.
///
/// Written atomically (temporary file, fsync, rename), only after the data it lists was
/// fsynced, so a crash at any moment leaves either the old state or the new one.
public struct ResumeState: Hashable, Sendable {
    public struct FileStamp: Hashable, Sendable {
        public var size: Int64
        public var modified: Int64  // nanoseconds since 1970
    }

    public var infoHash: InfoHash
    public var pieces: Bitfield
    public var files: [FileStamp?]

    public init(infoHash: InfoHash, pieces: Bitfield, files: [FileStamp?]) {
        self.infoHash = infoHash
        self.pieces = pieces
        self.files = files
    }

    public func encoded() -> [UInt8] {
        let stamps: [BencodeValue] = files.map { stamp in
            guard let stamp else { return .list([]) }
            return .list([.integer(stamp.size), .integer(stamp.modified)])
        }
        let dict: BencodeValue = [
            "version": 1, "info-hash": .bytes(infoHash.bytes), "piece-count": .integer(Int64(pieces.count)),
            "pieces": .bytes(pieces.bytes), "files": .list(stamps),
        ]
        return dict.encoded()
    }

    /// Reads a resume file for `info`; nil when it is absent, damaged or for another torrent.
    public init?(decoding bytes: [UInt8], for infoHash: InfoHash, pieceCount: Int, fileCount: Int) {
        guard
            let value = try? BencodeDecoder(
                limits: .init(maxDepth: 4, maxElements: 4_000_000, maxInputSize: 64 << 20)
            )
            .decode(bytes),
            value["version"] == 1, value["info-hash"]?.bytes == infoHash.bytes,
            value["piece-count"]?.integer == Int64(pieceCount),
            let raw = value["pieces"]?.bytes, let pieces = Bitfield(bytes: raw, count: pieceCount),
            let list = value["files"]?.list, list.count == fileCount
        else { return nil }
        self.infoHash = infoHash
        self.pieces = pieces
        files = list.map { entry in
            guard let pair = entry.list, pair.count == 2, let size = pair[0].integer,
                let modified = pair[1].integer
            else { return nil }
            return FileStamp(size: size, modified: modified)
        }
    }

    /// The current size and modification time of a file, nil if it does not exist.
    public static func stamp(of path: FilePath) -> FileStamp? {
        var info = stat()
        guard path.withPlatformString({ stat($0, &info) }) == 0 else { return nil }
        return FileStamp(
            size: Int64(info.st_size),
            modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }
}

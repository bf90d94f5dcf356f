import SystemPackage

/// The result of checking a torrent's data on disk against its piece hashes.
public struct VerificationReport: Sendable, Hashable {
    /// How much of one file is backed by verified pieces.
    public struct FileReport: Sendable, Hashable {
        /// Path below the download directory (`name/…` for multi-file torrents).
        public var path: [String]
        public var length: Int64
        /// Bytes of this file inside pieces whose hash matched.
        public var verifiedBytes: Int64
        /// Whether the file was found on disk.
        public var exists: Bool
        public var isComplete: Bool { verifiedBytes == length }
    }

    /// Whether each piece matched its hash.
    public var goodPieces: [Bool]
    /// One entry per file, padding files left out.
    public var files: [FileReport]

    public var goodPieceCount: Int { goodPieces.lazy.filter { $0 }.count }
    public var isComplete: Bool { goodPieces.allSatisfy { $0 } }
}

/// Checks data on disk against a torrent (as `libtorrent`'s recheck does): v1 pieces by SHA-1,
/// v2 pieces by their merkle hashes, a hybrid torrent's by both.
public enum TorrentVerifier {
    /// Hashes every piece of `metainfo` from under `directory` on `workers` threads. Missing or
    /// short files make their pieces bad; nothing is written.
    public static func verify(
        _ metainfo: Metainfo, in directory: FilePath, workers: Int = Machine.coreCount,
        progress: (@Sendable (HashingProgress) -> Void)? = nil
    ) async -> VerificationReport {
        let info = metainfo.info
        let layout = FileLayout(info: info)
        let paths = info.files.map { file in
            info.relativePath(of: file).reduce(directory) { $0.appending($1) }
        }
        // v2 pieces are checked by their merkle nodes (BEP 52); a hybrid's by both hashes.
        let merkle = info.version.hasV2 ? MerklePieces(info: info, pieceLayers: metainfo.pieceLayers) : nil
        let hashed = await PieceHasher.hash(
            layout: layout, paths: paths, workers: workers, merkle: merkle, progress: progress)
        let good = (0..<info.pieceCount).map { hashed.matches($0, info: info) }
        var files: [VerificationReport.FileReport] = []
        for (index, file) in info.files.enumerated() where !file.isPadding {
            var verified: Int64 = 0
            for piece in layout.pieces(overlappingFile: index) where good[piece] {
                let range = layout.pieceRange(piece).clamped(to: file.range)
                verified += range.upperBound - range.lowerBound
            }
            let exists = paths[index].withPlatformString { access($0, F_OK) == 0 }
            files.append(
                .init(
                    path: info.relativePath(of: file), length: file.length, verifiedBytes: verified,
                    exists: exists))
        }
        return VerificationReport(goodPieces: good, files: files)
    }
}

#if canImport(Glibc)
    import Glibc
#endif

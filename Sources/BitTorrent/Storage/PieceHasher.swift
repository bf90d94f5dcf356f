import Crypto
import Dispatch
import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// How far a hashing run has got.
public struct HashingProgress: Sendable, Hashable {
    public var bytesDone: Int64
    public var bytesTotal: Int64
    public var piecesDone: Int
    public var pieceCount: Int
}

/// The SHA-1 of each piece read from disk, or why it could not be read.
public struct PieceDigests: Sendable {
    /// 20 bytes per piece, zeros where ``readable`` is false.
    public let digests: [UInt8]
    /// Whether each piece could be read in full.
    public let readable: [Bool]
    /// The first read failure, if any: the file index and the error.
    public let firstFailure: (fileIndex: Int, error: Errno?)?

    /// Per piece, whether its leaves matched its v2 hash (BEP 52), when hashed with one.
    public let merkleMatches: [Bool]?

    public func digest(_ index: Int) -> ArraySlice<UInt8>? {
        readable[index] ? digests[index * 20..<index * 20 + 20] : nil
    }

    /// Whether piece `index` matches every hash `info` (and the v2 hashes it was hashed with)
    /// has for it: SHA-1 for v1, the merkle node for v2, both for a hybrid torrent.
    public func matches(_ index: Int, info: InfoDictionary) -> Bool {
        guard readable[index] else { return false }
        if info.version.hasV1, digest(index)?.elementsEqual(info.pieceHash(index)) != true { return false }
        if let merkleMatches { return merkleMatches[index] }
        return info.version.hasV1
    }
}

/// Hashes the pieces of files on disk with SHA-1 on several threads, one bounded buffer per
/// thread: each worker claims the next piece (or a run of small pieces, so reads stay large),
/// reads it with positional reads (spanning file boundaries, padding as zeros) in windows of
/// at most 4 MiB and hashes it. Used to create torrents and to check data.
public enum PieceHasher {
    /// Hashes every piece of `layout`. `paths[i]` is where file `i` is on disk (ignored for
    /// padding files). A piece whose file is missing or short is marked unreadable, not fatal.
    /// Runs on its own threads, not on Swift's cooperative pool, because reads block.
    /// `pieces` limits the work to those pieces (the others stay unreadable). With `merkle`,
    /// each piece's BEP 52 leaves are checked against its v2 hash in the same pass.
    public static func hash(
        layout: FileLayout, paths: [FilePath], workers: Int, pieces: [Int]? = nil,
        merkle: MerklePieces? = nil,
        progress: (@Sendable (HashingProgress) -> Void)? = nil
    ) async -> PieceDigests {
        let job = HashJob(layout: layout, paths: paths, subset: pieces, merkle: merkle)
        let workerCount = max(1, min(workers, pieces?.count ?? layout.pieceCount))
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                DispatchQueue.concurrentPerform(iterations: workerCount) { _ in
                    job.work(progress: progress)
                }
                continuation.resume()
            }
        }
        return job.result()
    }
}

/// State shared by the hashing workers. Each piece's digest slot is written by exactly one
/// worker (the one that claimed it from the atomic counter), so the slots need no lock.
private final class HashJob: @unchecked Sendable {
    let layout: FileLayout
    let paths: [FilePath]
    let nextPiece = Atomic<Int>(0)
    let bytesDone = Atomic<Int64>(0)
    let piecesDone = Atomic<Int>(0)
    let digests: UnsafeMutableBufferPointer<UInt8>
    let readable: UnsafeMutableBufferPointer<Bool>
    let failure = Mutex<(fileIndex: Int, error: Errno?)?>(nil)
    /// When set, only these pieces, one at a time.
    let subset: [Int]?
    let merkle: MerklePieces?
    let merkleMatches: UnsafeMutableBufferPointer<Bool>

    init(layout: FileLayout, paths: [FilePath], subset: [Int]?, merkle: MerklePieces?) {
        self.layout = layout
        self.paths = paths
        self.subset = subset
        self.merkle = merkle
        merkleMatches = .allocate(capacity: merkle == nil ? 0 : layout.pieceCount)
        merkleMatches.initialize(repeating: false)
        digests = .allocate(capacity: layout.pieceCount * 20)
        digests.initialize(repeating: 0)
        readable = .allocate(capacity: layout.pieceCount)
        readable.initialize(repeating: false)
    }

    deinit {
        digests.deallocate()
        readable.deallocate()
        merkleMatches.deallocate()
    }

    func result() -> PieceDigests {
        PieceDigests(
            digests: Array(digests), readable: Array(readable), firstFailure: failure.withLock { $0 },
            merkleMatches: merkle == nil ? nil : Array(merkleMatches))
    }

    /// The leaf hasher and check of a piece with a v2 hash.
    func leafHasher(_ piece: Int) -> (LeafHasher, PieceCheck)? {
        guard let check = merkle?.check(piece: piece) else { return nil }
        return (LeafHasher(dataLength: check.dataLength), check)
    }

    /// Bytes a worker reads in one go when pieces are small (a run of pieces is claimed at once).
    static let minimumReadSize = 256 << 10
    /// Most bytes a worker holds: a longer piece is read and hashed in windows of this size, so
    /// memory stays bounded whatever the piece length (up to 1 GiB).
    static let maximumReadSize = 4 << 20

    func work(progress: (@Sendable (HashingProgress) -> Void)?) {
        let pieceLength = layout.pieceLength
        let batch = subset == nil ? max(1, Self.minimumReadSize / pieceLength) : 1
        let window = min(batch * pieceLength, Self.maximumReadSize)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: window, alignment: 4096)
        defer { buffer.deallocate() }
        var reader = SequentialFileCache(paths: paths)
        defer { reader.close() }
        let pieceCount = layout.pieceCount
        let claimable = subset?.count ?? pieceCount
        let totalBytes =
            subset.map { $0.reduce(Int64(0)) { $0 + Int64(layout.pieceRange($1).count) } }
            ?? layout.totalLength
        while true {
            let claimed = nextPiece.wrappingAdd(batch, ordering: .relaxed).oldValue
            guard claimed < claimable else { return }
            let first = subset?[claimed] ?? claimed
            let end = min(first + batch, pieceCount)
            let range = layout.pieceRange(first).lowerBound..<layout.pieceRange(end - 1).upperBound
            var piece = first
            var pieceEnd = layout.pieceRange(first).upperBound
            var hasher = Insecure.SHA1()
            var leaves = leafHasher(piece)
            var pieceFailed = false
            var position = range.lowerBound
            while position < range.upperBound {
                let count = Int(min(Int64(window), range.upperBound - position))
                // Read every segment; a failed one spoils only the pieces that overlap it.
                var failed: [Range<Int64>] = []
                var filled = 0
                for segment in layout.segments(in: position..<position + Int64(count)) {
                    let target = UnsafeMutableRawBufferPointer(
                        rebasing: buffer[filled..<filled + segment.length])
                    if layout.files[segment.fileIndex].isPadding {
                        target.initializeMemory(as: UInt8.self, repeating: 0)
                    } else if let error = reader.read(
                        file: segment.fileIndex, at: segment.fileOffset, into: target)
                    {
                        let start = position + Int64(filled)
                        failed.append(start..<start + Int64(segment.length))
                        failure.withLock { if $0 == nil { $0 = (segment.fileIndex, error.errno) } }
                    }
                    filled += segment.length
                }
                // Feed each piece its part of the window; a piece ends within it or goes on.
                var cursor = position
                let windowEnd = position + Int64(count)
                while cursor < windowEnd {
                    let stop = min(pieceEnd, windowEnd)
                    if failed.contains(where: { $0.overlaps(cursor..<stop) }) {
                        pieceFailed = true
                    } else if !pieceFailed {
                        let slice = UnsafeRawBufferPointer(
                            rebasing: buffer[Int(cursor - position)..<Int(stop - position)])
                        hasher.update(bufferPointer: slice)
                        leaves?.0.update(slice)
                    }
                    cursor = stop
                    guard cursor == pieceEnd else { continue }
                    if !pieceFailed {
                        hasher.finalize().withUnsafeBytes { digest in
                            for index in 0..<20 { digests[piece * 20 + index] = digest[index] }
                        }
                        readable[piece] = true
                        if let pair = leaves {
                            var leafHasher = pair.0
                            merkleMatches[piece] = pair.1.matches(leafHasher.finalize())
                        }
                    }
                    hasher = Insecure.SHA1()
                    pieceFailed = false
                    piece += 1
                    if piece < end {
                        pieceEnd = layout.pieceRange(piece).upperBound
                        leaves = leafHasher(piece)
                    }
                }
                position = windowEnd
            }
            let done = bytesDone.wrappingAdd(range.upperBound - range.lowerBound, ordering: .relaxed).newValue
            let pieces = piecesDone.wrappingAdd(end - first, ordering: .relaxed).newValue
            progress?(
                HashingProgress(
                    bytesDone: done, bytesTotal: totalBytes, piecesDone: pieces, pieceCount: claimable))
        }
    }
}

/// Why a positional read failed: an OS error, or the file ended early (`errno` nil).
struct ReadFailure: Error {
    var errno: Errno?
}

/// Keeps the most recently used file open, since a worker reads files in ascending order.
struct SequentialFileCache {
    let paths: [FilePath]
    private var open: (index: Int, descriptor: FileDescriptor)?

    init(paths: [FilePath]) {
        self.paths = paths
    }

    /// Fills `buffer` from `file` at `offset`; nil on success.
    mutating func read(file: Int, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer)
        -> ReadFailure?
    {
        let descriptor: FileDescriptor
        if let open, open.index == file {
            descriptor = open.descriptor
        } else {
            close()
            do {
                descriptor = try FileDescriptor.open(paths[file], .readOnly, options: [.closeOnExec])
            } catch {
                return ReadFailure(errno: error as? Errno)
            }
            open = (file, descriptor)
            #if canImport(Glibc)
                _ = posix_fadvise(descriptor.rawValue, 0, 0, POSIX_FADV_SEQUENTIAL)
            #endif
        }
        var done = 0
        while done < buffer.count {
            let target = UnsafeMutableRawBufferPointer(rebasing: buffer[done...])
            do {
                let count = try descriptor.read(fromAbsoluteOffset: offset + Int64(done), into: target)
                if count == 0 { return ReadFailure(errno: nil) }
                done += count
            } catch {
                return ReadFailure(errno: error as? Errno)
            }
        }
        return nil
    }

    mutating func close() {
        if let open { try? open.descriptor.close() }
        open = nil
    }
}

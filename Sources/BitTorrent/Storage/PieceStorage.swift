import Crypto
import NIOCore
import NIOPosix
import Synchronization
import SystemPackage

#if canImport(Glibc)
    import Glibc
#endif

/// Why storage failed.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }

}

/// Checks one piece's bytes as they stream past against every hash the torrent has for it:
/// the SHA-1 of v1, the merkle node of v2 (BEP 52), both for a hybrid torrent.
struct PieceDigester {
    private var sha1: Insecure.SHA1?
    private let expectedSHA1: ArraySlice<UInt8>
    private var leafHasher: LeafHasher?
    private let check: PieceCheck?
    /// A v2-only piece without a known hash never passes.
    private let needsMerkle: Bool

    init(piece: Int, info: InfoDictionary, merkle: MerklePieces?) {
        expectedSHA1 = info.pieceHash(piece)
        sha1 = info.version.hasV1 ? Insecure.SHA1() : nil
        check = merkle?.check(piece: piece)
        leafHasher = check.map { LeafHasher(dataLength: $0.dataLength) }
        needsMerkle = !info.version.hasV1
    }

    mutating func update(_ bytes: UnsafeRawBufferPointer) {
        sha1?.update(bufferPointer: bytes)
        leafHasher?.update(bytes)
    }

    /// Whether the piece passed, and its leaves when it has a v2 hash.
    mutating func finish() -> (passed: Bool, leaves: [[UInt8]]?) {
        var passed = true
        if let sha1 { passed = sha1.finalize().elementsEqual(expectedSHA1) }
        guard let check, var leafHasher else { return (passed && !needsMerkle, nil) }
        let leaves = leafHasher.finalize()
        return (passed && check.matches(leaves), leaves)
    }
}

/// A torrent's files on disk, laid out as its info dictionary says (padding files are never
/// stored). Files are created sparse on first write; blocks are written and read with
/// positional I/O, and pieces hashed, on a thread pool, never on the event loop.
public final class PieceStorage: Sendable {
    public let info: InfoDictionary
    /// The v2 hashes pieces are checked against (BEP 52), with the v1 ones of a hybrid torrent.
    public let merkle: MerklePieces?
    public let layout: FileLayout
    /// Where each file lives.
    public let paths: [FilePath]
    /// The download directory, and each file's path beneath it.
    private let directory: FilePath
    private let relativePaths: [[String]]
    private let pool: NIOThreadPool
    private let open = Mutex<[Int: (descriptor: SystemPackage.FileDescriptor, writable: Bool)]>([:])
    /// Read-only descriptors replaced by writable ones: another thread may be in a `pread` on
    /// one, so it is closed only with the storage (closing it at once could let the number be
    /// reused for another file under that read, and a piece would fail its hash).
    private let retired = Mutex<[SystemPackage.FileDescriptor]>([])
    private let written = Mutex<Set<Int>>([])
    private let cache = Mutex(PieceCache())
    private let pendingBytes = Atomic<Int>(0)

    /// Bytes handed to `write` on their way to the disk and not yet written: what the driver
    /// watches to stop reading from peers when the disk falls behind. Blocks held in memory for
    /// unverified pieces do not count (the cache limit bounds them, and they wait for more blocks
    /// from peers: pausing reads for them could wait forever).
    public var backlog: Int { pendingBytes.load(ordering: .relaxed) }
    /// Most bytes of unverified pieces held in memory; past it blocks go straight to disk.
    public let cacheLimit: Int

    /// Pieces being assembled in memory: hashed there, written once if they pass.
    struct PieceCache {
        var pieces: [Int: (buffer: [UInt8], filled: Int)] = [:]
        var bytes = 0
        /// Pieces whose blocks already went to disk: never cached, checked from disk.
        var writtenThrough: Set<Int> = []
        /// Piece buffers to reuse: a new one would be fresh pages the kernel must zero.
        var spare: [[UInt8]] = []
    }

    /// Files go to `directory/name/…` (multi-file) or `directory/name` (single file).
    public init(
        info: InfoDictionary, merkle: MerklePieces? = nil, directory: FilePath, pool: NIOThreadPool,
        cacheLimit: Int = 24 << 20
    ) {
        self.info = info
        self.merkle = merkle
        self.cacheLimit = cacheLimit
        layout = FileLayout(info: info)
        self.directory = directory
        relativePaths = info.files.map { info.relativePath(of: $0) }
        paths = relativePaths.map { $0.reduce(directory) { $0.appending($1) } }
        self.pool = pool
    }

    deinit {
        open.withLock { files in
            for entry in files.values { try? entry.descriptor.close() }
        }
        retired.withLock { descriptors in
            for descriptor in descriptors { try? descriptor.close() }
        }
    }

    private func descriptor(_ index: Int, writable: Bool) throws -> SystemPackage.FileDescriptor {
        try open.withLock { files in
            if let entry = files[index], entry.writable || !writable { return entry.descriptor }
            if let entry = files[index] { retired.withLock { $0.append(entry.descriptor) } }
            let path = paths[index]
            let descriptor: SystemPackage.FileDescriptor
            if writable {
                descriptor = try Self.openForWriting(relativePaths[index], beneath: directory)
                // Full length at once, sparse: no blocks are allocated until written.
                let size = try descriptor.seek(offset: 0, from: .end)
                if size < info.files[index].length {
                    guard ftruncate(descriptor.rawValue, off_t(info.files[index].length)) == 0 else {
                        throw Errno(rawValue: errno)
                    }
                }
            } else {
                descriptor = try SystemPackage.FileDescriptor.open(path, .readOnly, options: [.closeOnExec])
            }
            files[index] = (descriptor, writable)
            return descriptor
        }
    }

    /// Opens (creating it and its folders) a file beneath `directory` for writing, never
    /// through a symbolic link: each folder is opened relative to the one above it with
    /// `O_NOFOLLOW`, and the file too, so a link already on disk (planted there, or left by
    /// another program) cannot lead a write outside the download directory. The directory
    /// itself is the user's choice and may be a link.
    static func openForWriting(_ components: [String], beneath directory: FilePath) throws
        -> SystemPackage.FileDescriptor
    {
        guard let name = components.last else {
            throw StorageError(path: directory.string, reason: "a file with no name")
        }
        try makeDirectories(directory)
        var folder = directory.withPlatformString { Glibc.open($0, O_RDONLY | O_DIRECTORY | O_CLOEXEC) }
        guard folder >= 0 else { throw Errno(rawValue: errno) }
        defer { Glibc.close(folder) }
        var reached = directory
        func refusal(_ error: Int32) -> Error {
            guard error == ELOOP || error == ENOTDIR else { return Errno(rawValue: error) }
            return StorageError(
                path: reached.string,
                reason: "is a symbolic link or not a folder; PeerStack never writes through one")
        }
        for component in components.dropLast() {
            reached = reached.appending(component)
            if mkdirat(folder, component, 0o755) != 0 && errno != EEXIST { throw Errno(rawValue: errno) }
            let next = openat(folder, component, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else { throw refusal(errno) }
            Glibc.close(folder)
            folder = next
        }
        reached = reached.appending(name)
        let file = openat(folder, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard file >= 0 else { throw refusal(errno) }
        return SystemPackage.FileDescriptor(rawValue: file)
    }

    static func makeDirectories(_ path: FilePath) throws {
        guard !path.isEmpty, path.string != "/" else { return }
        var info = stat()
        if path.withPlatformString({ stat($0, &info) }) == 0 { return }
        try makeDirectories(path.removingLastComponent())
        if path.withPlatformString({ mkdir($0, 0o755) }) != 0 && errno != EEXIST {
            throw Errno(rawValue: errno)
        }
    }

    /// Creates the empty files (they hold no piece, so nothing else would create them).
    public func createEmptyFiles() throws {
        for (index, file) in info.files.enumerated() where file.length == 0 && !file.isPadding {
            _ = try descriptor(index, writable: true)
        }
    }

    // MARK: Block I/O (on the thread pool)

    /// Takes a received block: into the piece's memory buffer when the cache has room (no
    /// disk I/O until the piece is verified), else straight to disk on the pool.
    /// `data` is the block as it came off the socket: copied once, into the piece buffer (or
    /// written from where it is with `pwrite`).
    public func write(_ request: BlockRequest, data: ByteBuffer, on loop: EventLoop) -> EventLoopFuture<Void>
    {
        let pieceSize = info.pieceSize(request.piece)
        let limit = cacheLimit
        let cached = cache.withLock { cache -> Bool in
            if cache.pieces[request.piece] == nil {
                guard !cache.writtenThrough.contains(request.piece), cache.bytes + pieceSize <= limit else {
                    cache.writtenThrough.insert(request.piece)
                    return false
                }
                var buffer = cache.spare.popLast() ?? []
                if buffer.count != pieceSize { buffer = [UInt8](repeating: 0, count: pieceSize) }
                cache.pieces[request.piece] = (buffer, 0)
                cache.bytes += pieceSize
            }
            let count = data.readableBytes
            guard request.offset + count <= pieceSize else { return false }
            cache.pieces[request.piece]?.buffer.withUnsafeMutableBytes { target in
                data.withUnsafeReadableBytes { source in
                    UnsafeMutableRawBufferPointer(rebasing: target[request.offset..<request.offset + count])
                        .copyMemory(from: source)
                }
            }
            cache.pieces[request.piece]?.filled += count
            return true
        }
        if cached { return loop.makeSucceededVoidFuture() }
        let count = data.readableBytes
        pendingBytes.wrappingAdd(count, ordering: .relaxed)
        return pool.runIfActive(eventLoop: loop) {
            defer { self.pendingBytes.wrappingSubtract(count, ordering: .relaxed) }
            let start = Int64(request.piece) * Int64(self.info.pieceLength) + Int64(request.offset)
            try data.withUnsafeReadableBytes { try self.writeRange($0, at: start) }
        }
    }

    public func read(_ request: BlockRequest, on loop: EventLoop) -> EventLoopFuture<[UInt8]> {
        pool.runIfActive(eventLoop: loop) {
            let start = Int64(request.piece) * Int64(self.info.pieceLength) + Int64(request.offset)
            return try self.readRange(start..<start + Int64(request.length))
        }
    }

    private func writeRange(_ data: UnsafeRawBufferPointer, at start: Int64) throws {
        var done = 0
        for segment in layout.segments(in: start..<start + Int64(data.count)) {
            defer { done += segment.length }
            if info.files[segment.fileIndex].isPadding { continue }
            let descriptor = try descriptor(segment.fileIndex, writable: true)
            _ = try descriptor.writeAll(
                toAbsoluteOffset: segment.fileOffset,
                UnsafeRawBufferPointer(rebasing: data[done..<done + segment.length]))
            _ = written.withLock { $0.insert(segment.fileIndex) }
        }
    }

    private func readRange(_ range: Range<Int64>) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(range.count))
        var done = 0
        for segment in layout.segments(in: range) {
            defer { done += segment.length }
            if info.files[segment.fileIndex].isPadding { continue }
            let descriptor = try descriptor(segment.fileIndex, writable: false)
            let count = try out[done..<done + segment.length].withUnsafeMutableBytes { buffer in
                var total = 0
                while total < buffer.count {
                    let read = try descriptor.read(
                        fromAbsoluteOffset: segment.fileOffset + Int64(total),
                        into: UnsafeMutableRawBufferPointer(rebasing: buffer[total...]))
                    if read == 0 { break }
                    total += read
                }
                return total
            }
            guard count == segment.length else {
                throw StorageError(
                    path: paths[segment.fileIndex].string, reason: "file is shorter than the torrent says")
            }
        }
        return out
    }

    /// Hashes a piece from disk. On failure, or when asked, also the SHA-1 of each 16 KiB block.
    public func verify(_ piece: Int, blockDigests: Bool, on loop: EventLoop)
        -> EventLoopFuture<(passed: Bool, digests: [[UInt8]]?)>
    {
        pool.runIfActive(eventLoop: loop) {
            let entry = self.cache.withLock { cache -> (buffer: [UInt8], filled: Int)? in
                cache.writtenThrough.remove(piece)
                guard let entry = cache.pieces.removeValue(forKey: piece) else { return nil }
                cache.bytes -= entry.buffer.count
                return entry
            }
            guard let entry else { return try self.verifyOnDisk(piece, blockDigests: blockDigests) }
            let data = entry.buffer
            // A reused buffer holds an older piece's bytes until every block is written over it.
            let complete = entry.filled == entry.buffer.count
            var digester = PieceDigester(piece: piece, info: self.info, merkle: self.merkle)
            data.withUnsafeBytes { digester.update($0) }
            let (matched, leaves) = digester.finish()
            let passed = complete && matched
            // From memory, a piece reaches the disk only once it has passed.
            if passed {
                try data.withUnsafeBytes {
                    try self.writeRange($0, at: self.layout.pieceRange(piece).lowerBound)
                }
            }
            defer {
                self.cache.withLock { cache in
                    if cache.spare.count < max(2, self.cacheLimit / max(1, entry.buffer.count) / 2) {
                        cache.spare.append(entry.buffer)
                    }
                }
            }
            guard !passed || blockDigests else { return (passed, nil) }
            return (passed, leaves ?? Self.blockDigests(data[...]))
        }
    }

    /// The BEP 52 leaves of a piece we have (SHA-256 of each 16 KiB of its file's data), read
    /// from disk in windows: to answer a peer's hash request.
    public func leaves(_ piece: Int, on loop: EventLoop) -> EventLoopFuture<[[UInt8]]> {
        pool.runIfActive(eventLoop: loop) {
            guard let check = self.merkle?.check(piece: piece) else {
                throw StorageError(path: self.info.name, reason: "piece \(piece) has no v2 hash")
            }
            var hasher = LeafHasher(dataLength: check.dataLength)
            let start = self.layout.pieceRange(piece).lowerBound
            var position = start
            let end = start + Int64(check.dataLength)
            while position < end {
                let stop = min(end, position + Int64(Self.verifyWindow))
                let data = try self.readRange(position..<stop)
                data.withUnsafeBytes { hasher.update($0) }
                position = stop
            }
            return hasher.finalize()
        }
    }

    /// The SHA-1 of each 16 KiB block.
    private static func blockDigests(_ data: ArraySlice<UInt8>) -> [[UInt8]] {
        stride(from: data.startIndex, to: data.endIndex, by: BlockRequest.standardLength).map {
            Array(Insecure.SHA1.hash(data: data[$0..<min($0 + BlockRequest.standardLength, data.endIndex)]))
        }
    }

    /// Bytes read at once when a piece is checked from disk: pieces may be up to 1 GiB long.
    static let verifyWindow = 4 << 20

    /// Checks a piece written to disk, reading it in windows so memory stays bounded. Block
    /// digests are the BEP 52 leaves when the piece has a v2 hash, else SHA-1 per block.
    private func verifyOnDisk(_ piece: Int, blockDigests wanted: Bool) throws -> (
        passed: Bool, digests: [[UInt8]]?
    ) {
        let range = layout.pieceRange(piece)
        let v2 = merkle?.check(piece: piece) != nil
        func pass(blocks: Bool) throws -> (passed: Bool, digests: [[UInt8]]) {
            var digester = PieceDigester(piece: piece, info: info, merkle: merkle)
            var digests: [[UInt8]] = []
            var position = range.lowerBound
            while position < range.upperBound {
                let end = min(range.upperBound, position + Int64(Self.verifyWindow))
                let data = try readRange(position..<end)
                data.withUnsafeBytes { digester.update($0) }
                if blocks && !v2 { digests += Self.blockDigests(data[...]) }
                position = end
            }
            let (passed, leaves) = digester.finish()
            return (passed, leaves ?? digests)
        }
        let first = try pass(blocks: wanted)
        if first.passed && !wanted { return (true, nil) }
        return (first.passed, wanted || v2 ? first.digests : try pass(blocks: true).digests)
    }

    /// fsyncs every file written since the last call, so that what was verified is durable
    /// before the resume state records it.
    public func flush(on loop: EventLoop) -> EventLoopFuture<Void> {
        pool.runIfActive(eventLoop: loop) {
            let files = self.written.withLock { files in
                defer { files = [] }
                return files
            }
            for index in files.sorted() {
                let descriptor = try self.descriptor(index, writable: true)
                guard fsync(descriptor.rawValue) == 0 else { throw Errno(rawValue: errno) }
            }
        }
    }

    /// Each file's current size and modification time.
    public func stamps() -> [ResumeState.FileStamp?] {
        paths.enumerated().map { info.files[$0.offset].isPadding ? nil : ResumeState.stamp(of: $0.element) }
    }

    /// Works out which pieces are on disk: trusts `resume` for files unchanged since it was
    /// written, and re-hashes every piece that touches a changed or unknown file.
    public func check(
        resume: ResumeState?, workers: Int, progress: (@Sendable (HashingProgress) -> Void)? = nil
    )
        async -> Bitfield
    {
        let current = stamps()
        var have = Bitfield(count: info.pieceCount)
        var doubtful: [Int] = []
        for piece in 0..<info.pieceCount {
            let files = layout.segments(in: layout.pieceRange(piece)).map(\.fileIndex)
                .filter { !info.files[$0].isPadding }
            // Nothing on disk for this piece: nothing to check.
            if files.allSatisfy({ current[$0] == nil }) { continue }
            let trusted = resume.map { resume in
                files.allSatisfy { resume.files[$0] != nil && resume.files[$0] == current[$0] }
            }
            if trusted == true, let resume {
                have[piece] = resume.pieces[piece]
            } else {
                doubtful.append(piece)
            }
        }
        guard !doubtful.isEmpty else { return have }
        let hashed = await PieceHasher.hash(
            layout: layout, paths: paths, workers: workers, pieces: doubtful, merkle: merkle,
            progress: progress)
        for piece in doubtful where hashed.matches(piece, info: info) { have[piece] = true }
        return have
    }
}
